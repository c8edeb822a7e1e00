//! The evaluation's scores and its markdown tables.

use marquee::eval::{
    corpus_bleu, distinct_2, is_one_short_line, mean_words, paired_bootstrap, rouge_l_f1, Interval,
};
use marquee::retriever::Retriever;

/// A tagline is "tagline-shaped" as one line of at most this many words (real ones: 8 on
/// average).
const MAX_TAGLINE_WORDS: usize = 15;

/// One decoding's tagline for each held-out movie.
#[derive(Clone)]
pub struct Output {
    /// "beam" or "sample 3".
    pub how: String,
    pub texts: Vec<String>,
    /// How many copy one of their prompt's example taglines.
    pub copies: usize,
}

impl Output {
    fn new(how: String) -> Self {
        Self {
            how,
            texts: Vec::new(),
            copies: 0,
        }
    }
}

/// One generator under one prompt condition, over the held-out movies.
pub struct Cell {
    pub model: String,
    pub condition: String,
    /// Per movie: mean negative log-likelihood per token of the real tagline (and its end).
    pub nll: Vec<f64>,
    /// The beam search's taglines first (if any), then each sample's.
    pub outputs: Vec<Output>,
    pub prompt_tokens: usize,
}

impl Cell {
    pub fn new(model: &str, condition: &str, samples: usize, beam: bool) -> Self {
        let beam = beam.then(|| Output::new("beam".into()));
        let samples = (0..samples).map(|s| Output::new(format!("sample {}", s + 1)));
        Self {
            model: model.to_string(),
            condition: condition.to_string(),
            nll: Vec::new(),
            outputs: beam.into_iter().chain(samples).collect(),
            prompt_tokens: 0,
        }
    }

    pub fn name(&self) -> String {
        format!("{}, {}", self.model, self.condition)
    }
}

fn mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, n) = values
        .into_iter()
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

fn interval(ci: Interval) -> String {
    format!(
        "{:+.4} [{:+.4}, {:+.4}]{}",
        ci.mean,
        ci.low,
        ci.high,
        if ci.excludes_zero() { "" } else { " (n.s.)" }
    )
}

/// MiniLM cosine of each generated tagline with the real one (0 for an empty generation).
fn cosines(
    retriever: &Retriever,
    generated: &[String],
    real: &[Vec<f32>],
) -> anyhow::Result<Vec<f64>> {
    generated
        .iter()
        .zip(real)
        .map(|(g, r)| {
            if g.trim().is_empty() {
                return Ok(0.0);
            }
            let e = retriever.embedder().embed_query(g)?;
            Ok(e.iter().zip(r).map(|(a, b)| *a as f64 * *b as f64).sum())
        })
        .collect()
}

