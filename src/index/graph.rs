//! instant-distance's HNSW graph, read as our own types.
//!
//! instant-distance builds the graph but gives no access to it, and its search cannot be
//! made to prefetch or to look past its beam. Its `HnswMap` is serde-serializable, though,
//! and postcard writes a struct as its fields in order, so types of ours with the same shape
//! read the same bytes. This module holds that mirror and checks what it read: neighbour ids
//! in range, layers nested, values a permutation. A change of instant-distance's layout fails
//! `mirror_matches_instant_distance` (instant-distance must read what the mirror writes,
//! search it alike and write it back byte for byte) instead of silently misreading graphs.
//!
//! The layout (instant-distance 0.6.1): points are stored in graph order, which is not the
//! catalogue order (`values[p]` is the catalogue position of point `p`). Point 0 is the
//! entry point. `zero[p]` lists up to 64 neighbours of `p` on layer 0, nearest first, and
//! `layers[l - 1]` is layer `l`, holding points `0..layers[l - 1].len()` with up to 32
//! neighbours each. An empty slot is `u32::MAX`; a list ends at its first empty slot.

use serde::{Deserialize, Serialize};
use serde_big_array::BigArray;

/// instant-distance's M: upper-layer lists hold M neighbours, layer 0 holds 2M.
pub const M: usize = 32;
/// An empty neighbour slot (instant-distance's invalid `PointId`).
pub const EMPTY: u32 = u32::MAX;

/// One point's layer-0 neighbours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZeroList(#[serde(with = "BigArray")] pub [u32; 2 * M]);

/// One point's neighbours on a layer above 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpperList(#[serde(with = "BigArray")] pub [u32; M]);

impl AsRef<[u32]> for ZeroList {
    fn as_ref(&self) -> &[u32] {
        &self.0
    }
}

impl AsRef<[u32]> for UpperList {
    fn as_ref(&self) -> &[u32] {
        &self.0
    }
}

/// The ids in a neighbour list, up to its first empty slot.
pub fn neighbours(list: &[u32]) -> &[u32] {
    let end = list.iter().position(|&p| p == EMPTY).unwrap_or(list.len());
    &list[..end]
}

/// Sets the slots after a list's first empty one to 0. Nothing reads past that slot (neither
/// [`neighbours`] nor instant-distance), but postcard writes each slot as a varint, and
/// instant-distance fills them with `EMPTY`, five bytes each: with pruned lists (about a
/// third full) that made the graph twice its size on disk. As 0 they take one byte.
fn zero_past_the_end(list: &mut [u32]) {
    if let Some(end) = list.iter().position(|&p| p == EMPTY) {
        list[end + 1..].fill(0);
    }
}

/// `HnswMap<P, u32>` field by field (`PointId` is a newtype over `u32`, which postcard
/// writes as the bare `u32`).
#[derive(Serialize, Deserialize)]
pub struct MapMirror<P> {
    pub hnsw: HnswMirror<P>,
    pub values: Vec<u32>,
}

/// `Hnsw<P>` field by field.
#[derive(Serialize, Deserialize)]
pub struct HnswMirror<P> {
    pub ef_search: usize,
    pub points: Vec<P>,
    pub zero: Vec<ZeroList>,
    pub layers: Vec<Vec<UpperList>>,
}

/// The graph's links, checked so that a search can index with them without bounds worries.
pub struct Graph {
    pub zero: Vec<ZeroList>,
    /// Layer `l` at `upper[l - 1]`; each layer is a prefix of the points below it.
    pub upper: Vec<Vec<UpperList>>,
    /// instant-distance's own copy of ef_search, kept so the bytes round-trip.
    pub stored_ef_search: usize,
}

impl Graph {
    /// Splits a deserialized mirror into its links, points and values, after checking that
    /// every id is in range and the values are a permutation of `0..n`.
    pub fn from_mirror<P>(mirror: MapMirror<P>) -> Result<(Self, Vec<P>, Vec<u32>), String> {
        let MapMirror { hnsw, values } = mirror;
        let n = hnsw.points.len();
        if n == 0 {
            return Err("the graph has no points".into());
        }
        if hnsw.zero.len() != n || values.len() != n {
            return Err(format!(
                "graph has {n} points, {} layer-0 lists and {} values",
                hnsw.zero.len(),
                values.len()
            ));
        }
        let mut seen = vec![false; n];
        for &v in &values {
            match seen.get_mut(v as usize) {
                Some(s) if !*s => *s = true,
                _ => return Err("graph values are not a permutation of the rows".into()),
            }
        }
        let in_range =
            |list: &[u32], len: usize| neighbours(list).iter().all(|&p| (p as usize) < len);
        if !hnsw.zero.iter().all(|l| in_range(&l.0, n)) {
            return Err("a layer-0 neighbour is out of range".into());
        }
        let mut below = n;
        for layer in &hnsw.layers {
            // Layer l is a non-empty prefix of layer l - 1 (it must hold the entry point 0),
            // and its links stay inside it.
            if layer.is_empty() || layer.len() > below {
                return Err("graph layers are not nested".into());
            }
            if !layer.iter().all(|l| in_range(&l.0, layer.len())) {
                return Err("an upper-layer neighbour is out of range".into());
            }
            below = layer.len();
        }
        let (mut zero, mut upper) = (hnsw.zero, hnsw.layers);
        zero.iter_mut().for_each(|l| zero_past_the_end(&mut l.0));
        upper
            .iter_mut()
            .flatten()
            .for_each(|l| zero_past_the_end(&mut l.0));
        let graph = Self {
            zero,
            upper,
            stored_ef_search: hnsw.ef_search,
        };
        Ok((graph, hnsw.points, values))
    }

