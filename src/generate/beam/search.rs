//! The search itself, apart from any model: a tree of hypotheses, rounds of expansion and
//! selection, the best finished hypothesis, and the tokens every hypothesis that can still
//! win shares (what may be shown).
//!
//! A round runs the model once per live hypothesis (each one a [`Beams::advance`], so a
//! caller can stop between any two passes), keeps each one's `width` likeliest next tokens
//! (less any that would repeat an n-gram of it, when asked), then keeps the `width` best of those by summed log-probability: all live hypotheses have
//! the same length, so the raw sum ranks them as the normalised score would. A chosen
//! token that ends its hypothesis (the end-of-turn token, the task's stop rule, the token
//! limit) moves it to the finished ones, compared by normalised score; the beam then holds
//! fewer than `width`. Keeping only the chosen `width` (not refilling from further down the
//! list, as some implementations do) is what makes width 1 exactly greedy decoding: the
//! likeliest token each time, ending at the first end token.
//!
//! Every order is total and fixed: ties go to the earlier hypothesis, then the lower token
//! id, and log-probabilities have the same bits on every CPU (`logprob.rs`).

use std::cmp::Ordering;

use super::logprob::{length_divisor, log_sum_exp};
use super::BeamParams;
use crate::error::{Error, Result};
use crate::generate::StopReason;

/// The tree's root: the prompt, before any generated token.
pub(crate) const ROOT: usize = 0;

/// One generated token of some hypothesis; its ancestors are the tokens before it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node {
    pub token: u32,
    pub parent: usize,
    /// Generated tokens up to and including this one (0 for the root).
    pub depth: usize,
}

/// Every hypothesis ever made, sharing their common beginnings.
pub(crate) struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    fn new() -> Self {
        Self {
            nodes: vec![Node {
                token: u32::MAX,
                parent: ROOT,
                depth: 0,
            }],
        }
    }

    fn push(&mut self, parent: usize, token: u32) -> usize {
        let depth = self.nodes[parent].depth + 1;
        self.nodes.push(Node {
            token,
            parent,
            depth,
        });
        self.nodes.len() - 1
    }

    pub fn node(&self, id: usize) -> Node {
        self.nodes[id]
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The nodes from the first generated token to `id`, in order (empty for the root).
    pub fn path(&self, id: usize) -> Vec<usize> {
        let mut path = Vec::with_capacity(self.nodes[id].depth);
        let mut at = id;
        while at != ROOT {
            path.push(at);
            at = self.nodes[at].parent;
        }
        path.reverse();
        path
    }

    /// The generated tokens of hypothesis `id`.
    pub fn tokens(&self, id: usize) -> Vec<u32> {
        self.path(id).iter().map(|&n| self.nodes[n].token).collect()
    }
}

/// What the search needs of a model. The search owns the hypotheses; the scorer owns
/// whatever it keeps per hypothesis (the model's keys and values, `kv.rs`).
pub(crate) trait Scorer {
    /// Logits of the token after hypothesis `node` (the prompt, then `tree.tokens(node)`);
    /// the root's call is the prompt's prefill.
    fn logits(&mut self, tree: &Tree, node: usize) -> Result<Vec<f32>>;
    /// Whether the generated `tokens` end with their last one, and why: `EndOfText` for an
    /// end token, `EndOfLine` when the task's rule ends the text there.
    fn ending(&self, tokens: &[u32]) -> Result<Option<StopReason>>;
    /// Only the nodes marked in `needed` will be run on again; the rest may be forgotten.
    fn retain(&mut self, needed: &[bool]);
}

/// A hypothesis still growing: its last node (whose token has not run yet) and its summed
/// log-probability.
#[derive(Debug, Clone, Copy)]
struct Live {
    node: usize,
    sum: f64,
}

/// A possible next token of the live hypothesis at `parent` (its index in the beam).
#[derive(Debug, Clone, Copy)]
struct Candidate {
    parent: usize,
    token: u32,
    sum: f64,
}

/// Higher sum first; ties to the earlier hypothesis, then the lower token id.
fn order(a: &Candidate, b: &Candidate) -> Ordering {
    b.sum
        .total_cmp(&a.sum)
        .then(a.parent.cmp(&b.parent))
        .then(a.token.cmp(&b.token))
}

/// An ended hypothesis. `tokens` leaves out an end token; `length` counts it (ending is one
/// of the model's choices, and its probability is in `sum`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Finished {
    pub tokens: Vec<u32>,
    pub sum: f64,
    pub length: usize,
    /// `sum / length^length_penalty`.
    pub score: f64,
    pub stop: StopReason,
}

/// What one [`Beams::advance`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Ran one hypothesis; the round goes on.
    Expanded,
    /// Ended a round: the beam holds the next tokens' hypotheses.
    Round,
    /// Nothing can beat [`Beams::best`] any more.
    Done,
}

/// A beam search in progress.
pub(crate) struct Beams {
    params: BeamParams,
    tree: Tree,
    live: Vec<Live>,
    /// How many of `live` this round has run.
    expanded: usize,
    candidates: Vec<Candidate>,
    best: Option<Finished>,
}

impl Beams {
    pub fn new(params: BeamParams) -> Self {
        let mut beams = Self {
            params,
            tree: Tree::new(),
            live: vec![Live {
                node: ROOT,
                sum: 0.0,
            }],
            expanded: 0,
            candidates: Vec::new(),
            best: None,
        };
        if params.max_tokens == 0 {
            // As a sampled decoding: nothing to generate, and no model pass for it.
            beams.live.clear();
            beams.best = Some(Finished {
                tokens: Vec::new(),
                sum: 0.0,
                length: 0,
                score: 0.0,
                stop: StopReason::MaxTokens,
            });
        }
        beams
    }

