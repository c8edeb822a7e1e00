//! Our graph search (`walk.rs`) against exact search and against instant-distance's own
//! search over the same graph, on clustered fixtures that mimic the benchmark's data:
//! random directions, each repeated a few times with small noise.

use instant_distance::{HnswMap, Search};

use super::*;

/// Deterministic uniform numbers in [-0.5, 0.5) (xorshift), so fixtures need no rand crate.
struct Numbers(u64);

impl Numbers {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }

    fn unit(&mut self, around: Option<&[f32]>, spread: f32) -> Vec<f32> {
        let v: Vec<f32> = (0..WIDTH)
            .map(|i| around.map_or(0.0, |a| a[i]) + spread * self.next())
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect()
    }
}

/// `clusters` random directions with `copies` near-duplicates each, and `queries` far from
/// all of them (cosine about 0.4 to the nearest cluster, like the benchmark's tagline
/// queries).
fn fixture(clusters: usize, copies: usize, queries: usize) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut numbers = Numbers(0x5eed_1234_abcd_0001);
    let centres: Vec<Vec<f32>> = (0..clusters).map(|_| numbers.unit(None, 1.0)).collect();
    let points = (0..clusters * copies)
        .map(|i| numbers.unit(Some(&centres[i % clusters]), 0.02))
        .collect();
    let queries = (0..queries)
        .map(|i| numbers.unit(Some(&centres[i * 7 % clusters]), 0.4))
        .collect();
    (points, queries)
}

fn ids(hits: &[Hit]) -> Vec<usize> {
    hits.iter().map(|h| h.index).collect()
}

fn recall(index: &VectorIndex, queries: &[Vec<f32>]) -> f64 {
    let mut found = 0;
    for q in queries {
        let exact = ids(&index.search(q, 10, SearchMode::Exact).expect("exact"));
        let hnsw = ids(&index.search(q, 10, SearchMode::Hnsw).expect("hnsw"));
        found += exact.iter().filter(|i| hnsw.contains(i)).count();
    }
    found as f64 / (10 * queries.len()) as f64
}

#[test]
fn hnsw_scores_are_exact_scores() {
    let (points, queries) = fixture(300, 4, 20);
    let index = VectorIndex::build(&points, HnswParams::default()).expect("builds");
    for q in &queries {
        let all = index
            .search(q, index.len(), SearchMode::Exact)
            .expect("exact");
        for hit in index.search(q, 10, SearchMode::Hnsw).expect("hnsw") {
            let same = all.iter().find(|h| h.index == hit.index).expect("present");
            assert_eq!(same.score, hit.score);
        }
    }
}

#[test]
fn classic_navigation_finds_what_instant_distance_finds() {
    let (points, queries) = fixture(500, 4, 40);
    let mut index = VectorIndex::build(&points, HnswParams::default()).expect("builds");
    index.set_navigation(Navigation::CLASSIC);
    let bytes = index.to_bytes().expect("serializes");
    let theirs: Stored<HnswMap<Point, u32>> = postcard::from_bytes(&bytes).expect("reads");
    let (mut same, mut total) = (0, 0);
    for q in &queries {
        // instant-distance's candidates re-scored exactly, as the engine searched before.
        let point = Point::quantize(q).expect("width");
        let mut search = Search::default();
        let candidates = theirs.hnsw.search(&point, &mut search).map(|item| {
            let index = *item.value as usize;
            Hit {
                index,
                score: dot_f32_i8(q, item.point.values()) * item.point.scale(),
            }
        });
        let reference = ids(&top_k(candidates, 10));
        let ours = ids(&index.search(q, 10, SearchMode::Hnsw).expect("hnsw"));
        same += reference.iter().filter(|i| ours.contains(i)).count();
        total += reference.len();
    }
    // Same graph, same walk; only the walk's scores differ (int8 query there, float here),
    // which can tip a near-tie one way or the other.
    assert!(same as f64 / total as f64 >= 0.95, "{same} of {total}");
}

#[test]
fn wide_navigation_recalls_clustered_data() {
    let (points, queries) = fixture(1000, 5, 50);
    let mut index = VectorIndex::build(&points, HnswParams::default()).expect("builds");
    assert_eq!(index.navigation(), Navigation::CLASSIC, "a small graph");
    let classic = recall(&index, &queries);
    index.set_navigation(Navigation::WIDE);
    let wide = recall(&index, &queries);
    println!("recall@10: wide navigation {wide}, classic {classic}");
    assert!(wide >= 0.99, "recall@10 {wide}");
    assert!(wide >= classic, "wide {wide} < classic {classic}");
}

#[test]
fn tiny_graphs_without_upper_layers_search() {
    let (points, queries) = fixture(5, 2, 3);
    for scan in [false, true] {
        let mut index = VectorIndex::build(&points, HnswParams::default()).expect("builds");
        index.set_navigation(Navigation {
            layer1_ef: 200,
            scan,
        });
        assert_eq!(recall(&index, &queries), 1.0);
    }
}
