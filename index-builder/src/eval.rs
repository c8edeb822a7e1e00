//! `index-builder eval`: does retrieval make taglines better? Held-out movies (never used as
//! examples) get a tagline written from their overview three ways: with no examples, with
//! random examples, and with retrieved ones; the results are scored against the real
//! taglines and written as a markdown table.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use candle_core::quantized::GgmlDType;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use marquee::embed::parse_gguf_dtype;
use marquee::eval::{copies_an_example, corpus_bleu, distinct_2, mean_words, rouge_l_f1};
use marquee::generate::requantize_gguf;
use marquee::index::SearchMode;
use marquee::retriever::Retriever;
use marquee::task::tagline::{ExampleSource, Tagline, TaglineRequest};

use crate::tagline::PromptArg;

use crate::paths;

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
    /// How the examples appear in the prompt.
    #[arg(long, value_enum, default_value = "list")]
    prompt: PromptArg,
    /// Seed of the random-examples condition.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Which conditions to run: none, random, retrieved (comma-separated).
    #[arg(long, value_delimiter = ',', default_values = ["none", "random", "retrieved"])]
    conditions: Vec<String>,
    /// Write the results table (markdown) here too.
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

struct Condition {
    name: &'static str,
    source: ExampleSource,
    generated: Vec<String>,
    copies: usize,
    prompt_tokens: usize,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let dir = args
        .bundle
        .clone()
        .unwrap_or_else(crate::default_bundle_dir);
    let retriever =
        Retriever::open_dir(&dir).with_context(|| format!("cannot open {}", dir.display()))?;
    let model_path = paths::generator(args.generator.clone());
    let mut bytes = paths::read_generator(&model_path)?;
    if let Some(dtype) = &args.restore {
        bytes = requantize_gguf(&bytes, GgmlDType::Q4_1, parse_gguf_dtype(dtype)?)?;
    }
    let mut generator = crate::tagline::load_generator(&bytes, &model_path)?;
    // As the page does: every prompt then prefills only what follows the system turn.
    marquee::task::prime::<Tagline>(&mut generator)?;
    let held = held_out(&retriever, args.holdout);
    anyhow::ensure!(
        held.len() == args.holdout,
        "only {} movies have a tagline",
        held.len()
    );
    let exclude: HashSet<usize> = held.iter().copied().collect();
    // The product's settings (greedy decoding loops on this model), max 24 tokens, exact
    // search; the seed is fixed per movie, so a run is reproducible.
    let base = TaglineRequest {
        k: args.k,
        mode: SearchMode::Exact,
        style: args.prompt.into(),
        max_tokens: 24,
        ..TaglineRequest::default()
    };
    for name in &args.conditions {
        anyhow::ensure!(
            ["none", "random", "retrieved"].contains(&name.as_str()),
            "unknown condition {name:?}: use none, random or retrieved"
        );
    }
    let mut conditions: Vec<Condition> = [
        ("none", "no examples", ExampleSource::None),
        ("random", "random examples", ExampleSource::Random),
        ("retrieved", "retrieved examples", ExampleSource::Retrieved),
    ]
    .into_iter()
    .filter(|(key, _, _)| args.conditions.iter().any(|c| c == key))
    .map(|(_, name, source)| Condition {
        name,
        source,
        generated: Vec::new(),
        copies: 0,
        prompt_tokens: 0,
    })
    .collect();

    let bar = ProgressBar::new((held.len() * conditions.len()) as u64).with_style(
        ProgressStyle::with_template("{msg:<20} [{bar:40}] {pos}/{len} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let started = Instant::now();
    for condition in &mut conditions {
        bar.set_message(condition.name);
        for (n, &i) in held.iter().enumerate() {
            // Random examples differ per movie, reproducibly.
            let request = TaglineRequest {
                idea: retriever.movies()[i].overview.clone(),
                examples: condition.source,
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
            let (Some(prompt), Some(run)) = (job.prompt, job.run) else {
                anyhow::bail!("the tagline job started without a generator");
            };
            condition.prompt_tokens += prompt.tokens.len();
            let out = run.to_end(&mut generator, |_| ControlFlow::Continue(()))?;
            let text = out.text.trim().trim_matches('"').trim().to_string();
            let example_taglines: Vec<&str> = job
                .examples
                .iter()
                .take(prompt.examples_in_prompt)
                .filter_map(|e| e.movie.tagline.as_deref())
                .collect();
            condition.copies += usize::from(copies_an_example(&text, &example_taglines));
            condition.generated.push(text);
            bar.inc(1);
        }
    }
    bar.finish();

    let references: Vec<String> = held
        .iter()
        .filter_map(|&i| retriever.movies()[i].tagline.clone())
        .collect();
    let mut table = String::from(
        "| examples in the prompt | ROUGE-L F1 | BLEU | distinct-2 | mean words | copies an example's tagline | mean prompt tokens |\n|---|---|---|---|---|---|---|\n",
    );
    for c in &conditions {
        let rouge = c
            .generated
            .iter()
            .zip(&references)
            .map(|(g, r)| rouge_l_f1(g, r))
            .sum::<f64>()
            / references.len() as f64;
        table.push_str(&format!(
            "| {} | {:.4} | {:.2} | {:.3} | {:.1} | {:.1}% | {:.0} |\n",
            c.name,
            rouge,
            corpus_bleu(&c.generated, &references),
            distinct_2(&c.generated),
            mean_words(&c.generated),
            100.0 * c.copies as f64 / c.generated.len() as f64,
            c.prompt_tokens as f64 / c.generated.len() as f64
        ));
    }
    table.push_str(&format!(
        "| real taglines | 1.0000 | 100.00 | {:.3} | {:.1} | | |\n",
        distinct_2(&references),
        mean_words(&references)
    ));
    let settings = format!(
        "{} held-out TMDB movies (excluded from every prompt's examples), the idea being each movie's \
         overview; k = {}, examples as {}; temperature 0.7, top-k 40, top-p 0.9, repetition penalty 1.1, a fixed seed \
         per movie, first line, ≤ 24 tokens; generator {}{}; {:.0} s.\n",
        held.len(),
        args.k,
        match args.prompt {
            PromptArg::List => "a list of taglines",
            PromptArg::Exchanges => "overview → tagline chat exchanges",
        },
        model_path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        args.restore.as_deref().map_or_else(String::new, |d| format!(" re-stored as {d}")),
        started.elapsed().as_secs_f64()
    );
    println!("{settings}\n{table}");
    for (n, &i) in held.iter().take(5).enumerate() {
        println!("{}: real {:?}", retriever.movies()[i].title, references[n]);
        for c in &conditions {
            println!("  {:<18} {:?}", c.name, c.generated[n]);
        }
    }
    if let Some(out) = &args.out {
        std::fs::write(out, format!("{settings}\n{table}"))
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(())
}
