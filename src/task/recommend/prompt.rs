//! The note's prompt: the movies a visitor liked and the first recommendations (title,
//! tagline, a cut overview, which liked movies led to each) become a chat prompt whose
//! answer is one paragraph on why they might like them, within a token budget.

use crate::error::{Error, Result};
use crate::generate::chat::{assistant_reply, open_turn, turn};
use crate::task::prompt::{shorten, Budget};

pub const SYSTEM_PROMPT: &str = "You recommend movies. Given the movies someone liked and the \
movies recommended to them, write one short, friendly paragraph on why they might enjoy the \
recommendations. Mention the recommended movies by name.";

/// How every note prompt begins (primed into the KV cache ahead of time).
pub fn prompt_prefix() -> String {
    format!("{}{}", turn("system", SYSTEM_PROMPT), open_turn("user"))
}

/// A recommended movie as the prompt describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct NoteMovie {
    /// "The Lion King (1994)".
    pub title: String,
    pub tagline: Option<String>,
    /// Empty when the movie did not join the catalogue.
    pub overview: String,
    /// The liked movies it came from, as titles.
    pub because: Vec<String>,
}

/// The note prompt's token limits. Prefill is most of the wait before the first word in
/// the browser, so overviews are cut short: the model needs the gist, not the plot.
pub const BUDGET: Budget = Budget {
    max_prompt_tokens: 512,
    max_overview_tokens: 32,
};

/// The chat prompt for `liked` (titles) and `movies`; recommendations that do not fit the
/// budget are dropped from the end (the lowest ranked). `count` counts tokens. Returns the
/// prompt and how many recommendations it holds.
pub fn build_prompt(
    liked: &[String],
    movies: &[NoteMovie],
    budget: Budget,
    count: &dyn Fn(&str) -> usize,
) -> Result<(String, usize)> {
    if movies.is_empty() {
        return Err(Error::InvalidArgument(
            "there are no recommendations to write about".into(),
        ));
    }
    let lines: Vec<String> = movies
        .iter()
        .map(|m| {
            let mut line = format!("- {}", m.title);
            if let Some(tagline) = m.tagline.as_deref().filter(|t| !t.trim().is_empty()) {
                line.push_str(&format!(" \"{}\"", tagline.trim()));
            }
            if !m.overview.trim().is_empty() {
                let overview = shorten(m.overview.trim(), budget.max_overview_tokens, count);
                line.push_str(&format!(": {overview}"));
            }
            if !m.because.is_empty() {
                line.push_str(&format!(" (like {})", m.because.join(", ")));
            }
            line
        })
        .collect();
    let assemble = |kept: usize| {
        let user = format!(
            "Movies I liked: {}.\n\nRecommended for me:\n{}\n\nIn one short paragraph, tell me \
             why I might like these.",
            liked.join(", "),
            lines[..kept].join("\n")
        );
        format!(
            "{}{}{}",
            turn("system", SYSTEM_PROMPT),
            turn("user", &user),
            assistant_reply()
        )
    };
    let mut kept = lines.len();
    loop {
        let text = assemble(kept);
        let tokens = count(&text);
        if tokens <= budget.max_prompt_tokens {
            return Ok((text, kept));
        }
        if kept == 1 {
            return Err(Error::PromptTooLong {
                tokens,
                limit: budget.max_prompt_tokens,
            });
        }
        kept -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::prompt::words;

    fn movie(title: &str, overview: &str) -> NoteMovie {
        NoteMovie {
            title: title.into(),
            tagline: Some("The adventure begins.".into()),
            overview: overview.into(),
            because: vec!["Toy Story (1995)".into()],
        }
    }

    #[test]
    fn the_prompt_names_liked_and_recommended_movies_and_starts_with_the_prefix() {
        let liked = vec!["Toy Story (1995)".to_string()];
        let movies = [movie("Aladdin (1992)", "A street urchin finds a lamp.")];
        let (text, kept) = build_prompt(&liked, &movies, BUDGET, &words).unwrap();
        assert_eq!(kept, 1);
        assert!(text.starts_with(&prompt_prefix()), "{text}");
        assert!(text.contains("Movies I liked: Toy Story (1995)."), "{text}");
        assert!(
            text.contains(
                "- Aladdin (1992) \"The adventure begins.\": A street urchin finds a lamp. \
                 (like Toy Story (1995))"
            ),
            "{text}"
        );
        assert!(text.ends_with(&assistant_reply()));
    }

    #[test]
    fn long_overviews_are_cut_and_what_does_not_fit_is_dropped() {
        let long = "word ".repeat(200);
        let liked = vec!["Fargo (1996)".to_string()];
        let movies = vec![movie("A", &long), movie("B", &long), movie("C", &long)];
        let budget = Budget {
            max_prompt_tokens: 150,
            max_overview_tokens: 40,
        };
        let (text, kept) = build_prompt(&liked, &movies, budget, &words).unwrap();
        assert!(words(&text) <= 150 && kept < 3, "{kept}: {text}");
        assert!(text.contains("word…"));
        let tiny = Budget {
            max_prompt_tokens: 10,
            max_overview_tokens: 40,
        };
        assert!(matches!(
            build_prompt(&liked, &movies, tiny, &words),
            Err(Error::PromptTooLong { .. })
        ));
        assert!(build_prompt(&liked, &[], BUDGET, &words).is_err());
    }
}
