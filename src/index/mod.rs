//! The vector index: int8 vectors searched exactly (a scan over all of them) or through an
//! HNSW graph (`instant-distance`) whose candidates are then re-ranked exactly.
//!
//! Both modes score with the same function, the float query against the stored int8
//! vectors, so "exact" is the ground truth HNSW is measured against. The graph itself
//! compares int8 with int8 (the query is quantized too), which is why its candidates are
//! re-scored before the top k are taken.

mod vector;

use std::fmt;
use std::str::FromStr;

use instant_distance::{Builder, HnswMap, Search};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use vector::{dot_f32_i8, dot_i8, QuantizedVector};

/// Width of the stored vectors: all-MiniLM-L6-v2's 384. Fixed at compile time so that
/// graph points are inline records (see `vector.rs`); another embedder means another width.
pub const WIDTH: usize = 384;

type Point = QuantizedVector<WIDTH>;

/// How to search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Score every vector: always right, linear in the catalogue size.
    Exact,
    /// Walk the HNSW graph, then re-rank its candidates exactly.
    #[default]
    Hnsw,
}

impl FromStr for SearchMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "exact" => Ok(Self::Exact),
            "hnsw" => Ok(Self::Hnsw),
            other => Err(Error::InvalidArgument(format!(
                "search mode {other:?} is not \"exact\" or \"hnsw\""
            ))),
        }
    }
}

impl fmt::Display for SearchMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Exact => "exact",
            Self::Hnsw => "hnsw",
        })
    }
}

/// HNSW construction parameters (M is fixed at 32 by instant-distance).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HnswParams {
    pub ef_construction: usize,
    /// Candidates the search keeps, i.e. how many get re-ranked. Fixed at build time.
    pub ef_search: usize,
    /// Seeds the layer assignment, so the same input builds the same graph.
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            ef_construction: 100,
            ef_search: 100,
            seed: 0x006d_6172_7175_6565, // "marquee"
        }
    }
}

/// One search result: a position in the catalogue and its cosine similarity to the query.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    pub index: usize,
    pub score: f32,
}

/// What the `index` bundle part holds. The graph keeps its own copy of the points, so the
/// exact-search layout is derived from it at load time instead of being stored twice.
#[derive(Serialize, Deserialize)]
struct Stored<H> {
    dim: u32,
    params: HnswParams,
    hnsw: H,
}

pub struct VectorIndex {
    dim: usize,
    params: HnswParams,
    hnsw: HnswMap<Point, u32>,
    /// Row-major int8 vectors in catalogue order, for exact scans and re-ranking.
    rows: Vec<i8>,
    scales: Vec<f32>,
}

impl VectorIndex {
    /// Quantizes normalized embeddings and builds the graph over them.
    pub fn build(embeddings: &[Vec<f32>], params: HnswParams) -> Result<Self> {
        if embeddings.is_empty() || embeddings.iter().any(|e| e.len() != WIDTH) {
            return Err(Error::InvalidArgument(format!(
                "the index needs at least one embedding, each {WIDTH} wide"
            )));
        }
        if params.ef_search == 0 {
            return Err(Error::InvalidArgument(
                "ef_search must be at least 1".into(),
            ));
        }
        let points = embeddings
            .iter()
            .map(|e| Point::quantize(e))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::InvalidArgument(format!("embeddings must be {WIDTH} wide")))?;
        let ids: Vec<u32> = (0..points.len() as u32).collect();
        let hnsw = Builder::default()
            .ef_construction(params.ef_construction)
            .ef_search(params.ef_search)
            .seed(params.seed)
            .build(points, ids);
        Self::from_graph(WIDTH, params, hnsw)
    }

    fn from_graph(dim: usize, params: HnswParams, hnsw: HnswMap<Point, u32>) -> Result<Self> {
        if dim != WIDTH {
            return Err(decode_error(&format!(
                "vectors are {dim} wide, this build reads {WIDTH}"
            )));
        }
        let n = hnsw.values.len();
        let mut rows = vec![0i8; n * dim];
        let mut scales = vec![0.0f32; n];
        let mut seen = vec![false; n];
        for (pid, point) in hnsw.iter() {
            let slot = hnsw
                .values
                .get(pid.into_inner() as usize)
                .copied()
                .map(|v| v as usize);
            let Some(slot) = slot.filter(|&s| s < n && !seen[s]) else {
                return Err(decode_error(
                    "graph values are not a permutation of the rows",
                ));
            };
            seen[slot] = true;
            rows[slot * dim..(slot + 1) * dim].copy_from_slice(point.values());
            scales[slot] = point.scale();
        }
        if seen.iter().any(|s| !s) {
            return Err(decode_error("graph has fewer points than values"));
        }
        Ok(Self {
            dim,
            params,
            hnsw,
            rows,
            scales,
        })
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let stored = Stored {
            dim: self.dim as u32,
            params: self.params,
            hnsw: &self.hnsw,
        };
        postcard::to_allocvec(&stored).map_err(|e| decode_error(&e.to_string()))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let stored: Stored<HnswMap<Point, u32>> =
            postcard::from_bytes(bytes).map_err(|e| decode_error(&e.to_string()))?;
        Self::from_graph(stored.dim as usize, stored.params, stored.hnsw)
    }

    pub fn len(&self) -> usize {
        self.scales.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scales.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// The stored vector at catalogue position `i`, dequantized.
    pub fn vector(&self, i: usize) -> Option<Vec<f32>> {
        let row = self.rows.get(i * self.dim..(i + 1) * self.dim)?;
        Some(row.iter().map(|&q| q as f32 * self.scales[i]).collect())
    }

    /// Bytes of the int8 vectors and their scales (the rest of the part is the graph).
    pub fn vector_bytes(&self) -> usize {
        self.rows.len() + self.scales.len() * 4
    }

    /// The `k` vectors most similar to `query` (a normalized embedding), best first.
    /// HNSW mode falls back to an exact scan when `k` exceeds the candidates it keeps.
    pub fn search(&self, query: &[f32], k: usize, mode: SearchMode) -> Result<Vec<Hit>> {
        if query.len() != self.dim {
            return Err(Error::InvalidArgument(format!(
                "query has {} dimensions, the index {}",
                query.len(),
                self.dim
            )));
        }
        if k == 0 {
            return Err(Error::InvalidArgument("k must be at least 1".into()));
        }
        if query.iter().any(|x| !x.is_finite()) {
            return Err(Error::InvalidArgument(
                "query vector has non-finite values".into(),
            ));
        }
        match mode {
            SearchMode::Hnsw if k <= self.params.ef_search => Ok(self.search_hnsw(query, k)),
            _ => Ok(self.search_exact(query, k)),
        }
    }

    fn score(&self, query: &[f32], row: usize) -> f32 {
        dot_f32_i8(query, &self.rows[row * self.dim..(row + 1) * self.dim]) * self.scales[row]
    }

    fn search_exact(&self, query: &[f32], k: usize) -> Vec<Hit> {
        top_k(
            (0..self.len()).map(|i| Hit {
                index: i,
                score: self.score(query, i),
            }),
            k,
        )
    }

    fn search_hnsw(&self, query: &[f32], k: usize) -> Vec<Hit> {
        let Some(point) = Point::quantize(query) else {
            return self.search_exact(query, k); // unreachable: `search` checked the width
        };
        let mut search = Search::default();
        let candidates = self.hnsw.search(&point, &mut search).map(|item| {
            let index = *item.value as usize;
            Hit {
                index,
                score: self.score(query, index),
            }
        });
        top_k(candidates, k)
    }
}

