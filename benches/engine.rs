//! The engine's speed and size on real models and data, printed as a markdown table.
//!
//!     cargo bench --bench engine             # everything (~5 min on 2 cores)
//!     MARQUEE_BENCH_QUICK=1 cargo bench ...  # 500 texts, 10k synthetic vectors
//!     MARQUEE_BENCH_EF_SEARCH=200 MARQUEE_BENCH_EF_CONSTRUCTION=200 ...  # HNSW sweeps
//!
//! Needs the assets (scripts/fetch_assets.py) and, for the bundle sizes, a built bundle.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/synthetic.rs"]
mod synthetic;

use std::time::Instant;

use candle_core::quantized::GgmlDType;
use marquee::bundle;
use marquee::catalogue::{Catalogue, ColumnMapping};
use marquee::embed::{quantize_bert, BertConfig, Embedder};
use marquee::index::{HnswParams, SearchMode, VectorIndex};
use marquee::weights::Weights;

// Same allocator as index-builder, so the figures are the CLI's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const QUERY: &str = "toys that come to life when nobody is watching";

fn median_ms(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2] * 1e3
}

fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed().as_secs_f64())
}

fn row(what: &str, figure: String) {
    println!("| {what} | {figure} |");
}

/// The default HNSW parameters, or those named by MARQUEE_BENCH_EF_* variables.
fn hnsw_params() -> HnswParams {
    let var = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let defaults = HnswParams::default();
    HnswParams {
        ef_search: var("MARQUEE_BENCH_EF_SEARCH", defaults.ef_search),
        ef_construction: var("MARQUEE_BENCH_EF_CONSTRUCTION", defaults.ef_construction),
        ..defaults
    }
}

/// Builds the index over `vectors`, then measures exact and HNSW search for each query set.
fn bench_search(label: &str, vectors: &[Vec<f32>], query_sets: &[(&str, &[Vec<f32>])]) {
    let (index, build_s) = time(|| VectorIndex::build(vectors, hnsw_params()).expect("index"));
    let params = index.params();
    let navigation = index.navigation();
    row(
        &format!("HNSW build, {label}"),
        format!(
            "{build_s:.1} s (ef_construction {}, M 32)",
            params.ef_construction
        ),
    );
    for (kind, queries) in query_sets {
        let (mut exact_runs, mut hnsw_runs) = (Vec::new(), Vec::new());
        let (mut found, mut total) = (0usize, 0usize);
        for q in queries.iter() {
            let (exact, s) = time(|| index.search(q, 10, SearchMode::Exact).expect("exact"));
            exact_runs.push(s);
            let (hnsw, s) = time(|| index.search(q, 10, SearchMode::Hnsw).expect("hnsw"));
            hnsw_runs.push(s);
            found += exact
                .iter()
                .filter(|e| hnsw.iter().any(|h| h.index == e.index))
                .count();
            total += exact.len();
        }
        row(
            &format!("exact search, {label}, {kind}"),
            format!("{:.3} ms/query", median_ms(exact_runs)),
        );
        row(
            &format!("HNSW, {label}, {kind}"),
            format!(
                "{:.3} ms/query, recall@10 {:.4} vs exact ({} queries, ef_search {}, \
                 layer-1 ef {}, seeded by a scan of layer 2: {})",
                median_ms(hnsw_runs),
                found as f64 / total as f64,
                queries.len(),
                params.ef_search,
                navigation.layer1_ef,
                navigation.scan
            ),
        );
    }
    row(
        &format!("index part bytes, {label}"),
        format!(
            "{} ({} of them int8 vectors + scales)",
            index.to_bytes().expect("bytes").len(),
            index.vector_bytes()
        ),
    );
}

fn main() {
    let quick = std::env::var_os("MARQUEE_BENCH_QUICK").is_some();
    let config = BertConfig::from_json(&common::asset("minilm/config.json")).expect("config");
    let weights =
        Weights::from_safetensors(&common::asset("minilm/model.safetensors")).expect("weights");
    let tokenizer = common::asset("minilm/tokenizer.json");
    let f32_model = Embedder::new(&weights, &config, &tokenizer).expect("f32 model");
    let gguf = quantize_bert(&weights, &config, GgmlDType::Q8_0).expect("quantize");
    let q8_model = Embedder::from_gguf(&gguf, &tokenizer).expect("q8_0 model");
    let csv = common::cache_dir().join("assets/tmdb/movies.csv");
    let mut catalogue = Catalogue::from_path(&csv, &ColumnMapping::default()).expect("catalogue");
    if quick {
        catalogue.truncate(500);
    }

    println!("| what | figure |\n|---|---|");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (embeddings, s) = time(|| {
        f32_model
            .embed_all(&catalogue.texts, 32, |_| {})
            .expect("embeds")
    });
    row(
        "build embeddings, f32, batch 32",
        format!(
            "{:.1} texts/s ({} TMDB texts in {s:.1} s, {threads} threads)",
            catalogue.len() as f64 / s,
            catalogue.len()
        ),
    );
    let sample = &catalogue.texts[..catalogue.len().min(500)];
    let (_, s) = time(|| q8_model.embed_all(sample, 32, |_| {}).expect("embeds"));
    row(
        "build embeddings, q8_0, batch 32",
        format!(
            "{:.1} texts/s ({} texts)",
            sample.len() as f64 / s,
            sample.len()
        ),
    );

    let tokens = f32_model.token_ids(QUERY).expect("tokens").len();
    for (name, model) in [("f32", &f32_model), ("q8_0", &q8_model)] {
        model.embed_query(QUERY).expect("warm-up");
        let runs = (0..50)
            .map(|_| time(|| model.embed_query(QUERY).expect("embeds")).1)
            .collect();
        row(
            &format!("query embedding, {name}"),
            format!("{:.2} ms ({tokens} tokens, median of 50)", median_ms(runs)),
        );
    }

    // Two query sets: taglines embedded like a visitor's text (far from every movie) and
    // perturbed catalogue vectors (near the data, like a paraphrased overview).
    let taglines: Vec<String> = catalogue
        .movies
        .iter()
        .filter_map(|m| m.tagline.clone())
        .step_by(7)
        .take(200)
        .collect();
    let taglines = q8_model.embed_all(&taglines, 32, |_| {}).expect("queries");
    let near = synthetic::near_queries(&embeddings, 200);
    let query_sets: [(&str, &[Vec<f32>]); 2] =
        [("tagline queries", &taglines), ("near queries", &near)];
    bench_search(
        &format!("{} real vectors", embeddings.len()),
        &embeddings,
        &query_sets,
    );
    let n = if quick { 10_000 } else { 50_000 };
    let synthetic = synthetic::tiled(&embeddings, n);
    bench_search(
        &format!("{n} vectors (real, tiled + noise)"),
        &synthetic,
        &query_sets,
    );

    match bundle::read_manifest(&common::cache_dir().join("bundle")) {
        Ok(manifest) => {
            for part in &manifest.parts {
                row(
                    &format!("bundle part {}", part.name),
                    format!("{} bytes ({})", part.bytes, part.file),
                );
            }
            row("bundle total", format!("{} bytes", manifest.total_bytes()));
        }
        Err(e) => row("bundle", format!("not measured: {e}")),
    }
}
