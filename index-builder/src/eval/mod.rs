//! `index-builder eval`: do the adapter and the retrieved examples make taglines better?
//! Held-out movies (never trained on, never used as examples) are written a tagline from
//! their overview by each generator (the base model, adapters) under each prompt condition
//! (no examples, random ones, retrieved ones). Scored: the teacher-forced negative
//! log-likelihood of the real tagline (no sampling noise; paired-bootstrap intervals for
//! retrieved − none and retrieved − random), and generated taglines against the real ones
//! (`score.rs`). The tables are printed and written as markdown.

pub mod ask;
mod score;

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use candle_core::quantized::GgmlDType;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use marquee::embed::parse_gguf_dtype;
use marquee::eval::copies_an_example;
use marquee::generate::chat::END_OF_TURN;
use marquee::generate::{requantize_gguf, AdapterMode};
use marquee::index::SearchMode;
use marquee::retriever::Retriever;
use marquee::task::tagline::{ExampleSource, Strategy, Tagline, TaglineRequest};

use crate::paths::{self, AdapterChoice};
use crate::tagline::PromptArg;
use score::Cell;

#[derive(Args)]
pub struct EvalArgs {
    /// Held-out movies (with a real tagline) to write taglines for.
    #[arg(long, default_value_t = 300)]
    holdout: usize,
    /// Examples per prompt (random and retrieved conditions).
    #[arg(short, default_value_t = 4)]
    k: usize,
    /// Bundle directory [default: $MARQUEE_CACHE/bundle]
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Generator GGUF [default: the SmolLM2 Q4_1 file from the asset cache]
    #[arg(long)]
    generator: Option<PathBuf>,
    /// Re-store the generator's Q4_1 weights first (q8_0 or q4_0), e.g. to measure its cost.
    #[arg(long)]
    restore: Option<String>,
    /// The generators, as NAME=ADAPTER (an adapter file, or `none` for the base model),
    /// comma-separated [default: the base model and the two committed adapters, trained
    /// without and with retrieved examples]
    #[arg(long = "models", value_delimiter = ',')]
    models: Vec<String>,
    /// Merge each adapter into the quantized weights instead of keeping it apart.
    #[arg(long)]
    merged: bool,
    /// How the examples appear in the prompt.
    #[arg(long, value_enum, default_value = "list")]
    prompt: PromptArg,
    /// Seed of the random-examples condition and of the samples.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Which conditions to run: none, random, retrieved (comma-separated).
    #[arg(long, value_delimiter = ',', default_values = ["none", "random", "retrieved"])]
    conditions: Vec<String>,
    /// Generate taglines for the first N held-out movies only (the likelihood is scored on
    /// all of them) [default: all]
    #[arg(long)]
    generate: Option<usize>,
    /// Sampled taglines per movie and cell (0: the likelihood only).
    #[arg(long, default_value_t = 5)]
    samples: usize,
    /// Beam width of the beam-search tagline per movie and cell (0: none).
    #[arg(long, default_value_t = TaglineRequest::default().beam_width)]
    beam: usize,
    /// Paired-bootstrap resamples for the confidence intervals.
    #[arg(long, default_value_t = 10_000)]
    resamples: usize,
    /// Write the results (markdown) here too.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// A deterministic spread of held-out movies: FNV-1a of the id orders the movies. `finetune`
/// never trains on them.
pub(crate) fn held_out(retriever: &Retriever, n: usize) -> Vec<usize> {
    let fnv = |s: &str| {
        s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        })
    };
    let mut with_tagline: Vec<usize> = (0..retriever.movies().len())
        .filter(|&i| retriever.movies()[i].tagline.is_some())
        .collect();
    with_tagline.sort_by_key(|&i| fnv(&retriever.movies()[i].id));
    with_tagline.truncate(n);
    with_tagline
}

const CONDITIONS: [(&str, &str, ExampleSource); 3] = [
    ("none", "no examples", ExampleSource::None),
    ("random", "random examples", ExampleSource::Random),
    ("retrieved", "retrieved examples", ExampleSource::Retrieved),
];

