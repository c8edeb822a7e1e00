//! HNSW parameter sweep on the synthetic large catalogue (the bundle's real vectors tiled
//! with noise, as in benches/engine.rs), reusing the bundle's vectors and embedder so no
//! catalogue needs re-embedding. Built graphs are cached in the system temp dir.
//!
//!     cargo run --release --example hnsw_sweep -- [N] [EF_CONSTRUCTION] [EF_SEARCH...]
//!
//! Two query sets, as in the benchmark: 200 TMDB taglines embedded like visitor text (far
//! from every movie, cosine ~0.3-0.5: the hard case for a graph index) and 200 perturbed
//! catalogue vectors (near the data, like a paraphrased overview).

use std::time::Instant;

use marquee::index::{HnswParams, SearchMode, VectorIndex};
use marquee::retriever::Retriever;

#[path = "../benches/support/synthetic.rs"]
mod synthetic;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(50_000);
    let ef_construction = args.get(1).copied().unwrap_or(100);
    let ef_searches = if args.len() > 2 {
        args[2..].to_vec()
    } else {
        vec![100]
    };
    let home = std::env::var_os("HOME").expect("HOME is set");
    let dir = std::path::PathBuf::from(home).join(".cache/marquee/bundle");
    let retriever = Retriever::open_dir(&dir).expect("a bundle (run index-builder build)");
    let index = retriever.index();

    let real: Vec<Vec<f32>> = (0..index.len()).filter_map(|i| index.vector(i)).collect();
    let data = synthetic::tiled(&real, n);
    let taglines: Vec<String> = retriever
        .movies()
        .iter()
        .filter_map(|m| m.tagline.clone())
        .step_by(7)
        .take(200)
        .collect();
    let taglines = retriever
        .embedder()
        .embed_all(&taglines, 32, |_| {})
        .expect("embeds");
    let near = synthetic::near_queries(&real, 200);

    for &ef_search in &ef_searches {
        let params = HnswParams {
            ef_construction,
            ef_search,
            ..HnswParams::default()
        };
        let cached = std::env::temp_dir().join(format!(
            "marquee-hnsw-{n}-{ef_construction}-{ef_search}.bin"
        ));
        let clock = Instant::now();
        let graph = match std::fs::read(&cached)
            .ok()
            .and_then(|b| VectorIndex::from_bytes(&b).ok())
        {
            Some(graph) => graph,
            None => {
                let graph = VectorIndex::build(&data, params).expect("builds");
                std::fs::write(&cached, graph.to_bytes().expect("serializes")).ok();
                graph
            }
        };
        let build_s = clock.elapsed().as_secs_f64();
        for (kind, queries) in [("tagline queries", &taglines), ("near queries", &near)] {
            let (mut found, mut times) = (0, Vec::new());
            for q in queries.iter() {
                let exact = graph.search(q, 10, SearchMode::Exact).expect("exact");
                let clock = Instant::now();
                let hnsw = graph.search(q, 10, SearchMode::Hnsw).expect("hnsw");
                times.push(clock.elapsed().as_secs_f64());
                found += exact
                    .iter()
                    .filter(|e| hnsw.iter().any(|h| h.index == e.index))
                    .count();
            }
            times.sort_by(f64::total_cmp);
            println!(
                "n {n}, ef_construction {ef_construction}, ef_search {ef_search}, {kind}: \
                 build/load {build_s:.1} s, median {:.3} ms/query, recall@10 {:.4}",
                times[times.len() / 2] * 1e3,
                found as f64 / (10 * queries.len()) as f64
            );
        }
    }
}
