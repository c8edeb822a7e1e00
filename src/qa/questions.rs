//! Templated questions generated from the facts, WikiMovies-style: one of each kind per
//! movie, each with its answer set (every right answer) and the catalogue movies whose
//! passages hold the answer. Questions naming a title two catalogue movies share are dropped:
//! no passage can settle them. Movies are split into train and held-out by a hash of their
//! id, so a held-out movie's facts never reach training.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::facts::MovieFacts;
use super::metrics::normalize;

/// What a question asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Director,
    Writer,
    Composer,
    Cast,
    Character,
    Year,
    Runtime,
    Genre,
    Keyword,
    /// "Which 2010 film did Christopher Nolan direct?"
    DirectorYearToMovie,
    /// "Which 1994 film starred Tom Hanks?"
    ActorYearToMovie,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::Director,
        Kind::Writer,
        Kind::Composer,
        Kind::Cast,
        Kind::Character,
        Kind::Year,
        Kind::Runtime,
        Kind::Genre,
        Kind::Keyword,
        Kind::DirectorYearToMovie,
        Kind::ActorYearToMovie,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Director => "director",
            Kind::Writer => "writer",
            Kind::Composer => "composer",
            Kind::Cast => "cast",
            Kind::Character => "character → actor",
            Kind::Year => "year",
            Kind::Runtime => "runtime",
            Kind::Genre => "genre",
            Kind::Keyword => "keyword",
            Kind::DirectorYearToMovie => "director + year → film",
            Kind::ActorYearToMovie => "actor + year → film",
        }
    }
}

/// One question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    pub kind: Kind,
    pub text: String,
    /// Every right answer.
    pub answers: Vec<String>,
    /// The catalogue positions of the movies whose passages answer it.
    pub movies: Vec<usize>,
    pub held_out: bool,
}

/// FNV-1a: a split that is the same on every machine and in every version of Rust.
fn hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether a movie is held out, for a held-out share in percent.
pub fn is_held_out(id: &str, percent: u64) -> bool {
    hash(id) % 100 < percent
}

/// Characters that name no one in particular.
fn vague_character(character: &str) -> bool {
    let c = character.to_lowercase();
    c.is_empty()
        || c.contains("himself")
        || c.contains("herself")
        || c.contains("voice")
        || c.contains('/')
}

