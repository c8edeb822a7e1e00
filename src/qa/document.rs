//! A movie's facts as one plain-text document, in short sentences so that a window of a few
//! dozen tokens still holds whole facts. Each chunk is shown and embedded with a header
//! naming its movie ([`header`]), so the body does not repeat the title.

use super::facts::MovieFacts;
use super::fields::{DIRECTED, GENRE, KEYWORDS, MUSIC, RELEASED, RUNTIME, STARRING, WRITTEN};

/// "Alien (1979)": what every chunk of a movie's document starts with.
pub fn header(title: &str, year: Option<i32>) -> String {
    match year {
        Some(year) => format!("{title} ({year})"),
        None => title.to_string(),
    }
}

fn list(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The document's body: credits first (the facts most questions ask about, so they land in
/// the first chunk), then year, genres, runtime, keywords and the overview.
pub fn body(facts: &MovieFacts) -> String {
    let mut sentences: Vec<String> = Vec::new();
    if !facts.directors.is_empty() {
        sentences.push(format!("{DIRECTED} {}.", list(&facts.directors)));
    }
    if !facts.writers.is_empty() {
        sentences.push(format!("{WRITTEN} {}.", list(&facts.writers)));
    }
    if !facts.composers.is_empty() {
        sentences.push(format!("{MUSIC} {}.", list(&facts.composers)));
    }
    if !facts.cast.is_empty() {
        let roles: Vec<String> = facts
            .cast
            .iter()
            .map(|r| {
                if r.character.is_empty() {
                    r.actor.clone()
                } else {
                    format!("{} as {}", r.actor, r.character)
                }
            })
            .collect();
        sentences.push(format!("{STARRING} {}.", list(&roles)));
    }
    let mut about = Vec::new();
    if let Some(year) = facts.year {
        about.push(format!("{RELEASED} {year}"));
    }
    if !facts.genres.is_empty() {
        about.push(format!("{GENRE} {}", facts.genres.join(", ")));
    }
    if let Some(minutes) = facts.runtime {
        about.push(format!("{RUNTIME} {minutes} minutes"));
    }
    if !about.is_empty() {
        sentences.push(format!("{}.", about.join("; ")));
    }
    if !facts.keywords.is_empty() {
        sentences.push(format!("{KEYWORDS} {}.", facts.keywords.join(", ")));
    }
    if !facts.overview.is_empty() {
        sentences.push(facts.overview.clone());
    }
    sentences.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qa::facts::tests::alien;

    #[test]
    fn the_body_states_each_fact_once_in_short_sentences() {
        let text = body(&alien());
        assert!(
            text.starts_with(
                "Directed by Ridley Scott. Written by Dan O'Bannon. Music by Jerry Goldsmith. \
                 Starring Tom Skerritt as Dallas and Sigourney Weaver as Ellen Ripley. \
                 Released in 1979; genre Horror, Science Fiction; runtime 117 minutes. \
                 Keywords: android. During its return"
            ),
            "{text}"
        );
        assert_eq!(header("Alien", Some(1979)), "Alien (1979)");
        assert_eq!(header("Alien", None), "Alien");
    }
}
