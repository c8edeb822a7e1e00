//! Tagline quality metrics, written to agree with the usual Python implementations so the
//! numbers mean what readers expect (checked in tests/eval_metrics.rs against both):
//! - ROUGE-L F1 as Google's `rouge-score` computes it (lowercase, alphanumeric tokens, LCS);
//! - corpus BLEU as `sacrebleu` computes it by default (13a tokenization, 4-grams, exp
//!   smoothing, brevity penalty), on a 0-100 scale;
//! - distinct-2, mean length, how often a generation copies an example's tagline, and
//!   whether it is tagline-shaped (one line of at most 15 words);
//! - a paired bootstrap confidence interval for the mean of per-item differences (Koehn
//!   2004), for comparing two conditions on the same movies.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use regex::Regex;

/// rouge-score's default tokenizer: lowercase, anything but [a-z0-9] separates tokens.
fn rouge_tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

fn lcs(a: &[String], b: &[String]) -> usize {
    let mut previous = vec![0usize; b.len() + 1];
    for x in a {
        let mut current = vec![0usize; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            current[j + 1] = if x == y {
                previous[j] + 1
            } else {
                current[j].max(previous[j + 1])
            };
        }
        previous = current;
    }
    previous[b.len()]
}

/// ROUGE-L F1 of one candidate against one reference, in [0, 1].
pub fn rouge_l_f1(candidate: &str, reference: &str) -> f64 {
    let (c, r) = (rouge_tokens(candidate), rouge_tokens(reference));
    if c.is_empty() || r.is_empty() {
        return 0.0;
    }
    let common = lcs(&c, &r) as f64;
    if common == 0.0 {
        return 0.0;
    }
    let (precision, recall) = (common / c.len() as f64, common / r.len() as f64);
    2.0 * precision * recall / (precision + recall)
}

/// sacrebleu's "13a" tokenizer (mteval-v13a.pl's rules for Western languages).
pub fn tokenize_13a(text: &str) -> Vec<String> {
    static RULES: OnceLock<[(Regex, &str); 4]> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        let re = |p: &str| Regex::new(p).expect("13a patterns are valid");
        [
            (re(r"([\{-~\[-` -&\(-\+:-@/])"), " $1 "),
            (re(r"([^0-9])([\.,])"), "$1 $2 "),
            (re(r"([\.,])([^0-9])"), " $1 $2"),
            (re(r"([0-9])(-)"), "$1 $2 "),
        ]
    });
    let mut line = text
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let mut line = format!(" {line} ");
    for (pattern, replacement) in rules {
        line = pattern.replace_all(&line, *replacement).into_owned();
    }
    line.split_whitespace().map(str::to_string).collect()
}

fn ngram_counts(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    for gram in tokens.windows(n) {
        *counts.entry(gram).or_insert(0) += 1;
    }
    counts
}

/// Corpus BLEU (0-100) of candidates against one reference each, as `sacrebleu.corpus_bleu`
/// computes it with its defaults.
pub fn corpus_bleu(candidates: &[String], references: &[String]) -> f64 {
    let (mut correct, mut total) = ([0usize; 4], [0usize; 4]);
    let (mut candidate_len, mut reference_len) = (0usize, 0usize);
    for (candidate, reference) in candidates.iter().zip(references) {
        let (c, r) = (tokenize_13a(candidate), tokenize_13a(reference));
        candidate_len += c.len();
        reference_len += r.len();
        for n in 1..=4 {
            let reference_counts = ngram_counts(&r, n);
            for (gram, count) in ngram_counts(&c, n) {
                correct[n - 1] += count.min(reference_counts.get(gram).copied().unwrap_or(0));
            }
            total[n - 1] += c.len().saturating_sub(n - 1);
        }
    }
    if candidate_len == 0 {
        return 0.0;
    }
    // sacrebleu's "exp" smoothing: each n-gram order with no match counts as 1/2^k matches.
    let mut smooth = 1.0;
    let mut log_sum = 0.0;
    for n in 0..4 {
        if total[n] == 0 {
            return 0.0;
        }
        let precision = if correct[n] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * total[n] as f64)
        } else {
            100.0 * correct[n] as f64 / total[n] as f64
        };
        log_sum += precision.ln();
    }
    let brevity = if candidate_len < reference_len {
        (1.0 - reference_len as f64 / candidate_len as f64).exp()
    } else {
        1.0
    };
    brevity * (log_sum / 4.0).exp()
}

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Distinct bigrams over all bigrams of all texts (lowercased words), in [0, 1].
pub fn distinct_2(texts: &[String]) -> f64 {
    let mut seen = HashSet::new();
    let mut total = 0usize;
    for text in texts {
        for pair in words(text).windows(2) {
            seen.insert(pair.to_vec());
            total += 1;
        }
    }
    if total == 0 {
        0.0
    } else {
        seen.len() as f64 / total as f64
    }
}

