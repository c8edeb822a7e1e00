//! Each hypothesis's keys and values, on the generator's one KV cache.
//!
//! The prompt's positions go into the cache once (the prefill) and stay there for the whole
//! search. Past them, a hypothesis's own positions are at most `max_tokens`, and most are
//! shared with the others (they grow from one tree): each tree node keeps the one position
//! its token produced when it ran (every layer's key and value row, 46 kB on SmolLM2),
//! saved right after its pass. Before a hypothesis runs, the cache is rewound to where its
//! path and the path now in the cache part, and the saved positions of the rest of its path
//! are appended; the token then runs as a single-token decode step. So each hypothesis sees
//! exactly the keys and values, bit for bit, that decoding it alone token by token would
//! have (the cache stores them as computed and attention reads them in one order whatever
//! the capacity), width 1 never copies anything, and a round costs `width` one-token passes
//! plus copies of the few positions where hypotheses differ. Positions of nodes no live
//! hypothesis descends from are dropped after each round.
//!
//! Batching the hypotheses into one pass would read the weights once per round instead of
//! `width` times, but needs attention over a different cache per row: a change to both
//! models' layers, left for later.

use super::search::{Scorer, Tree, ROOT};
use crate::error::{Error, Result};
use crate::generate::attention::SavedRows;
use crate::generate::{Generator, StopReason};

/// Where the search's keys and values are.
pub(super) struct NodeCache {
    prompt: Vec<u32>,
    /// Prompt tokens the cache held already at the start (no prefill needed).
    cached_prompt: usize,
    /// Per tree node, its position's keys and values once its token has run.
    positions: Vec<Option<Vec<SavedRows>>>,
    /// The node whose path is in the generator's cache after the prompt.
    resident: usize,
}

impl NodeCache {
    pub fn new(prompt: &[u32], cached_prompt: usize) -> Self {
        Self {
            prompt: prompt.to_vec(),
            cached_prompt,
            positions: Vec::new(),
            resident: ROOT,
        }
    }

    /// Makes the generator's cache hold the prompt and then `target`'s path.
    fn bring_back(&mut self, generator: &mut Generator, tree: &Tree, target: usize) -> Result<()> {
        let want = tree.path(target);
        let have = tree.path(self.resident);
        let shared = want.iter().zip(&have).take_while(|(a, b)| a == b).count();
        if shared == want.len() && shared == have.len() {
            return Ok(());
        }
        let rest = &want[shared..];
        let tokens: Vec<u32> = rest.iter().map(|&n| tree.node(n).token).collect();
        let saved = rest
            .iter()
            .map(|&n| {
                self.positions
                    .get(n)
                    .and_then(|p| p.as_deref())
                    .ok_or_else(|| {
                        Error::Generation(format!(
                            "beam search has no keys and values for hypothesis node {n}"
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        generator.rewind_and_append(self.prompt.len() + shared, &tokens, &saved)?;
        self.resident = target;
        Ok(())
    }
}

/// The generator as the search's [`Scorer`], for one step.
pub(super) struct ModelScorer<'a> {
    pub generator: &'a mut Generator,
    pub cache: &'a mut NodeCache,
    /// Whether a text has ended by the task's rule.
    pub ends: &'a (dyn Fn(&str) -> bool + Send),
}

impl Scorer for ModelScorer<'_> {
    fn logits(&mut self, tree: &Tree, node: usize) -> Result<Vec<f32>> {
        let cache = &mut *self.cache;
        let logits = if node == ROOT {
            let reuse = cache.cached_prompt;
            self.generator.run(&cache.prompt[reuse..], reuse)?
        } else {
            let n = tree.node(node);
            cache.bring_back(self.generator, tree, n.parent)?;
            let at = cache.prompt.len() + n.depth - 1;
            let logits = self.generator.run(&[n.token], at)?;
            if cache.positions.len() <= node {
                cache.positions.resize_with(node + 1, || None);
            }
            cache.positions[node] = Some(self.generator.save_position(at));
            logits
        };
        cache.resident = node;
        Ok(logits.to_vec1::<f32>()?)
    }

    fn ending(&self, tokens: &[u32]) -> Result<Option<StopReason>> {
        if tokens
            .last()
            .is_some_and(|&t| self.generator.is_end_token(t))
        {
            return Ok(Some(StopReason::EndOfText));
        }
        let text = self.generator.decode(tokens)?;
        Ok((self.ends)(&text).then_some(StopReason::EndOfLine))
    }

    fn retain(&mut self, needed: &[bool]) {
        for (node, saved) in self.cache.positions.iter_mut().enumerate() {
            if !needed.get(node).copied().unwrap_or(false) {
                *saved = None;
            }
        }
    }
}
