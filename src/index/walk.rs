//! Our search over instant-distance's graph (see `graph.rs`).
//!
//! Two things make it faster than instant-distance's own search, and one more accurate:
//!
//! - Memory: a graph search at 50k points waits on memory more than it computes (every
//!   distance reads a 384-byte vector from a random place). Before scoring a node's
//!   neighbours it asks for all of their vectors at once, and for those of the node it will
//!   expand next, and for the neighbour lists of nodes it keeps, so the misses overlap
//!   instead of coming one after another.
//! - Scoring: the walk compares the quantized query with the stored vectors in integers
//!   (exact, and a third of the float dot product's instructions); the nodes it keeps are
//!   then re-scored with the exact function of exact mode, so both modes rank alike.
//! - Navigation: on a catalogue of near-duplicates (the benchmark's tiled copies, or a film
//!   and its re-releases) a layer-0 list spends most of its 64 slots on copies of a few
//!   films, and classic HNSW, greedy down to layer 1 and one beam on layer 0, gets stuck
//!   among the wrong films for queries far from everything. Layer 1 (about 30% of the
//!   points) has few copies per film, so a wide beam there (`Navigation::layer1_ef`) finds the
//!   right regions, and its seeds come from an exact scan of layer 2 (about 8% of the
//!   points, stored first and contiguously, so the scan streams).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::graph::{neighbours, Graph, M};
use super::vector::{dot_f32_i8, dot_i8, QuantizedVector};
use super::{Navigation, WIDTH};

/// One stored vector, aligned so that it spans exactly six cache lines.
#[derive(Clone)]
#[repr(C, align(64))]
pub struct Row(pub [i8; WIDTH]);

/// The int8 vectors and their scales, in graph order.
pub struct Vectors {
    pub rows: Vec<Row>,
    pub scales: Vec<f32>,
}

impl Vectors {
    /// Cosine of the float `query` with vector `i`: the one scoring function of both modes.
    pub fn score(&self, query: &[f32], i: usize) -> f32 {
        dot_f32_i8(query, &self.rows[i].0) * self.scales[i]
    }

    /// Cosine of the quantized `query` with vector `i`, in integers: the walk's score.
    fn approximate_score(&self, query: &QuantizedVector<WIDTH>, i: usize) -> f32 {
        dot_i8(query.values(), &self.rows[i].0) as f32 * (query.scale() * self.scales[i])
    }

    /// Starts loading vector `i` into cache; the search scores it a little later.
    #[inline]
    fn prefetch(&self, i: usize) {
        prefetch(&self.rows[i]);
    }
}

/// Starts loading `item` into cache. Graph search waits on memory more than on arithmetic,
/// and a load asked for early overlaps with the work done until it is needed.
#[inline]
fn prefetch<T>(item: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let start = item as *const T as *const i8;
        for line in (0..std::mem::size_of::<T>()).step_by(64) {
            // SAFETY: prefetching is a hint and never faults; the address is inside `item`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.add(line)) };
        }
    }
    // wasm has no prefetch; the browser's catalogue is small enough not to need it.
    #[cfg(not(target_arch = "x86_64"))]
    let _ = item;
}

/// A node and its score. Ordered by score, then by node so that equal scores order the same
/// way on every run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub score: f32,
    pub node: u32,
}

impl Eq for Scored {}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then(other.node.cmp(&self.node))
    }
}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Which nodes a search has scored: one bit each, cleared per search (6 KB at 50k points).
struct Visited(Vec<u64>);

impl Visited {
    fn new(n: usize) -> Self {
        Self(vec![0; n.div_ceil(64)])
    }

    fn contains(&self, node: u32) -> bool {
        self.0[node as usize / 64] & (1u64 << (node % 64)) != 0
    }

    /// Marks `node`; true if it was not marked before.
    fn insert(&mut self, node: u32) -> bool {
        let (word, bit) = (node as usize / 64, 1u64 << (node % 64));
        let fresh = self.0[word] & bit == 0;
        self.0[word] |= bit;
        fresh
    }
}

