//! Which movies serve as a tagline prompt's examples: the ones most similar to the idea (the
//! product), random ones or none (the evaluation's baselines), never a held-out one.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::catalogue::Movie;
use crate::error::Result;
use crate::index::SearchMode;
use crate::retriever::Retriever;

/// Where the few-shot examples come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExampleSource {
    /// The movies most similar to the idea.
    #[default]
    Retrieved,
    /// Movies drawn by a seeded generator (deterministic for a seed).
    Random,
    None,
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
