//! `index-builder finetune`: LoRA-trains SmolLM2 on the catalogue's taglines (or, with
//! `--task ask`, as the Ask tab's reader on training questions), each movie's
//! prompt holding the taglines of the movies most similar to it (the page's own prompt),
//! never training on the evaluation's held-out movies. A progress bar shows the loss,
//! tokens/s and time left; a checkpoint is written every `--checkpoint-every` steps and on
//! Ctrl-C, and `--resume` continues from it exactly. The result is an adapter file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use marquee::generate::Generator;
use marquee::retriever::Retriever;
use marquee::task::ask::AskRequest;
use marquee::train::data::{training_examples, training_order, DataOptions, TrainingExample};
use marquee::train::{file, LoraConfig, Schedule, Target, TrainableLlama, Trainer};

use crate::paths;

#[derive(Args)]
pub struct FinetuneArgs {
    /// Bundle directory [default: $MARQUEE_CACHE/bundle]
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Generator GGUF [default: the SmolLM2 Q4_1 file from the asset cache]
    #[arg(long)]
    generator: Option<PathBuf>,
    /// Train on this many movies (a seeded spread) [default: every movie with a tagline]
    #[arg(long)]
    movies: Option<usize>,
    /// Movies kept out of training and out of every prompt (the evaluation's `--holdout`).
    #[arg(long, default_value_t = 300)]
    holdout: usize,
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    #[arg(long, default_value_t = 8)]
    rank: usize,
    #[arg(long, default_value_t = 16.0)]
    alpha: f64,
    /// Matrices to adapt: q, k, v, o, gate, up, down (comma-separated).
    #[arg(long, value_delimiter = ',', default_values = ["q", "v"])]
    targets: Vec<String>,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-4)]
    lr: f64,
    /// Warm-up steps (then linear decay to zero at the last step).
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    #[arg(long, default_value_t = 1.0)]
    max_grad_norm: f64,
    /// Retrieved examples per prompt.
    #[arg(short, default_value_t = 4)]
    k: usize,
    /// Seeds the adapters, the data mix and the order: the same seed, the same adapter.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// What to train for: taglines, or the Ask tab's reader (answers from passages).
    #[arg(long, value_enum, default_value = "tagline")]
    task: TaskArg,
    /// Ask: train on the first N training questions (a spread over kinds and movies)
    /// [default: all]
    #[arg(long)]
    questions: Option<usize>,
    /// Ask: the share of training questions asked as if their movie were missing from the
    /// catalogue (taught "I don't know."), in percent.
    #[arg(long, default_value_t = 10)]
    absent_percent: u64,
    /// Ask: the share of movies held out for `ask-eval`, in percent (never trained on).
    #[arg(long, default_value_t = 20)]
    held_out_percent: u64,
    /// The adapter file [default: $MARQUEE_CACHE/adapters/tagline-lora.safetensors, or
    /// ask-lora.safetensors with --task ask]
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, default_value_t = 100)]
    checkpoint_every: usize,
    /// Continue from the checkpoint beside `--out`.
    #[arg(long)]
    resume: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum TaskArg {
    Tagline,
    Ask,
}

impl TaskArg {
    fn default_adapter(self) -> &'static str {
        match self {
            TaskArg::Tagline => "adapters/tagline-lora.safetensors",
            TaskArg::Ask => "adapters/ask-lora.safetensors",
        }
    }
}

fn target(name: &str) -> anyhow::Result<Target> {
    Ok(match name.trim() {
        "q" => Target::Q,
        "k" => Target::K,
        "v" => Target::V,
        "o" => Target::O,
        "gate" => Target::Gate,
        "up" => Target::Up,
        "down" => Target::Down,
        other => anyhow::bail!("unknown target {other:?}: use q, k, v, o, gate, up or down"),
    })
}

