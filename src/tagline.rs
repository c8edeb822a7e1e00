//! The RAG step: a visitor's movie idea and a few example movies become a chat prompt whose
//! answer is a tagline. Examples are retrieved (the product), random (a baseline) or absent
//! (another baseline), so the evaluation compares the three with the same code.

use std::collections::HashSet;

use crate::catalogue::Movie;
use crate::error::{Error, Result};
use crate::index::SearchMode;
use crate::retriever::Retriever;

pub const SYSTEM_PROMPT: &str =
    "You write movie taglines. Given a movie's overview, reply with one short, catchy tagline.";

/// How the examples appear in the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PromptStyle {
    /// Only the examples' taglines, as a list in the one user turn before the idea. About a
    /// third of the tokens of [`PromptStyle::Exchanges`] (≈ 110 vs ≈ 340 with four
    /// examples), and prefill is most of the time to the first token; the evaluation
    /// (docs/evaluation.md) compares the two.
    #[default]
    TaglineList,
    /// One user/assistant exchange per example (its overview → its tagline): few-shot.
    Exchanges,
}

/// Where the few-shot examples come from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Examples {
    None,
    /// `k` movies drawn by a seeded generator (deterministic for a seed).
    Random {
        k: usize,
        seed: u64,
    },
    /// The `k` movies most similar to the idea.
    Retrieved {
        k: usize,
        mode: SearchMode,
    },
}

/// Token limits of a prompt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// The whole prompt, examples included.
    pub max_prompt_tokens: usize,
    /// Each example's overview is cut to this many tokens.
    pub max_overview_tokens: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            max_prompt_tokens: 768,
            max_overview_tokens: 96,
        }
    }
}

/// One example movie and, when retrieved, its similarity to the idea.
#[derive(Debug, Clone)]
pub struct Example<'a> {
    pub movie: &'a Movie,
    /// Its position in the catalogue.
    pub index: Option<usize>,
    pub similarity: Option<f32>,
}

/// Picks example movies (only those with a tagline can serve as examples), never one whose
/// catalogue position is in `exclude` (the evaluation's held-out movies).
pub fn select_examples<'a>(
    retriever: &'a Retriever,
    idea: &str,
    how: Examples,
    exclude: &HashSet<usize>,
) -> Result<Vec<Example<'a>>> {
    match how {
        Examples::None => Ok(Vec::new()),
        Examples::Retrieved { k, mode } => {
            let embedding = retriever.embedder().embed_query(idea)?;
            retrieved_examples(retriever, &embedding, k, mode, exclude)
        }
        Examples::Random { k, seed } => {
            let with_tagline: Vec<(usize, &Movie)> = retriever
                .movies()
                .iter()
                .enumerate()
                .filter(|(i, m)| m.tagline.is_some() && !exclude.contains(i))
                .collect();
            let mut state = seed | 1;
            let mut picked = Vec::with_capacity(k);
            while picked.len() < k.min(with_tagline.len()) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let (index, movie) = with_tagline[(state % with_tagline.len() as u64) as usize];
                if !picked.iter().any(|e: &Example| e.index == Some(index)) {
                    picked.push(Example {
                        movie,
                        index: Some(index),
                        similarity: None,
                    });
                }
            }
            Ok(picked)
        }
    }
}

/// The `k` movies most similar to an embedded idea that have a tagline and are not in
/// `exclude`. The page calls this directly so it can time embedding and search apart.
pub fn retrieved_examples<'a>(
    retriever: &'a Retriever,
    embedding: &[f32],
    k: usize,
    mode: SearchMode,
    exclude: &HashSet<usize>,
) -> Result<Vec<Example<'a>>> {
    // Ask for more than k: some neighbours have no tagline or are excluded.
    let pool = (k * 3).max(k + 5) + exclude.len().min(50);
    let matches = retriever.search_embedding(embedding, pool, mode)?;
    Ok(matches
        .into_iter()
        .filter(|m| m.movie.tagline.is_some() && !exclude.contains(&m.index))
        .take(k)
        .map(|m| Example {
            movie: m.movie,
            index: Some(m.index),
            similarity: Some(m.score),
        })
        .collect())
}

/// How every prompt begins, whatever the idea, examples or style: the system turn and the
/// opening of the user turn. [`crate::generate::Generator::prime`] runs it ahead of time.
pub fn prompt_prefix() -> String {
    format!("{}<|im_start|>user\n", turn("system", SYSTEM_PROMPT))
}

