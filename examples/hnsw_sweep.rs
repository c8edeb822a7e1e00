//! HNSW sweep on the synthetic large catalogue (the bundle's real vectors tiled with noise,
//! as in benches/engine.rs) or on the bundle's own index, reusing the bundle's vectors and
//! embedder so no catalogue needs re-embedding. Built graphs are cached in the temp dir.
//!
//!     cargo run --release --example hnsw_sweep -- [N|real] [EF_CONSTRUCTION] [EF_SEARCH...]
//!
//! Two query sets, as in the benchmark: 200 TMDB taglines embedded like visitor text (far
//! from every movie, cosine ~0.3-0.5: the hard case for a graph index) and 200 perturbed
//! catalogue vectors (near the data, like a paraphrased overview).
//!
//! For each ef_search it times, in whole passes over the query set taking turns so that load
//! on the machine hits all alike: instant-distance's own search followed by an exact re-rank of its ef
//! candidates (the engine's search before it had its own), and ours without and with the
//! neighbour expansion. Each variant runs `MARQUEE_SWEEP_ROUNDS` (default 5) times over the
//! query set; the figure is the median per-query time over all rounds.

use std::time::Instant;

use instant_distance::{HnswMap, Search};
use marquee::index::{
    dot_f32_i8, HnswParams, Navigation, QuantizedVector, SearchMode, VectorIndex, WIDTH,
};
use marquee::retriever::Retriever;
use serde::Deserialize;

#[path = "../benches/support/synthetic.rs"]
mod synthetic;

/// The index part, read by instant-distance itself (the layout of `index::Stored`).
#[derive(Deserialize)]
struct Stored {
    _dim: u32,
    _params: HnswParams,
    hnsw: HnswMap<QuantizedVector<WIDTH>, u32>,
}

/// instant-distance's search, then its candidates re-scored exactly: the engine before.
fn reference_search(map: &HnswMap<QuantizedVector<WIDTH>, u32>, query: &[f32]) -> Vec<usize> {
    let point = QuantizedVector::quantize(query).expect("384 wide");
    let mut search = Search::default();
    let mut hits: Vec<(f32, usize)> = map
        .search(&point, &mut search)
        .map(|item| {
            let score = dot_f32_i8(query, item.point.values()) * item.point.scale();
            (score, *item.value as usize)
        })
        .collect();
    hits.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    hits.into_iter().take(10).map(|h| h.1).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number =
        |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let real_only = args.first().is_some_and(|a| a == "real");
    let n = number(0, 50_000);
    let ef_construction = number(1, 100);
    let ef_searches: Vec<usize> = match args.get(2..) {
        Some(rest) if !rest.is_empty() => rest.iter().filter_map(|a| a.parse().ok()).collect(),
        _ => vec![100],
    };
    let rounds = std::env::var("MARQUEE_SWEEP_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let home = std::env::var_os("HOME").expect("HOME is set");
    let dir = std::path::PathBuf::from(home).join(".cache/marquee/bundle");
    let retriever = Retriever::open_dir(&dir).expect("a bundle (run index-builder build)");
    let bundled = retriever.index();

    let real: Vec<Vec<f32>> = (0..bundled.len())
        .filter_map(|i| bundled.vector(i))
        .collect();
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

    let clock = Instant::now();
    let (label, mut index) = if real_only {
        let copy = VectorIndex::from_bytes(&bundled.to_bytes().expect("bytes")).expect("loads");
        (
            format!("{} real vectors (the bundle's graph)", real.len()),
            copy,
        )
    } else {
        let cached = std::env::temp_dir().join(format!("marquee-hnsw-{n}-{ef_construction}.bin"));
        let index = match std::fs::read(&cached)
            .ok()
            .and_then(|b| VectorIndex::from_bytes(&b).ok())
        {
            Some(index) => index,
            None => {
                let params = HnswParams {
                    ef_construction,
                    ..HnswParams::default()
                };
                let index =
                    VectorIndex::build(&synthetic::tiled(&real, n), params).expect("builds");
                std::fs::write(&cached, index.to_bytes().expect("serializes")).ok();
                index
            }
        };
        (
            format!("{n} vectors, ef_construction {ef_construction}"),
            index,
        )
    };
    println!("{label}: build/load {:.1} s", clock.elapsed().as_secs_f64());

    for &ef_search in &ef_searches {
        index.set_ef_search(ef_search).expect("ef_search ≥ 1");
        let bytes = index.to_bytes().expect("serializes");
        let reference: Stored = postcard::from_bytes(&bytes).expect("instant-distance reads it");
        for (kind, queries) in [("tagline queries", &taglines), ("near queries", &near)] {
            let truth: Vec<Vec<usize>> = queries
                .iter()
                .map(|q| {
                    let hits = index.search(q, 10, SearchMode::Exact).expect("exact");
                    hits.iter().map(|h| h.index).collect()
                })
                .collect();
            // Variant 0 is instant-distance's search; the others ours with this expansion.
            let navigation = |layer1_ef, scan| Some(Navigation { layer1_ef, scan });
            let variants = [
                None,
                navigation(1, false),
                navigation(300, false),
                navigation(150, true),
                navigation(200, true),
                navigation(250, true),
            ];
            let mut times = vec![Vec::new(); variants.len()];
            let mut found = vec![0usize; variants.len()];
            for round in 0..rounds {
                // Whole passes, in a rotating order: a variant never runs on caches that
                // another one just warmed with the same query.
                for step in 0..variants.len() {
                    let v = (round + step) % variants.len();
                    if let Some(navigation) = variants[v] {
                        index.set_navigation(navigation);
                    }
                    for (q, truth) in queries.iter().zip(&truth) {
                        let clock = Instant::now();
                        let got: Vec<usize> = match variants[v] {
                            None => reference_search(&reference.hnsw, q),
                            Some(_) => {
                                let hits = index.search(q, 10, SearchMode::Hnsw).expect("hnsw");
                                hits.iter().map(|h| h.index).collect()
                            }
                        };
                        times[v].push(clock.elapsed().as_secs_f64());
                        if round == 0 {
                            found[v] += truth.iter().filter(|t| got.contains(t)).count();
                        }
                    }
                }
            }
            for (v, variant) in variants.iter().enumerate() {
                let name = match variant {
                    None => "instant-distance + re-rank".to_string(),
                    Some(Navigation { layer1_ef, scan }) => {
                        format!("ours, layer-1 ef {layer1_ef}, scan layer 2 {scan}")
                    }
                };
                times[v].sort_by(f64::total_cmp);
                println!(
                    "ef_search {ef_search}, {kind}, {name}: median {:.3} ms/query, recall@10 {:.4}",
                    times[v][times[v].len() / 2] * 1e3,
                    found[v] as f64 / (10 * queries.len()) as f64
                );
            }
        }
    }
}
