//! `index-builder ask`: the Ask tab from the terminal, on the engine's Ask task (the
//! page's): retrieve passages for a question, show them, and stream a short answer written
//! from the best of them, with the time each phase took.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use marquee::bundle::part;
use marquee::generate::Generator;
use marquee::qa::{PassageIndex, Signal};
use marquee::retriever::Retriever;
use marquee::task::ask::{Ask, AskRequest, Context, UNKNOWN};
use marquee::task::Phase;

use crate::paths;
use crate::stream;

#[derive(Clone, Copy, ValueEnum)]
pub enum SignalArg {
    Dense,
    Lexical,
    Fused,
}

impl From<SignalArg> for Signal {
    fn from(arg: SignalArg) -> Self {
        match arg {
            SignalArg::Dense => Signal::Dense,
            SignalArg::Lexical => Signal::Lexical,
            SignalArg::Fused => Signal::Fused,
        }
    }
}

#[derive(Args)]
pub struct AskArgs {
    /// The question ("Who directed Alien?").
    question: String,
    /// Passages retrieved and shown.
    #[arg(short, default_value_t = AskRequest::default().k)]
    k: usize,
    /// Which signal ranks the passages.
    #[arg(long, value_enum, default_value = "fused")]
    signal: SignalArg,
    /// Answer without passages (the evaluation's baseline).
    #[arg(long)]
    no_retrieval: bool,
    /// Tokens the passages may take in the prompt.
    #[arg(long, default_value_t = AskRequest::default().max_context_tokens)]
    max_context_tokens: usize,
    /// Below this cosine between the question and the closest passage found the answer is
    /// "I don't know".
    #[arg(long, default_value_t = AskRequest::default().min_relevance)]
    min_relevance: f32,
    #[arg(long, default_value_t = AskRequest::default().max_tokens)]
    max_tokens: usize,
    /// Bundle directory [default: $MARQUEE_CACHE/bundle]
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Generator GGUF [default: the SmolLM2 Q4_1 file from the asset cache]
    #[arg(long)]
    generator: Option<PathBuf>,
    /// A reader adapter (`index-builder finetune --task ask`), or `none` [default: the
    /// committed assets/adapters/ask-lora.safetensors, the page's]
    #[arg(long)]
    adapter: Option<paths::AdapterChoice>,
    /// Print the prompt before generating.
    #[arg(long)]
    show_prompt: bool,
}

/// The bundle's passages, or an error saying how to get them.
pub fn open_passages(dir: &Path, retriever: &Retriever) -> anyhow::Result<PassageIndex> {
    let manifest = retriever.manifest();
    if manifest.optional_part(part::PASSAGES).is_none() {
        anyhow::bail!(
            "the bundle in {} has no passages: rebuild it with the credits file (index-builder build)",
            dir.display()
        );
    }
    Ok(PassageIndex::open_dir(
        dir,
        manifest,
        retriever.movies().len(),
    )?)
}

/// The generator with `adapter` (by default the committed reader adapter, as the page).
pub fn load_reader(
    generator: Option<PathBuf>,
    adapter: Option<paths::AdapterChoice>,
) -> anyhow::Result<Generator> {
    let path = paths::generator(generator);
    let bytes = paths::read_generator(&path)?;
    let mut generator = crate::tagline::load_generator(&bytes, &path)?;
    let adapter = paths::AdapterChoice::or_ask_default(adapter).read(&bytes)?;
    generator.set_adapter(adapter.as_ref(), Default::default())?;
    marquee::task::prime::<Ask>(&mut generator)?;
    Ok(generator)
}

pub fn run(args: AskArgs) -> anyhow::Result<()> {
    let clock = Instant::now();
    let dir = args
        .bundle
        .clone()
        .unwrap_or_else(crate::default_bundle_dir);
    let retriever = Retriever::open_dir(&dir)
        .with_context(|| format!("cannot open the bundle in {}", dir.display()))?;
    let passages = open_passages(&dir, &retriever)?;
    let mut generator = load_reader(args.generator.clone(), args.adapter.clone())?;
    let load = clock.elapsed().as_secs_f64();
    let request = AskRequest {
        question: args.question.clone(),
        k: args.k,
        signal: args.signal.into(),
        context: if args.no_retrieval {
            Context::None
        } else {
            Context::Retrieved
        },
        max_context_tokens: args.max_context_tokens,
        min_relevance: args.min_relevance,
        max_tokens: args.max_tokens,
    };
    let started = Instant::now();
    let mut phases: Vec<(&str, f64)> = Vec::new();
    let job = marquee::task::ask::start(
        &passages,
        retriever.embedder(),
        Some(&mut generator),
        &request,
        &Default::default(),
        |phase| {
            let name = match phase {
                Phase::Embedded => "embed",
                Phase::Searched => "search",
                Phase::PromptBuilt { .. } => "prompt",
            };
            phases.push((name, started.elapsed().as_secs_f64()));
        },
    )?;
    for (rank, hit) in job.hits.iter().enumerate() {
        let movie = &retriever.movies()[hit.movie];
        println!(
            "[{}] cosine {:.3}, score {:.4} ({}):\n    {}",
            rank + 1,
            hit.cosine,
            hit.score,
            movie.title,
            passages.passages.chunk_text(hit.chunk)
        );
    }
    let (Some(prompt), Some(run)) = (job.prompt, job.run) else {
        println!("\nanswer: {UNKNOWN}");
        let best = marquee::task::ask::relevance(&job.hits);
        eprintln!(
            "no passage is relevant enough (best cosine {best:.3} < {}); load {load:.2} s, {:.3} s",
            request.min_relevance,
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    };
    if args.show_prompt {
        println!("--- prompt ---\n{}--- end ---", prompt.text);
    }
    print!("\nanswer: ");
    std::io::stdout().flush().ok();
    let streamed = stream::to_stdout(run, &mut generator, started)?;
    let phases: Vec<String> = phases
        .iter()
        .map(|(name, at)| format!("{name} {:.0} ms", at * 1000.0))
        .collect();
    eprintln!(
        "load {load:.2} s; {} (from the start); {} passages in the prompt; {}",
        phases.join(", "),
        prompt.passages_in_prompt,
        streamed.summary()
    );
    Ok(())
}