/// The likelihood table, the paired intervals, and the generation table.
pub fn report(
    cells: &[Cell],
    references: &[String],
    retriever: &Retriever,
    resamples: usize,
    seed: u64,
) -> anyhow::Result<String> {
    let mut out = String::from(
        "Teacher-forced negative log-likelihood per token of the real tagline (lower is better):\n\n\
         | generator | examples in the prompt | NLL / token | mean prompt tokens |\n|---|---|---|---|\n",
    );
    for c in cells {
        out.push_str(&format!(
            "| {} | {} | {:.4} | {:.0} |\n",
            c.model,
            c.condition,
            mean(c.nll.iter().copied()),
            c.prompt_tokens as f64 / c.nll.len().max(1) as f64
        ));
    }
    out.push_str(
        "\nPaired differences in NLL / token on the same movies, mean [95 % bootstrap CI] \
         (negative: retrieved examples make the real tagline likelier):\n\n\
         | generator | retrieved − none | retrieved − random |\n|---|---|---|\n",
    );
    let mut models: Vec<&str> = cells.iter().map(|c| c.model.as_str()).collect();
    models.dedup();
    for model in &models {
        let find = |condition: &str| {
            cells
                .iter()
                .find(|c| c.model == *model && c.condition == condition)
        };
        let Some(retrieved) = find("retrieved examples") else {
            continue;
        };
        let diff = |other: Option<&Cell>| {
            other.map_or_else(
                || "–".to_string(),
                |o| {
                    let d: Vec<f64> = retrieved
                        .nll
                        .iter()
                        .zip(&o.nll)
                        .map(|(a, b)| a - b)
                        .collect();
                    interval(paired_bootstrap(&d, resamples, seed))
                },
            )
        };
        out.push_str(&format!(
            "| {model} | {} | {} |\n",
            diff(find("no examples")),
            diff(find("random examples"))
        ));
    }
    if cells.iter().all(|c| c.outputs.is_empty()) {
        return Ok(out);
    }
    // Generated for the first movies only (eval --generate): scored against theirs.
    let generated = cells
        .iter()
        .flat_map(|c| c.outputs.iter().map(|o| o.texts.len()))
        .max()
        .unwrap_or(0);
    let references = &references[..generated.min(references.len())];
    let real: Vec<Vec<f32>> = references
        .iter()
        .map(|r| retriever.embedder().embed_query(r))
        .collect::<Result<_, _>>()?;
    out.push_str(&format!(
        "\nGenerated taglines against the real ones (sampled: means over the samples):\n\n\
         | generator | examples in the prompt | decoding | ROUGE-L F1 | BLEU | MiniLM cosine | mean words | one line of ≤ {MAX_TAGLINE_WORDS} words | copies an example | distinct-2 |\n\
         |---|---|---|---|---|---|---|---|---|---|\n"
    ));
    for c in cells {
        let (beam, sampled): (Vec<&Output>, Vec<&Output>) =
            c.outputs.iter().partition(|o| o.how == "beam");
        for (how, runs) in [("beam", beam), ("sampled", sampled)] {
            if runs.is_empty() {
                continue;
            }
            out.push_str(&format!(
                "| {} | {} | {how} | {} |\n",
                c.model,
                c.condition,
                generation_row(&runs, references, retriever, &real)?
            ));
        }
    }
    out.push_str(&format!(
        "| real taglines | | | 1.0000 | 100.00 | 1.000 | {:.1} | {:.1} % | | {:.3} |\n",
        mean_words(references),
        100.0
            * references
                .iter()
                .filter(|t| is_one_short_line(t, MAX_TAGLINE_WORDS))
                .count() as f64
            / references.len().max(1) as f64,
        distinct_2(references)
    ));
    Ok(out)
}

/// ROUGE-L, BLEU, cosine, words, one-line share, copies and distinct-2 of `runs` (each a
/// tagline per movie), averaged over the runs.
fn generation_row(
    runs: &[&Output],
    references: &[String],
    retriever: &Retriever,
    real: &[Vec<f32>],
) -> anyhow::Result<String> {
    let mut cosine = Vec::new();
    for run in runs {
        cosine.push(mean(cosines(retriever, &run.texts, real)?));
    }
    let all: Vec<&String> = runs.iter().flat_map(|r| &r.texts).collect();
    let n = all.len().max(1) as f64;
    let copies: usize = runs.iter().map(|r| r.copies).sum();
    Ok(format!(
        "{:.4} | {:.2} | {:.3} | {:.1} | {:.1} % | {:.1} % | {:.3}",
        mean(runs.iter().map(|r| {
            mean(
                r.texts
                    .iter()
                    .zip(references)
                    .map(|(g, r)| rouge_l_f1(g, r)),
            )
        })),
        mean(runs.iter().map(|r| corpus_bleu(&r.texts, references))),
        mean(cosine),
        mean(runs.iter().map(|r| mean_words(&r.texts))),
        100.0
            * all
                .iter()
                .filter(|t| is_one_short_line(t, MAX_TAGLINE_WORDS))
                .count() as f64
            / n,
        100.0 * copies as f64 / n,
        mean(runs.iter().map(|r| distinct_2(&r.texts))),
    ))
}
