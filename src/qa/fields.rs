//! Which of a document's facts a question asks for. A movie's document spans three or four
//! chunks, and once the movie is found, which chunk holds the answer turns on one word
//! ("wrote", "how long") that neither signal weighs: BM25 finds "Written by" and "runtime"
//! in nearly every document (so they carry almost no weight), and MiniLM scores the chunks of
//! one movie much alike. The labels are the ones `document::body` writes.

use super::lexical::words;

/// A fact's label in a document and the question words that ask for it.
pub struct Field {
    pub label: &'static str,
    cues: &'static [&'static str],
}

pub const DIRECTED: &str = "Directed by";
pub const WRITTEN: &str = "Written by";
pub const MUSIC: &str = "Music by";
pub const STARRING: &str = "Starring";
pub const RELEASED: &str = "Released in";
pub const GENRE: &str = "genre";
pub const RUNTIME: &str = "runtime";
pub const KEYWORDS: &str = "Keywords:";

/// Every field, in the order a document states them. A long cast list runs on into the
/// next chunk without its label, so every chunk of the cast list states the cast
/// ([`Statements::stated_in`]): "Who played Ripley?" asks for it too.
pub const FIELDS: [Field; 8] = [
    Field {
        label: DIRECTED,
        cues: &["direct", "directed", "director", "directors", "directing"],
    },
    Field {
        label: WRITTEN,
        cues: &[
            "wrote",
            "write",
            "writer",
            "writers",
            "written",
            "screenplay",
            "script",
        ],
    },
    Field {
        label: MUSIC,
        cues: &["music", "composed", "composer", "score", "soundtrack"],
    },
    Field {
        label: STARRING,
        cues: &[
            "starred",
            "starring",
            "stars",
            "cast",
            "actors",
            "played",
            "plays",
            "play",
            "role",
            "character",
            "portrayed",
        ],
    },
    Field {
        label: RELEASED,
        cues: &["released", "release", "year", "when"],
    },
    Field {
        label: GENRE,
        cues: &["genre", "genres"],
    },
    Field {
        label: RUNTIME,
        cues: &["long", "runtime", "length", "minutes"],
    },
    Field {
        label: KEYWORDS,
        cues: &["keyword", "keywords", "themes", "topics"],
    },
];

/// The fields `question` asks for, one bit each (bit i: `FIELDS[i]`).
pub fn asked(question: &str) -> u8 {
    let words = words(question);
    FIELDS
        .iter()
        .enumerate()
        .filter(|(_, f)| words.iter().any(|w| f.cues.contains(&w.as_str())))
        .fold(0, |mask, (i, _)| mask | 1 << i)
}

/// The bit [`asked`] and [`Statements::stated_in`] use for the field labelled `label`.
fn bit_of(label: &str) -> u8 {
    FIELDS
        .iter()
        .position(|f| f.label == label)
        .map_or(0, |i| 1 << i)
}

/// A document's body, ready to say which fields each of its chunks states: the cast list is
/// found once for all of them.
pub struct Statements<'a> {
    body: &'a str,
    cast: Option<std::ops::Range<usize>>,
}

impl<'a> Statements<'a> {
    pub fn new(body: &'a str) -> Self {
        Self {
            body,
            cast: cast_list(body),
        }
    }

    /// The fields the part `range` of the body states, as [`asked`]'s bits: those whose
    /// label it holds, and the cast for any part of the cast list.
    pub fn stated_in(&self, range: std::ops::Range<usize>) -> u8 {
        let text = self.body.get(range.clone()).unwrap_or_default();
        let labelled = FIELDS
            .iter()
            .filter(|f| text.contains(f.label))
            .fold(0, |mask, f| mask | bit_of(f.label));
        let in_cast = self
            .cast
            .as_ref()
            .is_some_and(|cast| range.start < cast.end && cast.start < range.end);
        labelled | if in_cast { bit_of(STARRING) } else { 0 }
    }
}

/// Where a body's cast list is: from "Starring" to the next fact's label (names hold full
/// stops, "Dr. Grant", so the sentence's end cannot say).
fn cast_list(body: &str) -> Option<std::ops::Range<usize>> {
    let start = body.find(STARRING)?;
    let end = [RELEASED, GENRE, RUNTIME, KEYWORDS]
        .iter()
        .filter_map(|label| body[start..].find(label).map(|i| start + i))
        .min()
        .unwrap_or(body.len());
    Some(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_ask_for_the_fields_their_words_name() {
        assert_eq!(asked("Who wrote Alien?"), 1 << 1);
        assert_eq!(asked("How long is Heat?"), 1 << 6);
        assert_eq!(asked("Which 2010 film did Christopher Nolan direct?"), 1);
        assert_eq!(asked("Who played Ripley in Alien?"), 1 << 3);
        let body = "Directed by Ridley Scott. Starring Tom Skerritt as Dallas, Sigourney \
                    Weaver as Ripley. Released in 1979; genre Horror. An overview.";
        let at = |text: &str| body.find(text).expect("in the body");
        let statements = Statements::new(body);
        assert_eq!(statements.stated_in(0..at("Starring")), 1);
        assert_eq!(
            statements.stated_in(at("Weaver")..at(" An")),
            1 << 3 | 1 << 4 | 1 << 5,
            "the cast list's second part states the cast without its label"
        );
        assert_eq!(statements.stated_in(at("An")..body.len()), 0);
    }
}
