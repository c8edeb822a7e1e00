//! Training data for the Ask reader: each training question's prompt exactly as the page
//! builds it (`task::ask`: the same fused retrieval, the same passages within the same
//! budget) and its answer. When the passages in the prompt hold none of the right answers,
//! the answer taught is "I don't know." rather than the fact, so the reader learns to read,
//! not to recall (as RAFT mixes in prompts without the useful document).

use std::collections::HashSet;

use super::data::TrainingExample;
use crate::embed::Embedder;
use crate::error::Result;
use crate::generate::chat::END_OF_TURN;
use crate::generate::Generator;
use crate::qa::metrics::normalize;
use crate::qa::questions::Question;
use crate::qa::PassageIndex;
use crate::task::ask::{build_prompt, AskRequest, UNKNOWN};

/// The answer a prompt teaches: the first right answer its passages contain, else
/// [`UNKNOWN`].
pub fn taught_answer(passages_text: &str, answers: &[String]) -> String {
    let haystack = format!(" {} ", normalize(passages_text));
    answers
        .iter()
        .find(|a| {
            let a = normalize(a);
            !a.is_empty() && haystack.contains(&format!(" {a} "))
        })
        .cloned()
        .unwrap_or_else(|| UNKNOWN.to_string())
}

/// One training example per question (`movie` is its first movie), with `request`'s
/// retrieval settings. The questions for which `absent` is true are asked as if their
/// movies were missing from the catalogue (their passages are about other movies, so the
/// answer taught is almost always [`UNKNOWN`]): what the page must say for a movie it lacks,
/// which the relevance threshold alone rarely catches.
pub fn ask_examples(
    passages: &PassageIndex,
    embedder: &Embedder,
    generator: &Generator,
    questions: &[Question],
    request: &AskRequest,
    absent: impl Fn(&Question) -> bool,
) -> Result<Vec<TrainingExample>> {
    let count = |text: &str| generator.count_tokens(text).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(questions.len());
    for q in questions {
        let embedding = embedder.embed_query(&q.text)?;
        let exclude: HashSet<usize> = if absent(q) {
            q.movies.iter().copied().collect()
        } else {
            HashSet::new()
        };
        let hits = passages.search(&q.text, &embedding, request.k, request.signal, &exclude)?;
        let texts: Vec<String> = hits
            .iter()
            .map(|h| passages.passages.chunk_text(h.chunk))
            .collect();
        let (prompt, kept) = build_prompt(&q.text, &texts, request.max_context_tokens, &count)?;
        let answer = taught_answer(&texts[..kept].join("\n"), &q.answers);
        let mut ids = generator.encode(&prompt)?;
        let prompt_len = ids.len();
        ids.extend(generator.encode(&format!("{answer}{END_OF_TURN}"))?);
        out.push(TrainingExample {
            movie: q.movies.first().copied().unwrap_or_default(),
            answer: (0..ids.len()).map(|i| i >= prompt_len).collect(),
            ids,
            examples: hits.iter().take(kept).map(|h| h.movie).collect(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_taught_answer_is_one_the_passage_holds() {
        let passage =
            "Alien (1979): Starring Tom Skerritt as Dallas and Sigourney Weaver as Ripley.";
        let answers = vec!["Sigourney Weaver".to_string(), "Tom Skerritt".to_string()];
        assert_eq!(taught_answer(passage, &answers), "Sigourney Weaver");
        assert_eq!(taught_answer(passage, &["Ian Holm".to_string()]), UNKNOWN);
        // Whole words only: "Tom" is not "Tom Skerritt"'s answer "Tom S".
        assert_eq!(taught_answer(passage, &["Tom S".to_string()]), UNKNOWN);
    }
}
