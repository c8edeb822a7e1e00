//! `index-builder ask-eval`: how well the Ask tab answers the held-out questions (templated
//! from the catalogue's facts, `marquee::qa::questions`; their movies are never trained on).
//! Retrieval: hit@1 and hit@5 (a chunk of a right movie among the first k) for the dense,
//! lexical and fused signals, per question kind. The "I don't know" threshold: the best
//! passage's cosine for each question, and again with its movies removed from the catalogue
//! (a question about a movie the catalogue lacks); precision and recall of "I don't know" at
//! each threshold. Answers: exact match and token F1 against the answer set, without and
//! with retrieval, for each generator (base model, reader adapters). Markdown tables out.

use std::collections::{BTreeMap, HashSet};
use std::ops::ControlFlow;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use marquee::qa::facts::read_tmdb;
use marquee::qa::metrics::{exact_match, token_f1};
use marquee::qa::questions::{generate, Kind, Question};
use marquee::qa::{Fusion, PassageHit, PassageIndex, Signal};
use marquee::retriever::Retriever;
use marquee::task::ask::{relevance, AskRequest, Context, UNKNOWN};
use marquee::task::RunEvent;
use marquee::train::ask_data::taught_answer;

use crate::paths::{self, AdapterChoice};

#[derive(Args)]
pub struct AskEvalArgs {
    /// Bundle directory [default: $MARQUEE_CACHE/bundle]
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// TMDB's movies file the questions come from [default: the asset cache's]
    #[arg(long)]
    movies_csv: Option<PathBuf>,
    /// TMDB's credits file [default: the asset cache's]
    #[arg(long)]
    credits: Option<PathBuf>,
    /// Share of the movies held out, in percent (the same split `finetune --task ask` uses).
    #[arg(long, default_value_t = 20)]
    held_out_percent: u64,
    /// Score retrieval on at most this many held-out questions [default: all]
    #[arg(long)]
    questions: Option<usize>,
    /// Compare the fusion settings on this many training questions.
    #[arg(long, default_value_t = 3000)]
    fusion_questions: usize,
    /// Generate answers for this many held-out questions (a spread over the kinds).
    #[arg(long, default_value_t = 200)]
    generate: usize,
    /// The generators, as NAME=ADAPTER (a reader adapter file, or `none`), comma-separated
    /// [default: the base model and the committed reader adapter]
    #[arg(long = "models", value_delimiter = ',')]
    models: Vec<String>,
    /// Generator GGUF [default: the SmolLM2 Q4_1 file from the asset cache]
    #[arg(long)]
    generator: Option<PathBuf>,
    /// Write the tables (markdown) here too.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The templated questions split by movie: held out and training, each in a spread order
/// (sorted by a hash of their text, so any first N mixes the kinds and movies). One read of
/// the TMDB files (40 MB of credits) serves both.
pub struct QuestionSplit {
    pub held_out: Vec<Question>,
    pub training: Vec<Question>,
}

pub fn split_questions(
    retriever: &Retriever,
    movies_csv: Option<PathBuf>,
    credits: Option<PathBuf>,
    percent: u64,
) -> anyhow::Result<QuestionSplit> {
    let movies_csv = movies_csv.unwrap_or_else(|| paths::assets_dir().join("tmdb/movies.csv"));
    let credits = credits.unwrap_or_else(|| paths::assets_dir().join("tmdb/credits.csv"));
    let open = |p: &PathBuf| {
        std::fs::File::open(p).with_context(|| format!("cannot read {}", p.display()))
    };
    let (facts, _) = read_tmdb(open(&movies_csv)?, open(&credits)?)?;
    let ids: Vec<String> = retriever.movies().iter().map(|m| m.id.clone()).collect();
    let (mut held_out, mut training): (Vec<Question>, Vec<Question>) =
        generate(&facts, &ids, percent)
            .into_iter()
            .partition(|q| q.held_out);
    let key = |q: &Question| marquee::bundle::sha256_hex(q.text.as_bytes());
    held_out.sort_by_cached_key(key);
    training.sort_by_cached_key(key);
    Ok(QuestionSplit { held_out, training })
}

/// Whether the best chunk holds one of the question's answers (what the reader needs):
/// the "answer@1" columns.
fn first_chunk_answers(passages: &PassageIndex, hits: &[PassageHit], q: &Question) -> bool {
    hits.first().is_some_and(|h| {
        taught_answer(&passages.passages.chunk_text(h.chunk), &q.answers) != UNKNOWN
    })
}

fn bar(len: usize, what: &str) -> ProgressBar {
    ProgressBar::new(len as u64).with_style(
        ProgressStyle::with_template(&format!(
            "{what} [{{bar:40}}] {{pos}}/{{len}} (eta {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    )
}

fn pct(part: f64, whole: f64) -> String {
    if whole == 0.0 {
        "–".into()
    } else {
        format!("{:.1}", 100.0 * part / whole)
    }
}

/// Per kind (and "all"): sums of each measure and the question count.
#[derive(Default)]
struct Tally(BTreeMap<Option<Kind>, (Vec<f64>, usize)>);

impl Tally {
    fn add(&mut self, kind: Kind, values: &[f64]) {
        for key in [Some(kind), None] {
            let entry = self
                .0
                .entry(key)
                .or_insert_with(|| (vec![0.0; values.len()], 0));
            for (sum, v) in entry.0.iter_mut().zip(values) {
                *sum += v;
            }
            entry.1 += 1;
        }
    }

    fn rows(&self) -> impl Iterator<Item = (String, &Vec<f64>, usize)> {
        self.0.iter().map(|(kind, (sums, n))| {
            (
                kind.map_or_else(|| "**all**".to_string(), |k| k.name().to_string()),
                sums,
                *n,
            )
        })
    }
}

pub fn run(args: AskEvalArgs) -> anyhow::Result<()> {
    let dir = args
        .bundle
        .clone()
        .unwrap_or_else(crate::default_bundle_dir);
    let retriever = Retriever::open_dir(&dir)
        .with_context(|| format!("cannot open the bundle in {}", dir.display()))?;
    let passages = crate::ask::open_passages(&dir, &retriever)?;
    let QuestionSplit {
        held_out: mut questions,
        // The fusion is chosen on training questions, never on the held-out ones it is
        // scored on.
        mut training,
    } = split_questions(
        &retriever,
        args.movies_csv.clone(),
        args.credits.clone(),
        args.held_out_percent,
    )?;
    if let Some(n) = args.questions {
        questions.truncate(n);
    }
    anyhow::ensure!(!questions.is_empty(), "no held-out questions");
    let mut out = String::new();
    let (retrieval, cosines) = retrieval_table(&retriever, &passages, &questions)?;
    out.push_str(&retrieval);
    training.truncate(args.fusion_questions);
    out.push_str(&fusion_table(&retriever, &passages, &training)?);
    out.push_str(&threshold_table(&cosines));
    let generate: Vec<Question> = questions.iter().take(args.generate).cloned().collect();
    out.push_str(&answers_table(&args, &retriever, &passages, &generate)?);
    println!("{out}");
    if let Some(path) = &args.out {
        std::fs::write(path, &out).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// hit@1 / hit@5 per signal and kind; also the best fused passage's cosine for each
/// question with and without its movies in the catalogue.
fn retrieval_table(
    retriever: &Retriever,
    passages: &PassageIndex,
    questions: &[Question],
) -> anyhow::Result<(String, Vec<(f32, f32)>)> {
    let signals = [Signal::Dense, Signal::Lexical, Signal::Fused];
    let mut tally = Tally::default();
    let mut cosines = Vec::with_capacity(questions.len());
    let progress = bar(questions.len(), "retrieval");
    let none = HashSet::new();
    for q in questions {
        let embedding = retriever.embedder().embed_query(&q.text)?;
        let mut values = Vec::new();
        for signal in signals {
            let hits = passages.search(&q.text, &embedding, 5, signal, &none)?;
            let first = hits.iter().position(|h| q.movies.contains(&h.movie));
            values.push(f64::from(u8::from(first == Some(0))));
            values.push(f64::from(u8::from(first.is_some())));
            if signal == Signal::Fused {
                values.push(f64::from(u8::from(first_chunk_answers(passages, &hits, q))));
                // The relevance the task decides on, over the passages it shows.
                let k = AskRequest::default().k;
                let absent: HashSet<usize> = q.movies.iter().copied().collect();
                let without = passages.search(&q.text, &embedding, k, signal, &absent)?;
                cosines.push((relevance(&hits[..k.min(hits.len())]), relevance(&without)));
            }
        }
        tally.add(q.kind, &values);
        progress.inc(1);
    }
    progress.finish();
    let mut table = String::from(
        "### Retrieval (held-out questions): hit@1 / hit@5, %\n\n\
         | kind | questions | dense @1 | dense @5 | lexical @1 | lexical @5 | fused @1 | fused @5 | \
         fused answer@1 |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (name, sums, n) in tally.rows() {
        let cells: Vec<String> = sums.iter().map(|s| pct(*s, n as f64)).collect();
        table.push_str(&format!("| {name} | {n} | {} |\n", cells.join(" | ")));
    }
    table.push('\n');
    Ok((table, cosines))
}

/// The fusion settings tried: hit@1 / hit@5 for all questions, the questions about one
/// named movie, and the reverse ones (name + year → film).
fn fusion_table(
    retriever: &Retriever,
    passages: &PassageIndex,
    questions: &[Question],
) -> anyhow::Result<String> {
    let mut settings = vec![];
    for w in [1.0, 2.0, 3.0] {
        settings.push(Fusion::Rrf { lexical_weight: w });
    }
    for dense_weight in [0.3, 0.4, 0.5] {
        settings.push(Fusion::Convex {
            dense_weight,
            title_weight: 0.0,
            field_weight: 0.0,
        });
    }
    for (dense_weight, title_weight) in [(0.3, 0.2), (0.4, 0.1), (0.4, 0.2)] {
        for field_weight in [0.1, 0.2, 0.3, 0.4] {
            settings.push(Fusion::Convex {
                dense_weight,
                title_weight,
                field_weight,
            });
        }
    }
    let none = HashSet::new();
    let progress = bar(questions.len(), "fusion settings");
    let mut sums = vec![[[0usize; 3]; 3]; settings.len()];
    let mut counts = [0usize; 3];
    for q in questions {
        let group = match q.kind {
            Kind::DirectorYearToMovie | Kind::ActorYearToMovie => 2,
            _ => 1,
        };
        counts[0] += 1;
        counts[group] += 1;
        let embedding = retriever.embedder().embed_query(&q.text)?;
        for (s, fusion) in settings.iter().enumerate() {
            let hits = passages.search_with(&q.text, &embedding, 5, *fusion, &none)?;
            let first = hits.iter().position(|h| q.movies.contains(&h.movie));
            let answered = first_chunk_answers(passages, &hits, q);
            for g in [0, group] {
                sums[s][g][0] += usize::from(first == Some(0));
                sums[s][g][1] += usize::from(first.is_some());
                sums[s][g][2] += usize::from(answered);
            }
        }
        progress.inc(1);
    }
    progress.finish();
    let mut table = String::from(
        "### Fusion settings (training questions): hit@1 / hit@5 / answer@1, %\n\n\
         answer@1: the best chunk holds one of the answers (what the reader needs).\n\n\
         | fusion | all @1 | all @5 | all answer@1 | one movie @1 | @5 | answer@1 | \
         name + year → film @1 | @5 | answer@1 |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (fusion, s) in settings.iter().zip(&sums) {
        let cells: Vec<String> = (0..3)
            .flat_map(|g| (0..3).map(move |k| (g, k)))
            .map(|(g, k)| pct(s[g][k] as f64, counts[g] as f64))
            .collect();
        table.push_str(&format!("| {fusion:?} | {} |\n", cells.join(" | ")));
    }
    table.push('\n');
    Ok(table)
}

/// "I don't know" below a cosine threshold: for each threshold, its precision (of the
/// questions it refused, the share whose movie was absent) and recall (of the questions
/// whose movie was absent, the share refused), and the share of answerable questions it
/// wrongly refused.
fn threshold_table(cosines: &[(f32, f32)]) -> String {
    let n = cosines.len() as f64;
    let mut table = String::from(
        "### \"I don't know\": the passages' best cosine below a threshold\n\n\
         Each held-out question twice: as asked (answerable) and with its movies removed from \
         the catalogue (should be \"I don't know\").\n\n\
         | threshold | precision | recall | answerable refused, % | accuracy, % |\n\
         |---:|---:|---:|---:|---:|\n",
    );
    let mut best = (0.0, 0.0f32);
    for step in 0..=20 {
        let t = 0.2 + 0.025 * step as f32;
        let refused_ok = cosines.iter().filter(|(_, absent)| *absent < t).count() as f64;
        let refused_bad = cosines.iter().filter(|(present, _)| *present < t).count() as f64;
        let precision = pct(refused_ok, refused_ok + refused_bad);
        let accuracy = (refused_ok + n - refused_bad) / (2.0 * n);
        if accuracy > best.0 {
            best = (accuracy, t);
        }
        table.push_str(&format!(
            "| {t:.3} | {precision} | {} | {} | {:.1} |\n",
            pct(refused_ok, n),
            pct(refused_bad, n),
            100.0 * accuracy
        ));
    }
    table.push_str(&format!(
        "\nBest accuracy at {:.3} ({:.1} %).\n\n",
        best.1,
        100.0 * best.0
    ));
    table
}

/// Whether an answer is the job's "I don't know" (said by the threshold or by the reader).
fn is_unknown(answer: &str) -> bool {
    answer.trim().to_lowercase().starts_with("i don't know")
}

/// The answer the Ask job gives `q`, with `context`, the relevance threshold
/// `min_relevance` and, when `absent`, the question's movies left out of the catalogue.
fn answer(
    passages: &PassageIndex,
    retriever: &Retriever,
    generator: &mut marquee::generate::Generator,
    q: &Question,
    context: Context,
    min_relevance: f32,
    absent: bool,
) -> anyhow::Result<String> {
    let request = AskRequest {
        question: q.text.clone(),
        context,
        min_relevance,
        ..AskRequest::default()
    };
    let exclude: HashSet<usize> = if absent {
        q.movies.iter().copied().collect()
    } else {
        HashSet::new()
    };
    let job = marquee::task::ask::start(
        passages,
        retriever.embedder(),
        Some(generator),
        &request,
        &exclude,
        |_| {},
    )?;
    if job.unknown {
        return Ok(UNKNOWN.to_string());
    }
    let run = job.run.context("the ask job started without generating")?;
    Ok(run
        .to_end(generator, |_: &RunEvent| ControlFlow::Continue(()))?
        .text)
}

/// EM and F1 per kind for each generator × {no retrieval, retrieval}; how often each
/// generator says "I don't know" to answerable questions, and to the same questions about
/// movies the catalogue lacks.
fn answers_table(
    args: &AskEvalArgs,
    retriever: &Retriever,
    passages: &PassageIndex,
    questions: &[Question],
) -> anyhow::Result<String> {
    if questions.is_empty() {
        return Ok(String::new());
    }
    let mut columns: Vec<String> = Vec::new();
    let mut tally = Tally::default();
    let mut per_question: Vec<Vec<f64>> = vec![Vec::new(); questions.len()];
    let mut samples: Vec<String> = Vec::new();
    let models = super::models(&args.models, || {
        vec![
            ("base".into(), AdapterChoice::None),
            (
                "reader".into(),
                AdapterChoice::File(paths::committed_ask_adapter()),
            ),
        ]
    })?;
    for (name, choice) in models {
        let mut generator = crate::ask::load_reader(args.generator.clone(), Some(choice))?;
        for (context, label) in [
            (Context::None, "no retrieval"),
            (Context::Retrieved, "retrieval"),
        ] {
            columns.push(format!("{name}, {label}: EM | {name}, {label}: F1"));
            let progress = bar(questions.len(), &format!("{name}, {label}"));
            for (i, q) in questions.iter().enumerate() {
                // Every question is answered: the threshold is measured on its own.
                let answer = answer(passages, retriever, &mut generator, q, context, -1.0, false)?;
                let (em, f1) = (
                    exact_match(&answer, &q.answers),
                    token_f1(&answer, &q.answers),
                );
                per_question[i].extend([em, f1]);
                if context == Context::Retrieved {
                    per_question[i].push(f64::from(u8::from(is_unknown(&answer))));
                }
                if i < 12 {
                    samples.push(format!(
                        "| {name}, {label} | {} | {} | {} |",
                        q.text.replace('|', "/"),
                        answer.replace('|', "/"),
                        q.answers.join("; ").replace('|', "/")
                    ));
                }
                progress.inc(1);
            }
            progress.finish();
        }
        // The same questions about movies the catalogue lacks, as the page answers them
        // (the shipped threshold, then the reader).
        columns.push(format!(
            "{name}: answerable refused, % | {name}: missing movie → \"I don't know\", %"
        ));
        let progress = bar(questions.len(), &format!("{name}, missing movies"));
        for (i, q) in questions.iter().enumerate() {
            let threshold = AskRequest::default().min_relevance;
            let answer = answer(
                passages,
                retriever,
                &mut generator,
                q,
                Context::Retrieved,
                threshold,
                true,
            )?;
            per_question[i].push(f64::from(u8::from(is_unknown(&answer))));
            progress.inc(1);
        }
        progress.finish();
    }
    for (q, values) in questions.iter().zip(&per_question) {
        tally.add(q.kind, values);
    }
    let mut header = String::from("| kind | questions |");
    let mut rule = String::from("|---|---:|");
    for c in &columns {
        header.push_str(&format!(" {c} |"));
        rule.push_str(&"---:|".repeat(c.matches(" | ").count() + 1));
    }
    let mut table = format!(
        "### Answers (first {} held-out questions): exact match / token F1, %\n\n{header}\n{rule}\n",
        questions.len()
    );
    for (name, sums, n) in tally.rows() {
        let cells: Vec<String> = sums.iter().map(|s| pct(*s, n as f64)).collect();
        table.push_str(&format!("| {name} | {n} | {} |\n", cells.join(" | ")));
    }
    table.push_str(
        "\nSample answers:\n\n| generator | question | answer | answer set |\n|---|---|---|---|\n",
    );
    table.push_str(&samples.join("\n"));
    table.push_str("\n\n");
    Ok(table)
}
