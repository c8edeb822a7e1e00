//! `index-builder tagline`: the whole RAG loop from the terminal: retrieve similar movies,
//! show them, and stream a new tagline written with them as examples.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use marquee::generate::{Generator, SamplingParams};
use marquee::index::SearchMode;
use marquee::retriever::Retriever;
use marquee::tagline::{
    build_prompt, prompt_prefix, select_examples, Budget, Examples, PromptStyle,
};

use crate::paths;

#[derive(Clone, Copy, ValueEnum)]
enum ExampleSource {
    Retrieved,
    Random,
    None,
}

/// `--prompt`: how the examples appear in the prompt (see `marquee::tagline::PromptStyle`).
#[derive(Clone, Copy, ValueEnum)]
pub enum PromptArg {
    /// The examples' taglines as a list before the idea (the page's prompt).
    List,
    /// One chat exchange per example: its overview, then its tagline.
    Exchanges,
}

impl From<PromptArg> for PromptStyle {
    fn from(arg: PromptArg) -> Self {
        match arg {
            PromptArg::List => PromptStyle::TaglineList,
            PromptArg::Exchanges => PromptStyle::Exchanges,
        }
    }
}

#[derive(Args)]
pub struct TaglineArgs {
    /// The movie idea (a sentence or a whole overview).
    idea: String,
    /// How many example movies go into the prompt.
    #[arg(short, default_value_t = 4)]
    k: usize,
    /// Where the examples come from.
    #[arg(long, value_enum, default_value = "retrieved")]
    examples: ExampleSource,
    /// How the examples appear in the prompt.
    #[arg(long, value_enum, default_value = "list")]
    prompt: PromptArg,
    #[arg(long, default_value = "hnsw")]
    mode: SearchMode,
    /// 0 picks the likeliest token every time.
    #[arg(long, default_value_t = SamplingParams::default().temperature)]
    temperature: f64,
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    #[arg(long, default_value_t = 0.9)]
    top_p: f64,
    #[arg(long, default_value_t = SamplingParams::default().repeat_penalty)]
    repeat_penalty: f32,
    /// Same seed, same settings, same tagline.
    #[arg(long, default_value_t = SamplingParams::default().seed)]
    seed: u64,
    #[arg(long, default_value_t = SamplingParams::default().max_tokens)]
    max_tokens: usize,
    /// Bundle directory [default: $MARQUEE_CACHE/bundle]
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Generator GGUF [default: $MARQUEE_CACHE/assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf]
    #[arg(long)]
    generator: Option<PathBuf>,
    /// Print the prompt before generating.
    #[arg(long)]
    show_prompt: bool,
}

pub fn run(args: TaglineArgs) -> anyhow::Result<()> {
    let dir = args
        .bundle
        .clone()
        .unwrap_or_else(crate::default_bundle_dir);
    let retriever = Retriever::open_dir(&dir)
        .with_context(|| format!("cannot open the bundle in {}", dir.display()))?;
    let model_path = args
        .generator
        .clone()
        .unwrap_or_else(|| paths::assets_dir().join("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"));
    let bytes = std::fs::read(&model_path).with_context(|| {
        format!(
            "cannot read {} (run scripts/fetch_assets.py?)",
            model_path.display()
        )
    })?;
    let mut generator = Generator::from_llama_gguf(&bytes)
        .with_context(|| format!("cannot load the generator {}", model_path.display()))?;
    // As the page does, so that the same idea and seed give the page's tagline.
    generator.prime(&generator.encode(&prompt_prefix())?)?;

    let how = match args.examples {
        ExampleSource::Retrieved => Examples::Retrieved {
            k: args.k,
            mode: args.mode,
        },
        ExampleSource::Random => Examples::Random {
            k: args.k,
            seed: args.seed,
        },
        ExampleSource::None => Examples::None,
    };
    let examples = select_examples(&retriever, &args.idea, how, &Default::default())?;
    let count = |s: &str| generator.encode(s).map_or(usize::MAX, |ids| ids.len());
    let (prompt, kept) = build_prompt(
        &args.idea,
        &examples,
        args.prompt.into(),
        Budget::default(),
        &count,
    )?;
    for e in examples.iter().take(kept) {
        let similarity = e
            .similarity
            .map_or_else(|| "  -  ".into(), |s| format!("{s:.3}"));
        let year = e.movie.year.map_or_else(String::new, |y| format!(" ({y})"));
        println!(
            "{similarity}  {}{year}: {}",
            e.movie.title,
            e.movie.tagline.as_deref().unwrap_or("")
        );
    }
    if args.show_prompt {
        println!("--- prompt ---\n{prompt}--- end ---");
    }
    let ids = generator.encode(&prompt)?;
    let params = SamplingParams {
        temperature: args.temperature,
        top_k: (args.top_k > 0).then_some(args.top_k),
        top_p: (args.top_p < 1.0).then_some(args.top_p),
        repeat_penalty: args.repeat_penalty,
        seed: args.seed,
        max_tokens: args.max_tokens,
        ..SamplingParams::default()
    };
    print!("\ntagline: ");
    std::io::stdout().flush().ok();
    let started = Instant::now();
    let mut first_piece = None;
    let out = generator.generate(&ids, &params, |piece| {
        first_piece.get_or_insert_with(Instant::now);
        print!("{piece}");
        std::io::stdout().flush().ok();
        ControlFlow::Continue(())
    })?;
    println!();
    let total = started.elapsed().as_secs_f64();
    let to_first = first_piece.map_or(total, |t| (t - started).as_secs_f64());
    let decode_rate = out.tokens.len().saturating_sub(1) as f64 / (total - to_first).max(1e-9);
    eprintln!(
        "{} prompt tokens, first text after {to_first:.2} s, {} tokens at {decode_rate:.1} tokens/s, stop: {:?}",
        out.prompt_tokens,
        out.tokens.len(),
        out.stop
    );
    Ok(())
}
