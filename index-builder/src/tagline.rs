//! `index-builder tagline`: the whole RAG loop from the terminal, on the engine's tagline
//! task (the page's): retrieve similar movies, show them, and stream a new tagline written
//! with them as examples.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use marquee::generate::Generator;
use marquee::index::SearchMode;
use marquee::retriever::Retriever;
use marquee::task::tagline::{ExampleSource, PromptStyle, Strategy, Tagline, TaglineRequest};
use marquee::task::Phase;

use crate::paths;
use crate::stream;

#[derive(Clone, Copy, ValueEnum)]
enum ExampleArg {
    Retrieved,
    Random,
    None,
}

impl From<ExampleArg> for ExampleSource {
    fn from(arg: ExampleArg) -> Self {
        match arg {
            ExampleArg::Retrieved => ExampleSource::Retrieved,
            ExampleArg::Random => ExampleSource::Random,
            ExampleArg::None => ExampleSource::None,
        }
    }
}

/// `--prompt`: how the examples appear in the prompt (see `marquee::task::tagline::PromptStyle`).
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

/// Loads the generator GGUF (`bytes`, read from `path`).
pub fn load_generator(bytes: &[u8], path: &std::path::Path) -> anyhow::Result<Generator> {
    Generator::from_llama_gguf(bytes)
        .with_context(|| format!("cannot load the generator {}", path.display()))
}

#[derive(Args)]
pub struct TaglineArgs {
    /// The movie idea (a sentence or a whole overview).
    idea: String,
    /// How many example movies go into the prompt.
    #[arg(short, default_value_t = TaglineRequest::default().k)]
    k: usize,
    /// Where the examples come from.
    #[arg(long, value_enum, default_value = "retrieved")]
    examples: ExampleArg,
    /// How the examples appear in the prompt.
    #[arg(long, value_enum, default_value = "list")]
    prompt: PromptArg,
    #[arg(long, default_value_t = TaglineRequest::default().mode)]
    mode: SearchMode,
    /// 0 picks the likeliest token every time.
    #[arg(long, default_value_t = TaglineRequest::default().temperature)]
    temperature: f64,
    /// 0 turns top-k off.
    #[arg(long, default_value_t = TaglineRequest::default().top_k)]
    top_k: usize,
    /// 1 turns top-p off.
    #[arg(long, default_value_t = TaglineRequest::default().top_p)]
    top_p: f64,
    #[arg(long, default_value_t = TaglineRequest::default().repeat_penalty)]
    repeat_penalty: f32,
    /// Same seed, same settings, same tagline (also seeds `--examples random`).
    #[arg(long, default_value_t = TaglineRequest::default().seed)]
    seed: u64,
    #[arg(long, default_value_t = TaglineRequest::default().max_tokens)]
    max_tokens: usize,
    /// Beam search with this many hypotheses (1 = greedy) instead of sampling: the likeliest
    /// tagline the beam finds; the sampling options and the seed then play no part.
    #[arg(long, value_name = "WIDTH")]
    beam: Option<usize>,
    /// Beam scores are sum log p / length^this (1: mean per token; 0: plain sum).
    #[arg(long, default_value_t = TaglineRequest::default().length_penalty)]
    length_penalty: f64,
    /// With --beam: no hypothesis repeats an n-gram of this many of its tokens (0: no rule).
    #[arg(long, default_value_t = TaglineRequest::default().no_repeat_ngram)]
    no_repeat_ngram: usize,
    /// Bundle directory [default: $MARQUEE_CACHE/bundle]
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Generator GGUF [default: $MARQUEE_CACHE/assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf]
    #[arg(long)]
    generator: Option<PathBuf>,
    /// LoRA adapter file, or `none` for the base model [default: the committed
    /// assets/adapters/tagline-lora.safetensors]
    #[arg(long)]
    adapter: Option<paths::AdapterChoice>,
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
    let path = paths::generator(args.generator.clone());
    let bytes = paths::read_generator(&path)?;
    let mut generator = load_generator(&bytes, &path)?;
    let adapter = paths::AdapterChoice::or_default(args.adapter.clone()).read(&bytes)?;
    generator.set_adapter(adapter.as_ref(), Default::default())?;
    // As the page does, so that the same idea and seed give the page's tagline.
    marquee::task::prime::<Tagline>(&mut generator)?;
    let request = TaglineRequest {
        idea: args.idea.clone(),
        k: args.k,
        mode: args.mode,
        examples: args.examples.into(),
        examples_seed: args.seed,
        style: args.prompt.into(),
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        repeat_penalty: args.repeat_penalty,
        seed: args.seed,
        max_tokens: args.max_tokens,
        decoding: if args.beam.is_some() {
            Strategy::Beam
        } else {
            Strategy::Sampled
        },
        beam_width: args.beam.unwrap_or(TaglineRequest::default().beam_width),
        length_penalty: args.length_penalty,
        no_repeat_ngram: args.no_repeat_ngram,
    };
    let started = Instant::now();
    let job = marquee::task::tagline::start(
        &retriever,
        Some(&mut generator),
        &request,
        &Default::default(),
        |_: Phase| {},
    )?;
    let (Some(prompt), Some(run)) = (job.prompt, job.run) else {
        anyhow::bail!("the tagline job started without a generator");
    };
    for e in job.examples.iter().take(prompt.examples_in_prompt) {
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
        println!("--- prompt ---\n{}--- end ---", prompt.text);
    }
    print!("\ntagline: ");
    std::io::stdout().flush().ok();
    let streamed = stream::to_stdout(run, &mut generator, started)?;
    let how = match request.decoding {
        Strategy::Sampled => "sampled".to_string(),
        Strategy::Beam => format!("beam of {}", request.beam_width),
    };
    eprintln!("{how}: {}", streamed.summary());
    Ok(())
}