    /// Runs the model on the next live hypothesis; after the round's last, chooses the
    /// next round's hypotheses.
    pub fn advance(&mut self, scorer: &mut impl Scorer) -> Result<Progress> {
        let Some(&Live { node, sum }) = self.live.get(self.expanded) else {
            return Ok(Progress::Done);
        };
        let logits = scorer.logits(&self.tree, node)?;
        let banned = repeats(&self.tree.tokens(node), self.params.no_repeat_ngram);
        self.push_candidates(&logits, sum, &banned)?;
        self.expanded += 1;
        if self.expanded < self.live.len() {
            return Ok(Progress::Expanded);
        }
        self.select(scorer)?;
        Ok(if self.live.is_empty() {
            Progress::Done
        } else {
            Progress::Round
        })
    }

    /// The best finished hypothesis so far (the result, once done).
    pub fn best(&self) -> Option<&Finished> {
        self.best.as_ref()
    }

    /// Generated tokens per live hypothesis (the best's once none is live).
    pub fn depth(&self) -> usize {
        match self.live.first() {
            // The last token of a live hypothesis is chosen but not run yet.
            Some(h) => self.tree.node(h.node).depth,
            None => self.best.as_ref().map_or(0, |b| b.tokens.len()),
        }
    }

    /// The tokens that every hypothesis that can still win starts with: the result will
    /// start with them too, so their text can be shown and never taken back.
    pub fn certain(&self) -> Vec<u32> {
        let mut paths = self.live.iter().map(|h| self.tree.tokens(h.node));
        let mut prefix = match &self.best {
            Some(best) => best.tokens.clone(),
            None => paths.next().unwrap_or_default(),
        };
        for path in paths {
            let shared = prefix.iter().zip(&path).take_while(|(a, b)| a == b).count();
            prefix.truncate(shared);
        }
        prefix
    }

    /// Adds the `width` likeliest next tokens of the hypothesis being expanded, except
    /// `banned` ones.
    fn push_candidates(&mut self, logits: &[f32], sum: f64, banned: &[u32]) -> Result<()> {
        let lse = log_sum_exp(logits)
            .ok_or_else(|| Error::Generation("the model's logits are not finite numbers".into()))?;
        let width = self.params.width;
        let mut top: Vec<Candidate> = Vec::with_capacity(width + 1);
        for (token, &logit) in logits.iter().enumerate() {
            let candidate = Candidate {
                parent: self.expanded,
                token: token as u32,
                sum: sum + (logit as f64 - lse),
            };
            if top.len() == width && order(&candidate, &top[width - 1]) != Ordering::Less
                || banned.contains(&candidate.token)
            {
                continue;
            }
            let at = top.partition_point(|t| order(t, &candidate) == Ordering::Less);
            top.insert(at, candidate);
            top.truncate(width);
        }
        self.candidates.extend(top);
        Ok(())
    }

    /// Keeps the round's `width` best candidates: the ended ones are offered as the result,
    /// the rest form the next beam, less those that can no longer win.
    fn select(&mut self, scorer: &mut impl Scorer) -> Result<()> {
        let mut candidates = std::mem::take(&mut self.candidates);
        candidates.sort_by(order);
        candidates.truncate(self.params.width);
        let mut live = Vec::with_capacity(candidates.len());
        for c in candidates {
            let node = self.tree.push(self.live[c.parent].node, c.token);
            let length = self.tree.node(node).depth;
            let mut tokens = self.tree.tokens(node);
            let stop = match scorer.ending(&tokens)? {
                Some(StopReason::EndOfText) => {
                    tokens.pop();
                    Some(StopReason::EndOfText)
                }
                Some(reason) => Some(reason),
                None if length >= self.params.max_tokens => Some(StopReason::MaxTokens),
                None => None,
            };
            match stop {
                Some(stop) => self.offer(Finished {
                    tokens,
                    sum: c.sum,
                    length,
                    score: c.sum / length_divisor(length, self.params.length_penalty),
                    stop,
                }),
                None => live.push(Live { node, sum: c.sum }),
            }
        }
        // Log-probabilities are ≤ 0, so a hypothesis's sum only falls as it grows, and its
        // length stops at max_tokens: sum / max_tokens^α bounds every score it can reach.
        // One that cannot beat the best finished is dropped: it no longer holds back the
        // text shown, nor costs model passes.
        if let Some(best) = &self.best {
            let divisor = length_divisor(self.params.max_tokens, self.params.length_penalty);
            live.retain(|h| h.sum / divisor > best.score);
        }
        self.live = live;
        self.expanded = 0;
        let mut needed = vec![false; self.tree.len()];
        for h in &self.live {
            let mut at = self.tree.node(h.node).parent;
            while at != ROOT && !needed[at] {
                needed[at] = true;
                at = self.tree.node(at).parent;
            }
        }
        scorer.retain(&needed);
        Ok(())
    }

    /// Keeps `finished` if it beats the best so far (a tie keeps the earlier).
    fn offer(&mut self, finished: Finished) {
        if self.best.as_ref().is_none_or(|b| finished.score > b.score) {
            self.best = Some(finished);
        }
    }
}

/// The tokens that would repeat an n-gram of `tokens` (n = `n`; 0 bans nothing): those that
/// followed an earlier occurrence of its last n − 1 tokens.
fn repeats(tokens: &[u32], n: usize) -> Vec<u32> {
    if n == 0 || tokens.len() < n {
        return Vec::new();
    }
    let tail = &tokens[tokens.len() + 1 - n..];
    tokens
        .windows(n)
        .filter(|w| &w[..n - 1] == tail)
        .map(|w| w[n - 1])
        .collect()
}