fn turn(role: &str, content: &str) -> String {
    format!("<|im_start|>{role}\n{content}<|im_end|>\n")
}

/// `text` cut to at most `max_tokens` tokens (by `count`), at a word boundary, with "…".
fn shorten(text: &str, max_tokens: usize, count: &dyn Fn(&str) -> usize) -> String {
    if count(text) <= max_tokens {
        return text.to_string();
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let (mut low, mut high) = (0, words.len());
    while low < high {
        let mid = (low + high).div_ceil(2);
        if count(&format!("{}…", words[..mid].join(" "))) <= max_tokens {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    format!("{}…", words[..low].join(" "))
}

/// The chat prompt (SmolLM2's template): a system line, the examples in `style`, then the
/// idea. Examples that do not fit the budget are dropped from the end (the least similar
/// when retrieved). `count` counts tokens. Returns the prompt and how many examples it holds.
pub fn build_prompt(
    idea: &str,
    examples: &[Example<'_>],
    style: PromptStyle,
    budget: Budget,
    count: &dyn Fn(&str) -> usize,
) -> Result<(String, usize)> {
    let idea = idea.trim();
    if idea.is_empty() {
        return Err(Error::EmptyQuery);
    }
    match style {
        PromptStyle::Exchanges => exchanges_prompt(idea, examples, budget, count),
        PromptStyle::TaglineList => tagline_list_prompt(idea, examples, budget, count),
    }
}

fn too_long(idea: &str, budget: Budget) -> Error {
    Error::QueryTooLong {
        bytes: idea.len(),
        limit: budget.max_prompt_tokens,
    }
}

/// System line; one user turn: "Example taglines:", one per line, then the overview.
fn tagline_list_prompt(
    idea: &str,
    examples: &[Example<'_>],
    budget: Budget,
    count: &dyn Fn(&str) -> usize,
) -> Result<(String, usize)> {
    let assemble = |taglines: &[&str]| {
        let list: String = taglines.iter().map(|t| format!("- {t}\n")).collect();
        let user = if list.is_empty() {
            format!("Overview: {idea}")
        } else {
            format!("Example taglines:\n{list}\nOverview: {idea}")
        };
        format!(
            "{}{}<|im_start|>assistant\n",
            turn("system", SYSTEM_PROMPT),
            turn("user", &user)
        )
    };
    if count(&assemble(&[])) > budget.max_prompt_tokens {
        return Err(too_long(idea, budget));
    }
    let mut taglines: Vec<&str> = Vec::new();
    for tagline in examples.iter().filter_map(|e| e.movie.tagline.as_deref()) {
        taglines.push(tagline);
        if count(&assemble(&taglines)) > budget.max_prompt_tokens {
            taglines.pop();
            break;
        }
    }
    Ok((assemble(&taglines), taglines.len()))
}

/// System line; per example a user turn with its (shortened) overview and an assistant
/// turn with its tagline; then the idea's user turn.
fn exchanges_prompt(
    idea: &str,
    examples: &[Example<'_>],
    budget: Budget,
    count: &dyn Fn(&str) -> usize,
) -> Result<(String, usize)> {
    let head = turn("system", SYSTEM_PROMPT);
    let tail = format!(
        "{}<|im_start|>assistant\n",
        turn("user", &format!("Overview: {idea}"))
    );
    let base = count(&head) + count(&tail);
    if base > budget.max_prompt_tokens {
        return Err(too_long(idea, budget));
    }
    let mut used = base;
    let mut body = String::new();
    let mut kept = 0;
    for example in examples {
        let Some(tagline) = example.movie.tagline.as_deref() else {
            continue;
        };
        let overview = shorten(&example.movie.overview, budget.max_overview_tokens, count);
        let exchange = format!(
            "{}{}",
            turn("user", &format!("Overview: {overview}")),
            turn("assistant", tagline)
        );
        let cost = count(&exchange);
        if used + cost > budget.max_prompt_tokens {
            break;
        }
        used += cost;
        body.push_str(&exchange);
        kept += 1;
    }
    Ok((format!("{head}{body}{tail}"), kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts words as tokens: enough to test the budget logic.
    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    fn movie(title: &str, overview: &str, tagline: Option<&str>) -> Movie {
        Movie {
            id: title.into(),
            title: title.into(),
            year: None,
            tagline: tagline.map(str::to_string),
            overview: overview.into(),
            genres: Vec::new(),
        }
    }

    #[test]
    fn examples_become_chat_turns_before_the_idea() {
        let jaws = movie(
            "Jaws",
            "A shark attacks a beach town.",
            Some("Don't go in the water."),
        );
        let ex = [Example {
            movie: &jaws,
            index: None,
            similarity: Some(0.5),
        }];
        let (prompt, kept) = build_prompt(
            "a giant squid",
            &ex,
            PromptStyle::Exchanges,
            Budget::default(),
            &words,
        )
        .expect("fits");
        assert_eq!(kept, 1);
        assert!(prompt.starts_with("<|im_start|>system\n"));
        assert!(prompt.contains("Overview: A shark attacks a beach town.<|im_end|>\n<|im_start|>assistant\nDon't go in the water.<|im_end|>"));
        assert!(prompt.ends_with("Overview: a giant squid<|im_end|>\n<|im_start|>assistant\n"));
    }

    #[test]
    fn long_overviews_are_shortened_and_extra_examples_dropped() {
        let long = "word ".repeat(500);
        let a = movie("A", &long, Some("Tag A"));
        let b = movie("B", &long, Some("Tag B"));
        let ex = [
            Example {
                movie: &a,
                index: None,
                similarity: None,
            },
            Example {
                movie: &b,
                index: None,
                similarity: None,
            },
        ];
        let budget = Budget {
            max_prompt_tokens: 60,
            max_overview_tokens: 20,
        };
        let (prompt, kept) =
            build_prompt("idea", &ex, PromptStyle::Exchanges, budget, &words).expect("fits");
        assert_eq!(kept, 1, "{prompt}");
        assert!(words(&prompt) <= 60);
        assert!(prompt.contains("…"));
    }

    #[test]
    fn empty_and_oversized_ideas_are_errors() {
        for style in [PromptStyle::Exchanges, PromptStyle::TaglineList] {
            assert!(matches!(
                build_prompt(" ", &[], style, Budget::default(), &words),
                Err(Error::EmptyQuery)
            ));
            let huge = "word ".repeat(2000);
            let err =
                build_prompt(&huge, &[], style, Budget::default(), &words).expect_err("too long");
            assert!(matches!(err, Error::QueryTooLong { .. }));
        }
    }

    #[test]
    fn every_prompt_starts_with_the_prefix() {
        let jaws = movie("Jaws", "A shark.", Some("Don't go in the water."));
        let ex = [Example {
            movie: &jaws,
            index: None,
            similarity: None,
        }];
        for style in [PromptStyle::Exchanges, PromptStyle::TaglineList] {
            for examples in [&ex[..], &[]] {
                let (prompt, _) =
                    build_prompt("a squid", examples, style, Budget::default(), &words)
                        .expect("fits");
                assert!(prompt.starts_with(&prompt_prefix()), "{prompt}");
            }
        }
    }

    #[test]
    fn tagline_list_puts_the_taglines_before_the_idea_within_the_budget() {
        let jaws = movie("Jaws", "A shark.", Some("Don't go in the water."));
        let alien = movie(
            "Alien",
            "A creature.",
            Some("In space no one can hear you scream."),
        );
        let untagged = movie("Untagged", "Nothing.", None);
        let ex: Vec<Example> = [&jaws, &untagged, &alien]
            .into_iter()
            .map(|movie| Example {
                movie,
                index: None,
                similarity: None,
            })
            .collect();
        let (prompt, kept) = build_prompt(
            "a giant squid",
            &ex,
            PromptStyle::TaglineList,
            Budget::default(),
            &words,
        )
        .expect("fits");
        assert_eq!(kept, 2);
        assert!(prompt.contains(
            "Example taglines:\n- Don't go in the water.\n- In space no one can hear you scream.\n\nOverview: a giant squid<|im_end|>\n<|im_start|>assistant\n"
        ));
        assert!(!prompt.contains("A shark."), "overviews stay out: {prompt}");
        // A budget with room for the first tagline only keeps one.
        let budget = Budget {
            max_prompt_tokens: words(&prompt) - 7,
            max_overview_tokens: 96,
        };
        let (short, kept) = build_prompt(
            "a giant squid",
            &ex,
            PromptStyle::TaglineList,
            budget,
            &words,
        )
        .expect("fits");
        assert_eq!(kept, 1, "{short}");
        assert!(words(&short) <= budget.max_prompt_tokens);
    }
}
