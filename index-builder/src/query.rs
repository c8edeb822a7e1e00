//! `index-builder query`: the retrieval a visitor's query gets, from the terminal.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use marquee::index::SearchMode;
use marquee::retriever::Retriever;

#[derive(Args)]
pub struct QueryArgs {
    /// What the movie is about, in a few words or a whole overview.
    pub text: String,
    /// How many movies to return.
    #[arg(short, default_value_t = 5)]
    pub k: usize,
    /// exact: score every movie; hnsw: walk the graph, then re-rank exactly.
    #[arg(long, default_value = "hnsw")]
    pub mode: SearchMode,
    /// Bundle directory [default: $MARQUEE_CACHE/bundle]
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// Print the results as JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: QueryArgs) -> anyhow::Result<()> {
    let dir = args.bundle.unwrap_or_else(crate::default_bundle_dir);
    let clock = Instant::now();
    let retriever = Retriever::open_dir(&dir)
        .with_context(|| format!("cannot open the bundle in {}", dir.display()))?;
    let load_ms = clock.elapsed().as_secs_f64() * 1e3;
    let clock = Instant::now();
    let matches = retriever.query(&args.text, args.k, args.mode)?;
    let query_ms = clock.elapsed().as_secs_f64() * 1e3;
    if args.json {
        for m in &matches {
            let line = serde_json::json!({
                "id": m.movie.id, "title": m.movie.title, "year": m.movie.year,
                "similarity": m.score, "tagline": m.movie.tagline,
            });
            println!("{line}");
        }
        return Ok(());
    }
    println!(
        "{:>3}  {:<40} {:>4}  {:>5}  tagline",
        "#", "title", "year", "sim"
    );
    for (rank, m) in matches.iter().enumerate() {
        let year = m
            .movie
            .year
            .map_or_else(|| "-".to_string(), |y| y.to_string());
        println!(
            "{:>3}  {:<40} {:>4}  {:>5.3}  {}",
            rank + 1,
            truncate(&m.movie.title, 40),
            year,
            m.score,
            m.movie.tagline.as_deref().unwrap_or("-")
        );
    }
    eprintln!(
        "{} movies, {} search; bundle loaded in {load_ms:.0} ms, query answered in {query_ms:.1} ms",
        retriever.movies().len(),
        args.mode
    );
    Ok(())
}

fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}
