//! Retrieval-augmented training data for the tagline task: for each training movie, the
//! prompt the page would build from its overview, holding the taglines of the movies most
//! similar to it, and its real tagline as the answer. The prompt comes from the task's own
//! code (`task::tagline`), so the model learns the prompt it will see.
//!
//! A movie never serves as its own example, nor does a movie with the same tagline, nor a
//! held-out one (the evaluation's), and held-out movies are never trained on. As in RAFT,
//! some examples are replaced by random movies' taglines and some dropped, so the model
//! learns to use what is retrieved without copying it.

use std::collections::HashSet;

use super::lora::Rng;
use crate::error::{Error, Result};
use crate::generate::chat::END_OF_TURN;
use crate::generate::Generator;
use crate::index::SearchMode;
use crate::retriever::Retriever;
use crate::task::tagline::{build_prompt, retrieved_examples, Example, PromptStyle, BUDGET};

/// How training prompts are made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DataOptions {
    /// Examples per prompt.
    pub k: usize,
    /// The share of examples replaced by a random movie's.
    pub random_share: f64,
    /// The share of examples dropped.
    pub drop_share: f64,
    pub style: PromptStyle,
    pub seed: u64,
}

impl Default for DataOptions {
    fn default() -> Self {
        Self {
            k: 4,
            random_share: 0.2,
            drop_share: 0.1,
            style: PromptStyle::default(),
            seed: 7,
        }
    }
}

/// One training example.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingExample {
    /// The movie it teaches (its catalogue position).
    pub movie: usize,
    /// The prompt's tokens, then the answer's (the tagline and the end of the turn).
    pub ids: Vec<u32>,
    /// Which of `ids` the loss counts: the answer's.
    pub answer: Vec<bool>,
    /// The movies whose taglines are in the prompt, in order.
    pub examples: Vec<usize>,
}

fn same_tagline(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Training examples for `movies` (catalogue positions; those without a tagline or in
/// `held_out` are skipped), reproducible for `options.seed`.
pub fn training_examples(
    retriever: &Retriever,
    generator: &Generator,
    movies: &[usize],
    held_out: &HashSet<usize>,
    options: DataOptions,
) -> Result<Vec<TrainingExample>> {
    let catalogue = retriever.movies();
    let pool: Vec<usize> = (0..catalogue.len())
        .filter(|i| catalogue[*i].tagline.is_some() && !held_out.contains(i))
        .collect();
    if pool.len() < 2 {
        return Err(Error::Catalogue(
            "fine-tuning needs a catalogue with taglines: too few movies have one".into(),
        ));
    }
    let mut rng = Rng::new(options.seed);
    let count = |text: &str| generator.count_tokens(text).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(movies.len());
    for &m in movies {
        let movie = &catalogue[m];
        let Some(tagline) = movie.tagline.as_deref() else {
            continue;
        };
        if held_out.contains(&m) {
            continue;
        }
        let mut exclude = held_out.clone();
        exclude.insert(m);
        let embedding = retriever.embedder().embed_query(&movie.overview)?;
        let mut examples: Vec<Example> = retrieved_examples(
            retriever,
            &embedding,
            options.k * 2,
            SearchMode::Exact,
            &exclude,
        )?
        .into_iter()
        .filter(|e| {
            !e.movie
                .tagline
                .as_deref()
                .is_some_and(|t| same_tagline(t, tagline))
        })
        .take(options.k)
        .collect();
        let mut mixed = Vec::with_capacity(examples.len());
        for example in examples.drain(..) {
            let roll = (rng.uniform() + 1.0) / 2.0;
            if roll < options.drop_share {
                continue;
            }
            if roll < options.drop_share + options.random_share {
                let r = pool[rng.below(pool.len())];
                let other = catalogue[r].tagline.as_deref().unwrap_or_default();
                if r != m && !same_tagline(other, tagline) {
                    mixed.push(Example {
                        movie: &catalogue[r],
                        index: Some(r),
                        similarity: None,
                    });
                    continue;
                }
            }
            mixed.push(example);
        }
        let (prompt, kept) = build_prompt(&movie.overview, &mixed, options.style, BUDGET, &count)?;
        let mut ids = generator.encode(&prompt)?;
        // The answer as the model writes it: the tagline, then the end of its turn.
        let answer_ids = generator.encode(&format!("{tagline}{END_OF_TURN}"))?;
        let prompt_len = ids.len();
        ids.extend(answer_ids);
        let answer = (0..ids.len()).map(|i| i >= prompt_len).collect();
        out.push(TrainingExample {
            movie: m,
            ids,
            answer,
            examples: mixed.iter().take(kept).filter_map(|e| e.index).collect(),
        });
    }
    Ok(out)
}

/// The order `n` examples are trained in over `epochs` epochs: each epoch a shuffle of them
/// (Fisher–Yates on the seeded generator), reproducible for `seed`.
pub fn training_order(n: usize, epochs: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let mut all = Vec::with_capacity(n * epochs);
    for _ in 0..epochs {
        let mut epoch: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            epoch.swap(i, rng.below(i + 1));
        }
        all.extend(epoch);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_epoch_is_a_reproducible_shuffle() {
        let order = training_order(50, 3, 7);
        assert_eq!(order.len(), 150);
        for epoch in order.chunks(50) {
            let mut sorted = epoch.to_vec();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        }
        assert_ne!(order[..50], order[50..100], "epochs are shuffled apart");
        assert_eq!(order, training_order(50, 3, 7));
        assert_ne!(order, training_order(50, 3, 8));
    }
}
