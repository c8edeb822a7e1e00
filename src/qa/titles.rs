//! Titles a question names. "Who directed Titanic?" should read Titanic's document, yet
//! BM25 prefers "Raise the Titanic" (the word twice in a short chunk) and MiniLM a chunk
//! about the ship: a title written out in the question is the strongest sign there is of
//! which movie it is about.

use super::lexical::{is_stopword, words};

/// The catalogue's titles, as lowercase words, one per document.
pub struct Titles {
    /// " word word " (padded, so a match is whole words), or empty for a title of
    /// stopwords only ("It", "Up"?: "up" is no stopword, so Up can be named).
    normalized: Vec<String>,
}

fn padded(text: &str) -> String {
    format!(" {} ", words(text).join(" "))
}

impl Titles {
    pub fn new<'a>(titles: impl IntoIterator<Item = &'a str>) -> Self {
        let normalized = titles
            .into_iter()
            .map(|title| {
                let w = words(title);
                if w.iter().all(|w| is_stopword(w)) {
                    String::new()
                } else {
                    padded(title)
                }
            })
            .collect();
        Self { normalized }
    }

    /// The documents whose whole title `question` contains, in order; a title found only
    /// inside a longer one it names is left out ("Alien: Resurrection" names Alien:
    /// Resurrection, not Alien).
    pub fn named_in(&self, question: &str) -> Vec<usize> {
        let question = padded(question);
        let found: Vec<usize> = (0..self.normalized.len())
            .filter(|&d| !self.normalized[d].is_empty() && question.contains(&self.normalized[d]))
            .collect();
        found
            .iter()
            .copied()
            .filter(|&d| {
                let title = &self.normalized[d];
                !found.iter().any(|&other| {
                    let longer = &self.normalized[other];
                    longer.len() > title.len() && longer.contains(title.as_str())
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_titles_are_found_and_the_longest_wins() {
        let titles = Titles::new([
            "Alien",
            "Alien: Resurrection",
            "Titanic",
            "Raise the Titanic",
            "It",
            "Up",
        ]);
        assert_eq!(titles.named_in("Who directed Alien?"), [0]);
        assert_eq!(titles.named_in("Who directed ALIEN: Resurrection?"), [1]);
        assert_eq!(titles.named_in("Who directed Titanic?"), [2]);
        assert_eq!(titles.named_in("Is Raise the Titanic good?"), [3]);
        assert_eq!(
            titles.named_in("Who is it about? Aliens?"),
            Vec::<usize>::new(),
            "a title of stopwords, and a word inside a longer one, name nothing"
        );
        assert_eq!(titles.named_in("Who directed Up?"), [5]);
    }
}