    pub fn len(&self) -> usize {
        self.zero.len()
    }

    /// The mirror again, for writing: instant-distance reads these bytes as its `HnswMap`.
    pub fn to_mirror<P>(&self, points: Vec<P>, values: Vec<u32>) -> MapMirror<P> {
        MapMirror {
            hnsw: HnswMirror {
                ef_search: self.stored_ef_search,
                points,
                zero: self.zero.clone(),
                layers: self.upper.clone(),
            },
            values,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::vector::QuantizedVector;
    use instant_distance::{Builder, HnswMap, Search};

    type P = QuantizedVector<8>;

    fn points(n: usize) -> Vec<P> {
        (0..n)
            .map(|i| {
                let a = i as f32 * 0.37;
                let v = [
                    a.cos(),
                    a.sin(),
                    (a * 3.1).cos(),
                    (a * 1.7).sin(),
                    0.1,
                    0.0,
                    0.0,
                    0.0,
                ];
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                P::quantize(&v.map(|x| x / norm)).expect("8 wide")
            })
            .collect()
    }

    /// A graph built as the index builds its own (pruned lists, so most are not full).
    fn built(n: usize) -> HnswMap<P, u32> {
        // Ids reversed so that a mix-up of points and values cannot pass by accident.
        let ids = (0..n as u32).rev().collect();
        Builder::default()
            .seed(7)
            .select_heuristic(Some(crate::index::PRUNED_LISTS))
            .build(points(n), ids)
    }

    #[test]
    fn mirror_matches_instant_distance() {
        // Enough points for upper layers (instant-distance starts one at about 32 points).
        let map = built(3000);
        let bytes = postcard::to_allocvec(&map).expect("serializes");
        let mirror: MapMirror<P> = postcard::from_bytes(&bytes).expect("mirror reads it");
        let (graph, points, values) = Graph::from_mirror(mirror).expect("checks pass");
        assert!(
            graph.upper.len() >= 2,
            "the fixture should have upper layers"
        );
        let again = postcard::to_allocvec(&graph.to_mirror(points.clone(), values.clone()))
            .expect("serializes");
        // The same bytes but for the slots past each list's end (0 instead of EMPTY), and
        // instant-distance reads them back as the graph it wrote: it writes them out again
        // unchanged, and searches them alike.
        assert!(again.len() < bytes.len(), "some lists are not full");
        let reread: HnswMap<P, u32> =
            postcard::from_bytes(&again).expect("instant-distance reads it");
        assert_eq!(postcard::to_allocvec(&reread).expect("serializes"), again);
        let (mut a, mut b) = (Search::default(), Search::default());
        for q in [0, 17, 1234, 2999] {
            let found = |m: &HnswMap<P, u32>, s: &mut Search| {
                m.search(&points[q], s)
                    .map(|i| *i.value)
                    .collect::<Vec<_>>()
            };
            assert_eq!(found(&map, &mut a), found(&reread, &mut b), "query {q}");
        }

        // Point ids, points and values line up as instant-distance sees them.
        let mut search = Search::default();
        for item in map.search(&points[17], &mut search) {
            let pid = item.pid.into_inner() as usize;
            assert_eq!(&points[pid], item.point);
            assert_eq!(values[pid], *item.value);
        }
        for (pid, point) in map.iter() {
            assert_eq!(&points[pid.into_inner() as usize], point);
        }
    }

    #[test]
    fn damaged_graphs_are_refused() {
        let map = built(200);
        let bytes = postcard::to_allocvec(&map).expect("serializes");
        let read = || postcard::from_bytes::<MapMirror<P>>(&bytes).expect("reads");

        let mut mirror = read();
        mirror.hnsw.zero[3].0[0] = 200;
        assert!(Graph::from_mirror(mirror).is_err());

        let mut mirror = read();
        mirror.values[5] = mirror.values[6];
        assert!(Graph::from_mirror(mirror).is_err());

        let mut mirror = read();
        mirror.hnsw.zero.pop();
        assert!(Graph::from_mirror(mirror).is_err());

        let mut mirror = read();
        let top = mirror.hnsw.layers.len();
        assert!(top > 0);
        mirror.hnsw.layers[top - 1][0].0[0] = mirror.hnsw.layers[top - 1].len() as u32;
        assert!(Graph::from_mirror(mirror).is_err());

        // An empty slot ends a list: what follows it is never read, so it is not checked
        // (and is kept as 0).
        let mut mirror = read();
        mirror.hnsw.zero[3].0[1] = EMPTY;
        mirror.hnsw.zero[3].0[2] = 123_456;
        let (graph, _, _) = Graph::from_mirror(mirror).expect("an ended list is fine");
        assert_eq!(graph.zero[3].0[1..4], [EMPTY, 0, 0]);
    }
}
