//! The tagline prompt: a visitor's movie idea and a few example movies become a chat prompt
//! (SmolLM2's template, `generate::chat`) whose answer is a tagline, within a token budget.

use serde::{Deserialize, Serialize};

use super::examples::Example;
use crate::error::{Error, Result};
use crate::generate::chat::{assistant_reply, open_turn, turn};
use crate::task::prompt::{shorten, Budget};

pub const SYSTEM_PROMPT: &str =
    "You write movie taglines. Given a movie's overview, reply with one short, catchy tagline.";

/// How the examples appear in the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptStyle {
    /// Only the examples' taglines, as a list in the one user turn before the idea. About a
    /// third of the tokens of [`PromptStyle::Exchanges`] (≈ 110 vs ≈ 340 with four
    /// examples), and prefill is most of the time to the first token; the evaluation
    /// (docs/evaluation.md) compares the two.
    #[default]
    #[serde(rename = "list")]
    TaglineList,
    /// One user/assistant exchange per example (its overview → its tagline): few-shot.
    Exchanges,
}

/// The tagline prompt's token limits.
pub const BUDGET: Budget = Budget {
    max_prompt_tokens: 768,
    max_overview_tokens: 96,
};

/// How every prompt begins, whatever the idea, examples or style: the system turn and the
/// opening of the user turn. [`crate::generate::Generator::prime`] runs it ahead of time.
pub fn prompt_prefix() -> String {
    format!("{}{}", turn("system", SYSTEM_PROMPT), open_turn("user"))
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

fn too_long(tokens: usize, budget: Budget) -> Error {
    Error::PromptTooLong {
        tokens,
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
            "{}{}{}",
            turn("system", SYSTEM_PROMPT),
            turn("user", &user),
            assistant_reply()
        )
    };
    let bare = count(&assemble(&[]));
    if bare > budget.max_prompt_tokens {
        return Err(too_long(bare, budget));
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
        "{}{}",
        turn("user", &format!("Overview: {idea}")),
        assistant_reply()
    );
    let base = count(&head) + count(&tail);
    if base > budget.max_prompt_tokens {
        return Err(too_long(base, budget));
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
    use crate::catalogue::Movie;
    use crate::task::prompt::words;

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
        let (prompt, kept) =
            build_prompt("a giant squid", &ex, PromptStyle::Exchanges, BUDGET, &words)
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
                build_prompt(" ", &[], style, BUDGET, &words),
                Err(Error::EmptyQuery)
            ));
            let huge = "word ".repeat(2000);
            let err = build_prompt(&huge, &[], style, BUDGET, &words).expect_err("too long");
            assert!(matches!(err, Error::PromptTooLong { .. }));
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
                    build_prompt("a squid", examples, style, BUDGET, &words).expect("fits");
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
            BUDGET,
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
