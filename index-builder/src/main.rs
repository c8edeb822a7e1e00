//! `index-builder`: builds Marquee's bundle from a movie catalogue and queries it.
//! A thin shell over the `marquee` engine; the browser runs the same engine code.

mod allocator;
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
    allocator::keep_freed_memory();
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
