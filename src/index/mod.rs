//! The vector index: int8 vectors searched exactly (a scan over all of them) or through an
//! HNSW graph. `instant-distance` builds the graph; our own search walks it (`walk.rs`),
//! reading it through a mirror of instant-distance's serialized form (`graph.rs`).
//!
//! Both modes score with the same function, the float query against the stored int8
//! vectors, so "exact" is the ground truth HNSW is measured against, and the graph search's
//! scores need no re-ranking.

mod graph;
#[cfg(test)]
mod search_tests;
mod vector;
mod walk;

use std::fmt;
use std::str::FromStr;

use instant_distance::{Builder, Heuristic};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use graph::{Graph, MapMirror};
pub use vector::{dot_f32_i8, dot_i8, QuantizedVector};
use walk::{Row, Vectors};

/// Width of the stored vectors: all-MiniLM-L6-v2's 384. Fixed at compile time so that
/// graph points are inline records (see `vector.rs`); another embedder means another width.
pub const WIDTH: usize = 384;

type Point = QuantizedVector<WIDTH>;

/// How the HNSW search finds its way to layer 0 (see `walk.rs`). Not stored in the bundle:
/// the graph does not depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Navigation {
    /// The beam's width on layer 1 (classic HNSW: 1, a greedy step).
    pub layer1_ef: usize,
    /// Whether layer 1's beam starts from the best `layer1_ef` points of an exact scan of
    /// layer 2 (or of layer 1 itself when the graph has no layer 2) instead of from a greedy
    /// descent from the top.
    pub scan: bool,
}

impl Navigation {
    /// Classic HNSW: a greedy descent to layer 1, then the beam on layer 0.
    pub const CLASSIC: Self = Self {
        layer1_ef: 1,
        scan: false,
    };
    /// A 200-wide beam on layer 1 seeded by an exact scan of layer 2: the cheapest setting
    /// that reaches recall@10 ≥ 0.99 for far-away queries on the 50k benchmark set, where
    /// near-duplicates crowd the layer-0 lists (README, Benchmarks).
    pub const WIDE: Self = Self {
        layer1_ef: 200,
        scan: true,
    };

    /// The navigation an index of `points` vectors searches with. Small graphs do not need
    /// the wide beam: at the 4,799 real vectors the classic descent reaches the same recall
    /// in about half the time (`examples/hnsw_sweep.rs` measures both).
    pub fn for_points(points: usize) -> Self {
        if points < 20_000 {
            Self::CLASSIC
        } else {
            Self::WIDE
        }
    }
}

/// How to search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Score every vector: always right, linear in the catalogue size.
    Exact,
    /// Walk the HNSW graph, scoring the vectors it visits exactly.
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

/// How instant-distance picks a point's neighbours: the HNSW paper's heuristic (a candidate
/// is dropped when it is nearer to a neighbour already kept than to the point), without
/// topping the list back up with the dropped ones. instant-distance's default keeps them, so
/// every layer-0 list is full (64) and each insertion re-runs the heuristic over 65
/// candidates for each of its up to 64 neighbours: 4–5× FAISS's build time. FAISS's
/// default is this one (`keep_max_size_level0` false). Short lists need a wider beam, at
/// construction (150) and at search (320), for the same recall (docs/benchmarks.md).
const PRUNED_LISTS: Heuristic = Heuristic {
    extend_candidates: false,
    keep_pruned: false,
};

/// HNSW construction parameters (M is fixed at 32 by instant-distance).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HnswParams {
    pub ef_construction: usize,
    /// The search's beam width on layer 0: how many candidates it keeps.
    pub ef_search: usize,
    /// Seeds the layer assignment, so the same input builds the same graph.
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            ef_construction: 150,
            ef_search: 320,
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

/// What the `index` bundle part holds: `hnsw` is instant-distance's `HnswMap<Point, u32>`,
/// written by it at build time and read back through our mirror of it. The graph keeps its
/// own copy of the points, so they are not stored a second time.
#[derive(Serialize, Deserialize)]
struct Stored<H> {
    dim: u32,
    params: HnswParams,
    hnsw: H,
}

