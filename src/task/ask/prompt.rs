//! The Ask prompt: the question, after the best passages that fit a token budget, in
//! SmolLM2's chat template. Passages are quoted as text; whatever they say (an instruction
//! inside an overview included) stays inside the user turn, as data.

use crate::error::{Error, Result};
use crate::generate::chat::{assistant_reply, open_turn, turn};
use crate::task::prompt::first_words;

pub const SYSTEM_PROMPT: &str = "You answer questions about movies from the passage given. \
Reply with the answer only: a name, a title, a year or a few words.";

/// What every prompt begins with: the system turn and the opening of the user turn,
/// primed into the KV cache ahead of time.
pub fn prompt_prefix() -> String {
    format!("{}{}", turn("system", SYSTEM_PROMPT), open_turn("user"))
}

/// The whole prompt for `question` with `passages` (best first); passages that would take
/// the passages past `max_context_tokens` (counted by `count`) are left out, but the best
/// one is always kept, cut at a word if it must be. Returns the prompt and how many
/// passages it holds.
pub fn build_prompt(
    question: &str,
    passages: &[String],
    max_context_tokens: usize,
    count: &dyn Fn(&str) -> usize,
) -> Result<(String, usize)> {
    let question = question.trim();
    if question.is_empty() {
        return Err(Error::EmptyQuery);
    }
    let mut kept: Vec<String> = Vec::new();
    let mut used = 0;
    for passage in passages {
        let tokens = count(passage);
        if used + tokens <= max_context_tokens {
            used += tokens;
            kept.push(passage.clone());
        } else if kept.is_empty() {
            kept.push(first_words(passage, max_context_tokens, "", count));
            break;
        } else {
            break;
        }
    }
    let user = if kept.is_empty() {
        format!("Question: {question}")
    } else {
        format!("Passage: {}\nQuestion: {question}", kept.join("\n"))
    };
    let prompt = format!(
        "{}{}{}",
        turn("system", SYSTEM_PROMPT),
        turn("user", &user),
        assistant_reply()
    );
    Ok((prompt, kept.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::prompt::words;

    #[test]
    fn passages_fit_the_budget_best_first_and_the_prefix_is_shared() {
        let passages = vec![
            "Alien (1979): Directed by Ridley Scott.".to_string(),
            "Alien (1979): Music by Jerry Goldsmith.".to_string(),
        ];
        let (prompt, kept) =
            build_prompt(" Who directed Alien? ", &passages, 6, &words).expect("ok");
        assert_eq!(kept, 1);
        assert!(prompt.starts_with(&prompt_prefix()));
        assert!(prompt.contains("Passage: Alien (1979): Directed by Ridley Scott.\nQuestion: Who directed Alien?<|im_end|>"));
        assert!(prompt.ends_with("<|im_start|>assistant\n"));
        let (_, kept) = build_prompt("q", &passages, 100, &words).expect("ok");
        assert_eq!(kept, 2);
        let (prompt, kept) = build_prompt("q", &passages, 3, &words).expect("ok");
        assert_eq!(kept, 1);
        assert!(
            prompt.contains("Passage: Alien (1979): Directed\n"),
            "{prompt}"
        );
        let (prompt, kept) = build_prompt("Who directed Alien?", &[], 100, &words).expect("ok");
        assert_eq!(kept, 0);
        assert!(prompt.contains("user\nQuestion: Who directed Alien?"));
        assert!(matches!(
            build_prompt("  ", &passages, 9, &words),
            Err(Error::EmptyQuery)
        ));
    }
}