fn save(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

pub fn run(args: FinetuneArgs) -> anyhow::Result<()> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| paths::cache_dir().join(args.task.default_adapter()));
    let checkpoint_path = out.with_extension("checkpoint.safetensors");
    // A resumed run takes its adapters' shape from the checkpoint.
    let lora = match (args.resume, checkpoint_path.exists()) {
        (true, true) => file::read(&std::fs::read(&checkpoint_path)?)?.lora,
        (true, false) => anyhow::bail!("no checkpoint at {}", checkpoint_path.display()),
        _ => LoraConfig {
            rank: args.rank,
            alpha: args.alpha,
            targets: args
                .targets
                .iter()
                .map(|t| target(t))
                .collect::<anyhow::Result<_>>()?,
            seed: args.seed,
            ..LoraConfig::default()
        },
    };
    let dir = args
        .bundle
        .clone()
        .unwrap_or_else(crate::default_bundle_dir);
    let retriever =
        Retriever::open_dir(&dir).with_context(|| format!("cannot open {}", dir.display()))?;
    let model_path = paths::generator(args.generator.clone());
    let bytes = paths::read_generator(&model_path)?;
    // For tokenizing the training prompts only: no prefix to prime.
    let generator = crate::tagline::load_generator(&bytes, &model_path)?;
    let base_model = format!(
        "{} sha256:{}",
        model_path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        marquee::bundle::sha256_hex(&bytes)
    );
    let examples = match args.task {
        TaskArg::Tagline => tagline_examples(&args, &retriever, &generator)?,
        TaskArg::Ask => ask_examples(&args, &dir, &retriever, &generator)?,
    };
    drop(generator);

    let model = TrainableLlama::from_gguf(&bytes, &lora)
        .context("cannot load the generator for training")?;
    let steps = training_order(examples.len(), args.epochs, args.seed);
    let schedule = Schedule {
        peak: args.lr,
        warmup: args.warmup.min(steps.len() / 2),
        total: steps.len(),
    };
    let mut trainer = Trainer::new(&model, schedule, args.weight_decay, args.max_grad_norm)?;
    if args.resume {
        let checkpoint = file::read(&std::fs::read(&checkpoint_path)?)?;
        anyhow::ensure!(
            checkpoint.base_model == base_model,
            "the checkpoint was trained on {}, not {base_model}",
            checkpoint.base_model
        );
        checkpoint.resume(&model, &mut trainer)?;
        eprintln!("resuming at step {} of {}", trainer.steps(), steps.len());
    }

    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("cannot watch for Ctrl-C")?;
    let training = progress_bar(
        steps.len(),
        "training [{bar:40}] {pos}/{len} {msg} (eta {eta})",
    );
    training.set_position(trainer.steps() as u64);
    let started = Instant::now();
    let (mut tokens, mut smoothed) = (0usize, None::<f64>);
    let first_step = trainer.steps();
    let mut epoch_losses = vec![(0.0f64, 0usize); args.epochs];
    for step in trainer.steps()..steps.len() {
        let example = &examples[steps[step]];
        let report = trainer.step(&model, &example.ids, &example.answer)?;
        tokens += example.ids.len();
        let loss = smoothed.map_or(report.loss, |s| 0.9 * s + 0.1 * report.loss);
        smoothed = Some(loss);
        let epoch = &mut epoch_losses[step / examples.len()];
        *epoch = (epoch.0 + report.loss, epoch.1 + 1);
        let rate = tokens as f64 / started.elapsed().as_secs_f64().max(1e-9);
        training.set_message(format!("loss {loss:.3}, {rate:.0} tokens/s"));
        training.inc(1);
        let done = trainer.steps();
        if stop.load(Ordering::SeqCst) || (done % args.checkpoint_every == 0 && done < steps.len())
        {
            save(
                &checkpoint_path,
                &file::save(&model, &base_model, Some(&trainer))?,
            )?;
            if stop.load(Ordering::SeqCst) {
                training.abandon();
                eprintln!(
                    "interrupted at step {done} of {}: checkpoint saved to {}; continue with --resume",
                    steps.len(),
                    checkpoint_path.display()
                );
                return Ok(());
            }
        }
    }
    training.finish();
    save(&out, &file::save(&model, &base_model, None)?)?;
    std::fs::remove_file(&checkpoint_path).ok();
    for (epoch, (sum, count)) in epoch_losses.iter().enumerate() {
        if *count > 0 {
            println!(
                "epoch {}: mean loss {:.4} over {count} examples",
                epoch + 1,
                sum / *count as f64
            );
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "adapter written to {} ({} examples, {} steps, {:.0} tokens per step, {seconds:.0} s, {:.0} tokens/s, peak memory {})",
        out.display(),
        examples.len(),
        steps.len(),
        tokens as f64 / (steps.len() - first_step).max(1) as f64,
        tokens as f64 / seconds.max(1e-9),
        peak_memory().unwrap_or_else(|| "unknown".into())
    );
    Ok(())
}