/// The generators `specs` name as `NAME=ADAPTER` pairs (an adapter file or `none`), or
/// `default` when there are none.
pub fn models(
    specs: &[String],
    default: impl FnOnce() -> Vec<(String, AdapterChoice)>,
) -> anyhow::Result<Vec<(String, AdapterChoice)>> {
    if specs.is_empty() {
        return Ok(default());
    }
    specs
        .iter()
        .map(|m| {
            let (name, adapter) = m
                .split_once('=')
                .with_context(|| format!("--models takes NAME=ADAPTER pairs, not {m:?}"))?;
            Ok((name.to_string(), adapter.parse()?))
        })
        .collect()
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let dir = args
        .bundle
        .clone()
        .unwrap_or_else(crate::default_bundle_dir);
    let retriever =
        Retriever::open_dir(&dir).with_context(|| format!("cannot open {}", dir.display()))?;
    let model_path = paths::generator(args.generator.clone());
    let source = paths::read_generator(&model_path)?;
    let bytes = match &args.restore {
        Some(dtype) => requantize_gguf(&source, GgmlDType::Q4_1, parse_gguf_dtype(dtype)?)?,
        None => source.clone(),
    };
    let models = models(&args.models, || {
        vec![
            ("base".into(), AdapterChoice::None),
            (
                "LoRA trained without examples".into(),
                AdapterChoice::File(paths::committed_no_examples_adapter()),
            ),
            (
                "LoRA trained with examples (shipped)".into(),
                AdapterChoice::File(paths::committed_adapter()),
            ),
        ]
    })?;
    for name in &args.conditions {
        anyhow::ensure!(
            CONDITIONS.iter().any(|(key, _, _)| key == name),
            "unknown condition {name:?}: use none, random or retrieved"
        );
    }
    let conditions: Vec<_> = CONDITIONS
        .iter()
        .filter(|(key, _, _)| args.conditions.iter().any(|c| c == key))
        .collect();
    let held = held_out(&retriever, args.holdout);
    anyhow::ensure!(
        held.len() == args.holdout,
        "only {} movies have a tagline",
        held.len()
    );
    let exclude: HashSet<usize> = held.iter().copied().collect();
    let generate = args.generate.unwrap_or(held.len()).min(held.len());
    let references: Vec<String> = held
        .iter()
        .filter_map(|&i| retriever.movies()[i].tagline.clone())
        .collect();
    // The product's sampling settings, max 24 tokens, exact search; seeds fixed per movie
    // and sample, so a run is reproducible.
    let base = TaglineRequest {
        k: args.k,
        mode: SearchMode::Exact,
        style: args.prompt.into(),
        max_tokens: 24,
        ..TaglineRequest::default()
    };

    let bar = ProgressBar::new((held.len() * conditions.len() * models.len()) as u64).with_style(
        ProgressStyle::with_template("{msg:<28} [{bar:40}] {pos}/{len} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let mode = if args.merged {
        AdapterMode::Merged
    } else {
        AdapterMode::Apart
    };
    let mut cells: Vec<Cell> = Vec::new();
    for (model_name, adapter) in &models {
        // A fresh model per adapter: a merged adapter cannot be taken off again.
        let mut generator = crate::tagline::load_generator(&bytes, &model_path)?;
        generator.set_adapter(adapter.read(&source)?.as_ref(), mode)?;
        marquee::task::prime::<Tagline>(&mut generator)?;
        for (key, label, examples) in &conditions {
            bar.set_message(format!("{model_name}, {key}"));
            let mut cell = Cell::new(model_name, label, args.samples, args.beam > 0);
            for (n, &i) in held.iter().enumerate() {
                let movie = &retriever.movies()[i];
                let request = TaglineRequest {
                    idea: movie.overview.clone(),
                    examples: *examples,
                    // Random examples differ per movie, reproducibly.
                    examples_seed: args.seed.wrapping_add(n as u64 * 7919),
                    seed: base.seed.wrapping_add(n as u64),
                    ..base.clone()
                };
                let job = marquee::task::tagline::start(
                    &retriever,
                    Some(&mut generator),
                    &request,
                    &exclude,
                    |_| {},
                )?;
                let Some(prompt) = job.prompt else {
                    anyhow::bail!("the tagline job started without a generator");
                };
                let example_taglines: Vec<&str> = job
                    .examples
                    .iter()
                    .take(prompt.examples_in_prompt)
                    .filter_map(|e| e.movie.tagline.as_deref())
                    .collect();
                let answer = generator.encode(&format!("{}{END_OF_TURN}", references[n]))?;
                let log_probs = generator.answer_log_probs(&prompt.tokens, &answer)?;
                cell.nll.push(
                    -log_probs.iter().map(|&l| l as f64).sum::<f64>() / log_probs.len() as f64,
                );
                cell.prompt_tokens += prompt.tokens.len();
                let beam = TaglineRequest {
                    decoding: Strategy::Beam,
                    beam_width: args.beam,
                    ..request.clone()
                };
                let samples = (0..args.samples).map(|s| TaglineRequest {
                    seed: request.seed.wrapping_add(s as u64 * 104_729),
                    ..request.clone()
                });
                let runs = (args.beam > 0).then_some(beam).into_iter().chain(samples);
                // Generation costs more than scoring: on the first `generate` movies only.
                let runs = runs.take(if n < generate { usize::MAX } else { 0 });
                for (r, request) in runs.enumerate() {
                    let job = marquee::task::tagline::start(
                        &retriever,
                        Some(&mut generator),
                        &request,
                        &exclude,
                        |_| {},
                    )?;
                    let Some(run) = job.run else {
                        anyhow::bail!("the tagline job started without a generator");
                    };
                    let out = run.to_end(&mut generator, |_| ControlFlow::Continue(()))?;
                    let text = out.text.trim().trim_matches('"').trim().to_string();
                    let copies = usize::from(copies_an_example(&text, &example_taglines));
                    cell.outputs[r].copies += copies;
                    cell.outputs[r].texts.push(text);
                }
                bar.inc(1);
            }
            cells.push(cell);
        }
    }
    bar.finish();

    let settings = format!(
        "{} held-out TMDB movies (excluded from training and from every prompt's examples), the idea \
         being each movie's overview; k = {}, examples as {}; generator {}{}, adapters {}; \
         generated taglines for the first {} of them: {}; {} sampled taglines per movie and cell (temperature 0.7, top-k 40, top-p 0.9, \
         repetition penalty 1.1, seeds fixed per movie and sample); first line, ≤ 24 tokens; \
         {} bootstrap resamples; {:.0} s.\n",
        held.len(),
        args.k,
        match args.prompt {
            PromptArg::List => "a list of taglines",
            PromptArg::Exchanges => "overview → tagline chat exchanges",
        },
        model_path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        args.restore
            .as_deref()
            .map_or_else(String::new, |d| format!(" re-stored as {d}")),
        if args.merged { "merged into the weights" } else { "kept apart" },
        generate,
        if args.beam > 0 {
            format!("a beam search of width {} (scores the mean log-probability per token, no repeated 3-gram)", args.beam)
        } else {
            "no beam search".into()
        },
        args.samples,
        args.resamples,
        started.elapsed().as_secs_f64()
    );
    let report = score::report(&cells, &references, &retriever, args.resamples, args.seed)?;
    println!("{settings}\n{report}");
    for (n, &i) in held.iter().take(5).enumerate() {
        println!("{}: real {:?}", retriever.movies()[i].title, references[n]);
        for c in &cells {
            for output in c.outputs.iter().take(2) {
                let Some(text) = output.texts.get(n) else {
                    continue;
                };
                println!("  {:<36} {text:?}", format!("{}, {}", c.name(), output.how));
            }
        }
    }
    if let Some(out) = &args.out {
        std::fs::write(out, format!("{settings}\n{report}"))
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(())
}