pub struct VectorIndex {
    dim: usize,
    params: HnswParams,
    graph: Graph,
    /// The vectors in graph order (the graph's ids index them directly).
    vectors: Vectors,
    /// Graph order → catalogue position, and back.
    positions: Vec<u32>,
    nodes: Vec<u32>,
    navigation: Navigation,
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
            .select_heuristic(Some(PRUNED_LISTS))
            .build(points, ids);
        // Through bytes, so a built index is exactly what a bundle loads.
        let stored = Stored {
            dim: WIDTH as u32,
            params,
            hnsw,
        };
        Self::from_bytes(&postcard::to_allocvec(&stored).map_err(|e| decode_error(&e.to_string()))?)
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let points = (0..self.len())
            .map(|i| Point::from_parts(self.vectors.scales[i], self.vectors.rows[i].0))
            .collect();
        let stored = Stored {
            dim: self.dim as u32,
            params: self.params,
            hnsw: self.graph.to_mirror(points, self.positions.clone()),
        };
        postcard::to_allocvec(&stored).map_err(|e| decode_error(&e.to_string()))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let stored: Stored<MapMirror<Point>> =
            postcard::from_bytes(bytes).map_err(|e| decode_error(&e.to_string()))?;
        let dim = stored.dim as usize;
        if dim != WIDTH {
            return Err(decode_error(&format!(
                "vectors are {dim} wide, this build reads {WIDTH}"
            )));
        }
        let (graph, points, positions) =
            Graph::from_mirror(stored.hnsw).map_err(|e| decode_error(&e))?;
        let mut nodes = vec![0u32; positions.len()];
        for (node, &position) in positions.iter().enumerate() {
            nodes[position as usize] = node as u32; // in range: from_mirror checked them
        }
        let vectors = Vectors {
            scales: points.iter().map(|p| p.scale()).collect(),
            rows: points.into_iter().map(|p| Row(p.into_values())).collect(),
        };
        Ok(Self {
            dim,
            params: stored.params,
            graph,
            vectors,
            navigation: Navigation::for_points(positions.len()),
            positions,
            nodes,
        })
    }

    pub fn len(&self) -> usize {
        self.positions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Changes the search's beam width (the graph does not depend on it); for sweeps.
    pub fn set_ef_search(&mut self, ef_search: usize) -> Result<()> {
        if ef_search == 0 {
            return Err(Error::InvalidArgument(
                "ef_search must be at least 1".into(),
            ));
        }
        self.params.ef_search = ef_search;
        self.graph.stored_ef_search = ef_search; // instant-distance's copy says the same
        Ok(())
    }

    /// Changes how the search reaches layer 0; for sweeps (the default is measured).
    /// How HNSW searches find their way down (`Navigation::for_points` unless set).
    pub fn navigation(&self) -> Navigation {
        self.navigation
    }

    pub fn set_navigation(&mut self, navigation: Navigation) {
        self.navigation = navigation;
    }

    /// The stored vector at catalogue position `i`, dequantized.
    pub fn vector(&self, i: usize) -> Option<Vec<f32>> {
        let node = *self.nodes.get(i)? as usize;
        let scale = self.vectors.scales[node];
        Some(
            self.vectors.rows[node]
                .0
                .iter()
                .map(|&q| q as f32 * scale)
                .collect(),
        )
    }

    /// Bytes of the int8 vectors and their scales (the rest of the part is the graph).
    pub fn vector_bytes(&self) -> usize {
        self.len() * (self.dim + 4)
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

    fn hit(&self, node: usize, score: f32) -> Hit {
        Hit {
            index: self.positions[node] as usize,
            score,
        }
    }

    fn search_exact(&self, query: &[f32], k: usize) -> Vec<Hit> {
        top_k(
            (0..self.len()).map(|node| self.hit(node, self.vectors.score(query, node))),
            k,
        )
    }

    fn search_hnsw(&self, query: &[f32], k: usize) -> Vec<Hit> {
        let found = walk::search(
            &self.graph,
            &self.vectors,
            query,
            self.params.ef_search,
            self.navigation,
        );
        top_k(
            found
                .into_iter()
                .map(|s| self.hit(s.node as usize, s.score)),
            k,
        )
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
        assert_eq!(again.to_bytes().expect("serializes"), bytes);
        assert_eq!(again.vector(42), index.vector(42));
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