/// Every node the layer-0 search kept, scored exactly, in no particular order.
/// `ef` is the beam's width on layer 0 (HNSW's ef); `navigation` says how the walk gets
/// there.
pub fn search(
    graph: &Graph,
    vectors: &Vectors,
    query: &[f32],
    ef: usize,
    navigation: Navigation,
) -> Vec<Scored> {
    let Some(quantized) = QuantizedVector::<WIDTH>::quantize(query) else {
        return Vec::new(); // unreachable: the index checked the width
    };
    let mut walk = Walk {
        vectors,
        query: &quantized,
        fresh: Vec::with_capacity(2 * M),
        scored: Vec::with_capacity(2 * M),
    };
    // Seeds for layer 1. The layers are nested prefixes: layer l holds the points
    // 0..upper[l - 1].len(), so a node of one layer is a node of every layer below it.
    let mut seeds = match (navigation.scan, graph.upper.len()) {
        (_, 0) => vec![walk.score(0)],
        (true, layers) => walk.best_of(graph.upper[layers.min(2) - 1].len(), navigation.layer1_ef),
        (false, _) => {
            let mut best = vec![walk.score(0)];
            for layer in graph.upper[1..].iter().rev() {
                let mut visited = Visited::new(layer.len());
                best = walk.beam(layer, &mut visited, &best, 1);
            }
            best
        }
    };
    if let Some(layer1) = graph.upper.first() {
        let mut visited = Visited::new(layer1.len());
        seeds = walk.beam(layer1, &mut visited, &seeds, navigation.layer1_ef.max(1));
    }
    let mut visited = Visited::new(graph.len());
    let mut kept = walk.beam(&graph.zero, &mut visited, &seeds, ef.max(1));
    for s in &mut kept {
        s.score = vectors.score(query, s.node as usize);
    }
    kept
}

/// One search's query and scratch lists. The walk compares the quantized query with the
/// stored vectors in integers (a third of the float dot product's instructions, and exact, so
/// the same path everywhere); what it keeps is re-scored exactly at the end.
struct Walk<'a> {
    vectors: &'a Vectors,
    query: &'a QuantizedVector<WIDTH>,
    /// Nodes about to be scored, then their scores.
    fresh: Vec<u32>,
    scored: Vec<Scored>,
}

impl Walk<'_> {
    /// The best `count` of the points `0..len`, scored in order (a streaming scan).
    fn best_of(&self, len: usize, count: usize) -> Vec<Scored> {
        let mut all: Vec<Scored> = (0..len as u32).map(|n| self.score(n)).collect();
        let count = count.clamp(1, all.len());
        if count < all.len() {
            all.select_nth_unstable_by(count - 1, |a, b| b.cmp(a));
            all.truncate(count);
        }
        all
    }

    fn score(&self, node: u32) -> Scored {
        Scored {
            score: self.vectors.approximate_score(self.query, node as usize),
            node,
        }
    }

    /// Scores `fresh` into `scored`, loading all the vectors first so the misses overlap.
    fn score_fresh(&mut self) {
        for &n in &self.fresh {
            self.vectors.prefetch(n as usize);
        }
        self.scored.clear();
        for i in 0..self.fresh.len() {
            let s = self.score(self.fresh[i]);
            self.scored.push(s);
        }
    }

    /// HNSW's search on one layer: from `seeds`, keeps the `ef` best nodes seen, always
    /// expanding the best one not yet expanded, until none left could improve the kept set.
    fn beam<L: AsRef<[u32]>>(
        &mut self,
        lists: &[L],
        visited: &mut Visited,
        seeds: &[Scored],
        ef: usize,
    ) -> Vec<Scored> {
        // `frontier` pops the best unexpanded node, `kept` the worst kept one.
        let mut frontier = BinaryHeap::with_capacity(4 * ef);
        let mut kept = BinaryHeap::with_capacity(ef + 1);
        for &s in seeds {
            if visited.insert(s.node) {
                frontier.push(s);
                kept.push(Reverse(s));
            }
        }
        while kept.len() > ef {
            kept.pop();
        }
        while let Some(current) = frontier.pop() {
            if kept.len() >= ef && kept.peek().is_some_and(|w: &Reverse<Scored>| current < w.0) {
                break; // nothing left in the frontier can improve the kept set
            }
            // One expansion ahead: the next node's new neighbours start loading now and arrive
            // while this node's are scored (its list was prefetched when it was pushed).
            if let Some(next) = frontier.peek() {
                for &n in neighbours(lists[next.node as usize].as_ref()) {
                    if !visited.contains(n) {
                        self.vectors.prefetch(n as usize);
                    }
                }
            }
            self.fresh.clear();
            let links = neighbours(lists[current.node as usize].as_ref());
            self.fresh
                .extend(links.iter().copied().filter(|&n| visited.insert(n)));
            self.score_fresh();
            for &s in &self.scored {
                if kept.len() < ef || kept.peek().is_some_and(|w| s > w.0) {
                    // Likely expanded soon: its neighbour list is the next random load.
                    prefetch(&lists[s.node as usize]);
                    frontier.push(s);
                    kept.push(Reverse(s));
                    if kept.len() > ef {
                        kept.pop();
                    }
                }
            }
        }
        kept.into_iter().map(|r| r.0).collect()
    }
}