/// The questions about `facts` whose movies are in the catalogue (`catalogue_ids`, the
/// movies part's ids in order), with `held_out_percent` of the movies held out.
pub fn generate(
    facts: &[MovieFacts],
    catalogue_ids: &[String],
    held_out_percent: u64,
) -> Vec<Question> {
    let position: HashMap<&str, usize> = catalogue_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let present: Vec<(&MovieFacts, usize)> = facts
        .iter()
        .filter_map(|f| Some((f, *position.get(f.id.as_str())?)))
        .collect();
    let mut title_count: HashMap<String, usize> = HashMap::new();
    for (f, _) in &present {
        *title_count.entry(normalize(&f.title)).or_default() += 1;
    }
    let unique = |f: &MovieFacts| title_count.get(&normalize(&f.title)) == Some(&1);
    // Reverse lookups: (person, year) → the movies, in catalogue order.
    let mut by_director: BTreeMap<(String, i32), Vec<(&MovieFacts, usize)>> = BTreeMap::new();
    let mut by_actor: BTreeMap<(String, i32), Vec<(&MovieFacts, usize)>> = BTreeMap::new();
    for &(f, i) in &present {
        let Some(year) = f.year else { continue };
        for d in &f.directors {
            by_director
                .entry((d.clone(), year))
                .or_default()
                .push((f, i));
        }
        for r in &f.cast {
            by_actor
                .entry((r.actor.clone(), year))
                .or_default()
                .push((f, i));
        }
    }

    let mut out = Vec::new();
    for &(f, i) in &present {
        if !unique(f) {
            continue;
        }
        let held_out = is_held_out(&f.id, held_out_percent);
        let t = &f.title;
        let mut ask = |kind: Kind, text: String, answers: Vec<String>| {
            if !answers.is_empty() {
                out.push(Question {
                    kind,
                    text,
                    answers,
                    movies: vec![i],
                    held_out,
                });
            }
        };
        ask(
            Kind::Director,
            format!("Who directed {t}?"),
            f.directors.clone(),
        );
        ask(Kind::Writer, format!("Who wrote {t}?"), f.writers.clone());
        ask(
            Kind::Composer,
            format!("Who composed the music for {t}?"),
            f.composers.clone(),
        );
        ask(
            Kind::Cast,
            format!("Who starred in {t}?"),
            f.cast.iter().map(|r| r.actor.clone()).collect(),
        );
        if let Some(role) = f.cast.iter().find(|r| !vague_character(&r.character)) {
            let shared = f
                .cast
                .iter()
                .filter(|r| r.character == role.character)
                .count();
            if shared == 1 {
                ask(
                    Kind::Character,
                    format!("Who played {} in {t}?", role.character),
                    vec![role.actor.clone()],
                );
            }
        }
        if let Some(year) = f.year {
            ask(
                Kind::Year,
                format!("What year was {t} released?"),
                vec![year.to_string()],
            );
        }
        if let Some(minutes) = f.runtime {
            ask(
                Kind::Runtime,
                format!("How long is {t}?"),
                vec![format!("{minutes} minutes"), minutes.to_string()],
            );
        }
        ask(Kind::Genre, format!("What genre is {t}?"), f.genres.clone());
        ask(
            Kind::Keyword,
            format!("Which keyword describes {t}?"),
            f.keywords.clone(),
        );
    }
    // Reverse questions, each asked once, from the first movie that gives rise to it.
    type ByPersonYear<'f> = BTreeMap<(String, i32), Vec<(&'f MovieFacts, usize)>>;
    let mut reverse = |kind: Kind, map: &ByPersonYear, text: fn(&str, i32) -> String| {
        for ((person, year), movies) in map {
            if movies.iter().any(|(f, _)| !unique(f)) {
                continue;
            }
            let held_out = movies
                .iter()
                .any(|(f, _)| is_held_out(&f.id, held_out_percent));
            out.push(Question {
                kind,
                text: text(person, *year),
                answers: movies.iter().map(|(f, _)| f.title.clone()).collect(),
                movies: movies.iter().map(|(_, i)| *i).collect(),
                held_out,
            });
        }
    };
    reverse(Kind::DirectorYearToMovie, &by_director, |person, year| {
        format!("Which {year} film did {person} direct?")
    });
    // Only a lead (the first two billed) makes "starred" a fair description.
    let leads: ByPersonYear = by_actor
        .into_iter()
        .filter_map(|(key, movies)| {
            let lead: Vec<_> = movies
                .into_iter()
                .filter(|(f, _)| f.cast.iter().take(2).any(|r| r.actor == key.0))
                .collect();
            (!lead.is_empty()).then_some((key, lead))
        })
        .collect();
    reverse(Kind::ActorYearToMovie, &leads, |person, year| {
        format!("Which {year} film starred {person}?")
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qa::facts::tests::alien;

    #[test]
    fn every_kind_with_its_answers_and_reverse_questions() {
        let alien = alien();
        let mut again = alien.clone();
        again.id = "1".into();
        again.title = "Heat".into();
        let ids = vec!["348".to_string(), "1".to_string(), "absent".to_string()];
        let questions = generate(&[alien.clone(), again], &ids, 0);
        let find = |kind| {
            questions
                .iter()
                .find(|q| q.kind == kind && q.movies[0] == 0)
        };
        let director = find(Kind::Director).expect("asked");
        assert_eq!(director.text, "Who directed Alien?");
        assert_eq!(director.answers, ["Ridley Scott"]);
        assert!(!director.held_out);
        let character = find(Kind::Character).expect("asked");
        assert_eq!(character.text, "Who played Dallas in Alien?");
        assert_eq!(character.answers, ["Tom Skerritt"]);
        assert_eq!(
            find(Kind::Runtime).expect("asked").answers,
            ["117 minutes", "117"]
        );
        let reverse: Vec<_> = questions
            .iter()
            .filter(|q| q.kind == Kind::DirectorYearToMovie)
            .collect();
        assert_eq!(reverse.len(), 1, "one question, both movies answer it");
        assert_eq!(reverse[0].text, "Which 1979 film did Ridley Scott direct?");
        assert_eq!(reverse[0].answers, ["Alien", "Heat"]);
        assert_eq!(reverse[0].movies, [0, 1]);
        let leads = questions
            .iter()
            .filter(|q| q.kind == Kind::ActorYearToMovie)
            .count();
        assert_eq!(leads, 2, "the first two billed");
        assert!(questions
            .iter()
            .all(|q| q.kind != Kind::Writer || !q.answers.is_empty()));
    }

    #[test]
    fn shared_titles_are_dropped_and_the_split_is_by_movie() {
        let a = alien();
        let mut b = alien();
        b.id = "2".into();
        let questions = generate(&[a, b], &["348".into(), "2".into()], 0);
        assert!(questions.is_empty(), "{questions:?}");
        let held: Vec<bool> = (0..1000).map(|i| is_held_out(&i.to_string(), 20)).collect();
        let share = held.iter().filter(|h| **h).count();
        assert!((150..250).contains(&share), "{share}");
        assert_eq!(is_held_out("348", 20), is_held_out("348", 20));
    }
}