fn progress_bar(len: usize, template: &str) -> ProgressBar {
    ProgressBar::new(len as u64).with_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    )
}

/// The tagline task's examples: each training movie's prompt with retrieved taglines.
fn tagline_examples(
    args: &FinetuneArgs,
    retriever: &Retriever,
    generator: &Generator,
) -> anyhow::Result<Vec<TrainingExample>> {
    let held_out: HashSet<usize> = crate::eval::held_out(retriever, args.holdout)
        .into_iter()
        .collect();
    let mut movies: Vec<usize> = (0..retriever.movies().len())
        .filter(|i| retriever.movies()[*i].tagline.is_some() && !held_out.contains(i))
        .collect();
    anyhow::ensure!(
        !movies.is_empty(),
        "no movie has a tagline to train on (the catalogue's tagline column is empty?)"
    );
    if let Some(n) = args.movies {
        let spread = training_order(movies.len(), 1, args.seed);
        movies = spread.into_iter().take(n).map(|i| movies[i]).collect();
    }
    let options = DataOptions {
        k: args.k,
        seed: args.seed,
        ..DataOptions::default()
    };
    let preparing = progress_bar(
        movies.len(),
        "preparing prompts [{bar:40}] {pos}/{len} (eta {eta})",
    );
    let mut examples: Vec<TrainingExample> = Vec::with_capacity(movies.len());
    for chunk in movies.chunks(16) {
        examples.extend(training_examples(
            retriever, generator, chunk, &held_out, options,
        )?);
        preparing.inc(chunk.len() as u64);
    }
    preparing.finish();
    Ok(examples)
}

/// The Ask reader's examples: training questions (never a held-out movie's, the split
/// `ask-eval` uses) with the page's own retrieval and prompt.
fn ask_examples(
    args: &FinetuneArgs,
    dir: &Path,
    retriever: &Retriever,
    generator: &Generator,
) -> anyhow::Result<Vec<TrainingExample>> {
    let passages = crate::ask::open_passages(dir, retriever)?;
    let mut questions =
        crate::eval::ask::split_questions(retriever, None, None, args.held_out_percent)?.training;
    if let Some(n) = args.questions {
        questions.truncate(n);
    }
    anyhow::ensure!(!questions.is_empty(), "no training questions");
    let preparing = progress_bar(
        questions.len(),
        "preparing prompts [{bar:40}] {pos}/{len} (eta {eta})",
    );
    let request = AskRequest::default();
    // A seeded pick by the question's text, so the same questions are absent every run.
    let absent = |q: &marquee::qa::questions::Question| {
        let hash = marquee::bundle::sha256_hex(format!("{}{}", args.seed, q.text).as_bytes());
        u64::from_str_radix(&hash[..8], 16).unwrap_or(0) % 100 < args.absent_percent
    };
    let mut examples = Vec::with_capacity(questions.len());
    for chunk in questions.chunks(16) {
        examples.extend(marquee::train::ask_data::ask_examples(
            &passages,
            retriever.embedder(),
            generator,
            chunk,
            &request,
            absent,
        )?);
        preparing.inc(chunk.len() as u64);
    }
    preparing.finish();
    Ok(examples)
}

/// This process's peak resident memory (`VmHWM`, Linux), for the closing line.
fn peak_memory() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(format!("{:.0} MiB", kb / 1024.0))
}