/// Mean length in words.
pub fn mean_words(texts: &[String]) -> f64 {
    if texts.is_empty() {
        return 0.0;
    }
    texts.iter().map(|t| words(t).len()).sum::<usize>() as f64 / texts.len() as f64
}

/// Whether `generated` repeats one of `examples` (ignoring case, punctuation and spacing).
pub fn copies_an_example(generated: &str, examples: &[&str]) -> bool {
    let key = |s: &str| rouge_tokens(s).join(" ");
    let generated = key(generated);
    !generated.is_empty() && examples.iter().any(|e| key(e) == generated)
}

/// Whether `text` is one non-empty line of at most `max_words` words.
pub fn is_one_short_line(text: &str, max_words: usize) -> bool {
    let text = text.trim();
    !text.is_empty() && !text.contains('\n') && words(text).len() <= max_words
}

/// A mean and its 95 % confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

impl Interval {
    /// Whether the interval lies wholly on one side of zero.
    pub fn excludes_zero(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// The paired bootstrap: `differences` (one per item, condition A − condition B on the same
/// item) resampled with replacement `resamples` times (seeded: the same call, the same
/// interval); the 2.5th and 97.5th percentiles of the resampled means.
pub fn paired_bootstrap(differences: &[f64], resamples: usize, seed: u64) -> Interval {
    let n = differences.len();
    let mean = differences.iter().sum::<f64>() / n.max(1) as f64;
    if n == 0 || resamples == 0 {
        return Interval {
            mean,
            low: mean,
            high: mean,
        };
    }
    // splitmix64: small, seeded, and the same on every machine.
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| {
            let sum: f64 = (0..n)
                .map(|_| differences[(next() % n as u64) as usize])
                .sum();
            sum / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (resamples - 1) as f64).round() as usize).min(resamples - 1)];
    Interval {
        mean,
        low: at(0.025),
        high: at(0.975),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rouge_l_known_values() {
        assert_eq!(rouge_l_f1("the cat sat", "the cat sat"), 1.0);
        assert_eq!(rouge_l_f1("", "x"), 0.0);
        // LCS "the cat" = 2 of 3 and 2 of 4: F1 = 2·(2/3)(2/4)/((2/3)+(2/4)) = 4/7.
        assert!((rouge_l_f1("The cat ran", "the big cat sat") - 4.0 / 7.0).abs() < 1e-12);
    }

    #[test]
    fn tokenize_13a_splits_punctuation_but_not_numbers() {
        assert_eq!(
            tokenize_13a("Hello, world! 3.14 and 1,000-fold."),
            ["Hello", ",", "world", "!", "3.14", "and", "1,000", "-", "fold", "."]
        );
    }

    #[test]
    fn distinct_and_copies() {
        let texts = vec!["a b a b".to_string()];
        assert!((distinct_2(&texts) - 2.0 / 3.0).abs() < 1e-12);
        assert!(copies_an_example(
            "Don't go in the water!",
            &["don't go in the WATER"]
        ));
        assert!(!copies_an_example(
            "Stay out of the water",
            &["Don't go in the water."]
        ));
    }

    #[test]
    fn one_short_line() {
        assert!(is_one_short_line(
            "  In space no one can hear you scream. ",
            15
        ));
        assert!(!is_one_short_line("", 15));
        assert!(!is_one_short_line("one\ntwo", 15));
        assert!(!is_one_short_line(&"word ".repeat(16), 15));
    }

    #[test]
    fn the_bootstrap_interval_covers_the_mean_and_tells_a_real_difference() {
        // A clear shift: every difference near 1.
        let shifted: Vec<f64> = (0..300)
            .map(|i| 1.0 + ((i % 7) as f64 - 3.0) * 0.1)
            .collect();
        let ci = paired_bootstrap(&shifted, 2000, 1);
        assert!(ci.low <= ci.mean && ci.mean <= ci.high);
        assert!(ci.excludes_zero() && ci.low > 0.9, "{ci:?}");
        // Noise around zero: the interval straddles it.
        let noise: Vec<f64> = (0..300)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let ci = paired_bootstrap(&noise, 2000, 1);
        assert!(!ci.excludes_zero(), "{ci:?}");
        // Seeded: the same call, the same interval.
        assert_eq!(
            paired_bootstrap(&noise, 500, 9),
            paired_bootstrap(&noise, 500, 9)
        );
        // The interval's half-width is about 1.96 standard errors (sd 1, n 300: 0.113).
        assert!(
            (ci.high - ci.low) / 2.0 > 0.09 && (ci.high - ci.low) / 2.0 < 0.14,
            "{ci:?}"
        );
    }
}
