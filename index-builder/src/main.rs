//! `index-builder`: builds Marquee's bundle from a movie catalogue and queries it.
//! A thin shell over the `marquee` engine; the browser runs the same engine code.

mod ask;
mod build;
mod eval;
mod finetune;
mod movielens;
mod paths;
mod quantize;
mod query;
mod recommend;
mod recs_eval;
mod stream;
mod tagline;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (v2's `mimalloc.h`, the enum after
/// `mi_option_eager_commit_delay` = 14; the Rust bindings name no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory stays with the process instead of going back to the kernel after 10 ms:
/// every training step allocates the same few hundred MB of activations again, and the
/// kernel zeroing fresh pages for them was a fifth of the step's time (measured on the
/// 12-movie finetune: 22 s → 18 s). A CLI run ends soon enough to keep what it had.
fn keep_freed_memory() {
    // SAFETY: sets one integer option; called first thing in main, before other threads.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

#[derive(Parser)]
#[command(
    name = "index-builder",
    version,
    about = "Build and query Marquee's movie bundle"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Embed a catalogue, quantize the embedder, build the HNSW graph and write the bundle.
    Build(Box<build::BuildArgs>),
    /// Find the movies most similar to a text.
    Query(query::QueryArgs),
    /// Retrieve similar movies and stream a new tagline written with them as examples.
    Tagline(Box<tagline::TaglineArgs>),
    /// Write a quantized GGUF: from a GPT-2 safetensors directory, or re-store a GGUF.
    Quantize(quantize::QuantizeArgs),
    /// Score generated taglines of held-out movies: no, random and retrieved examples.
    Eval(eval::EvalArgs),
    /// LoRA-train the generator on the catalogue's taglines, with retrieved examples.
    Finetune(Box<finetune::FinetuneArgs>),
    /// Answer a question about a movie from retrieved passages.
    Ask(Box<ask::AskArgs>),
    /// Score the Ask task on held-out questions: retrieval hit@k, "I don't know", EM / F1.
    AskEval(Box<eval::ask::AskEvalArgs>),
    /// Top-10 movies for a MovieLens user or for ratings given here (MovieLens 100K).
    Recommend(Box<recommend::RecommendArgs>),
    /// The recommenders on a seeded 80/20 split: RMSE/MAE, HR/NDCG/P@10.
    RecommendEval(Box<recs_eval::RecsEvalArgs>),
}

/// Where the bundle goes by default: $MARQUEE_CACHE/bundle (~/.cache/marquee/bundle).
fn default_bundle_dir() -> PathBuf {
    paths::cache_dir().join("bundle")
}

fn main() -> anyhow::Result<()> {
    keep_freed_memory();
    match Cli::parse().command {
        Command::Build(args) => build::run(*args),
        Command::Query(args) => query::run(args),
        Command::Tagline(args) => tagline::run(*args),
        Command::Quantize(args) => quantize::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Finetune(args) => finetune::run(*args),
        Command::Ask(args) => ask::run(*args),
        Command::AskEval(args) => eval::ask::run(*args),
        Command::Recommend(args) => recommend::run(*args),
        Command::RecommendEval(args) => recs_eval::run(*args),
    }
}