fn decode_error(message: &str) -> Error {
    Error::PartDecode {
        part: "index".into(),
        message: message.to_string(),
    }
}

/// The `k` best hits, best first; ties broken by catalogue position so results are stable.
fn top_k(hits: impl Iterator<Item = Hit>, k: usize) -> Vec<Hit> {
    let better = |a: &Hit, b: &Hit| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index));
    let mut all: Vec<Hit> = hits.collect();
    if all.len() > k {
        all.select_nth_unstable_by(k - 1, better);
        all.truncate(k);
    }
    all.sort_unstable_by(better);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points on the unit circle embedded in 8 dimensions: neighbours are known exactly.
    fn circle(n: usize) -> Vec<Vec<f32>> {
        (0..n)
            .map(|i| {
                let a = i as f32 / n as f32 * std::f32::consts::TAU;
                let mut v = vec![0.0; WIDTH];
                v[0] = a.cos();
                v[1] = a.sin();
                v
            })
            .collect()
    }

    #[test]
    fn exact_and_hnsw_find_the_same_neighbours() {
        let points = circle(500);
        let index = VectorIndex::build(&points, HnswParams::default()).expect("builds");
        for i in [0, 17, 250, 499] {
            let exact = index
                .search(&points[i], 3, SearchMode::Exact)
                .expect("exact");
            let hnsw = index.search(&points[i], 3, SearchMode::Hnsw).expect("hnsw");
            assert_eq!(exact[0].index, i);
            assert_eq!(exact, hnsw);
            assert!(exact[0].score > 0.99 && exact[0].score >= exact[1].score);
        }
    }

    #[test]
    fn round_trips_through_bytes() {
        let points = circle(100);
        let index = VectorIndex::build(&points, HnswParams::default()).expect("builds");
        let bytes = index.to_bytes().expect("serializes");
        let again = VectorIndex::from_bytes(&bytes).expect("deserializes");
        assert_eq!((again.len(), again.dim()), (100, WIDTH));
        assert_eq!(again.rows, index.rows);
        let q = &points[42];
        assert_eq!(
            again.search(q, 5, SearchMode::Hnsw).expect("search"),
            index.search(q, 5, SearchMode::Hnsw).expect("search")
        );
    }

    #[test]
    fn garbage_bytes_are_an_error_not_a_panic() {
        let index = VectorIndex::build(&circle(50), HnswParams::default()).expect("builds");
        let mut bytes = index.to_bytes().expect("serializes");
        bytes.truncate(bytes.len() / 2);
        assert!(VectorIndex::from_bytes(&bytes).is_err());
        assert!(VectorIndex::from_bytes(&[0xff; 64]).is_err());
    }

    #[test]
    fn bad_queries_are_refused() {
        let index = VectorIndex::build(&circle(20), HnswParams::default()).expect("builds");
        assert!(index.search(&[0.0; 3], 1, SearchMode::Exact).is_err());
        assert!(index.search(&circle(1)[0], 0, SearchMode::Exact).is_err());
        assert!(index
            .search(&[f32::NAN; WIDTH], 1, SearchMode::Hnsw)
            .is_err());
        // k beyond the graph's candidates still answers, exactly.
        assert_eq!(
            index
                .search(&circle(1)[0], 20, SearchMode::Hnsw)
                .expect("k=20")
                .len(),
            20
        );
    }

    #[test]
    fn modes_parse_and_print() {
        assert_eq!(
            "exact".parse::<SearchMode>().expect("parses"),
            SearchMode::Exact
        );
        assert_eq!(SearchMode::Hnsw.to_string(), "hnsw");
        assert!("fast".parse::<SearchMode>().is_err());
    }
}
