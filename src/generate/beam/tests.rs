//! The search on fake models (probability tables, hashed logits), and its keys and values
//! on the committed tiny GPT-2 against decoding each hypothesis alone.

use super::kv::{ModelScorer, NodeCache};
use super::search::{Beams, Finished, Progress, Scorer, Tree};
use super::BeamParams;
use crate::error::Result;
use crate::generate::{Generator, Gpt2, StopReason};

const END: u32 = 0;

/// Next-token probabilities per generated path.
type Table = Vec<(Vec<u32>, Vec<(u32, f64)>)>;

/// A model given as next-token probabilities per path (unlisted tokens get a negligible
/// logit), or as hashed logits; token `END` ends a hypothesis, `newline` ends it by rule
/// once some other token came before it.
struct Fake {
    vocab: usize,
    table: Table,
    hashed: Option<u64>,
    newline: Option<u32>,
    passes: usize,
}

impl Fake {
    fn table(vocab: usize, table: Table) -> Self {
        Self {
            vocab,
            table,
            hashed: None,
            newline: None,
            passes: 0,
        }
    }

    /// Logits from a hash of the path: a different, reproducible distribution everywhere.
    fn hashed(vocab: usize, seed: u64) -> Self {
        Self {
            hashed: Some(seed),
            ..Self::table(vocab, Vec::new())
        }
    }

    fn logits_of(&self, path: &[u32]) -> Vec<f32> {
        if let Some(seed) = self.hashed {
            let mut h = seed ^ 0x9e37_79b9_7f4a_7c15;
            for &t in path {
                h = (h ^ t as u64).wrapping_mul(0x0100_0000_01b3);
            }
            return (0..self.vocab as u64)
                .map(|t| {
                    let x = (h ^ t).wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
                    // A coarse grid (multiples of 1/4), so exact ties happen too.
                    (x % 24) as f32 / 4.0
                })
                .collect();
        }
        let mut logits = vec![-30f32; self.vocab];
        if let Some((_, probabilities)) = self.table.iter().find(|(p, _)| p == path) {
            for &(token, p) in probabilities {
                logits[token as usize] = p.ln() as f32;
            }
        }
        logits
    }
}

impl Scorer for Fake {
    fn logits(&mut self, tree: &Tree, node: usize) -> Result<Vec<f32>> {
        self.passes += 1;
        Ok(self.logits_of(&tree.tokens(node)))
    }

    fn ending(&self, tokens: &[u32]) -> Result<Option<StopReason>> {
        Ok(match tokens.last() {
            Some(&END) => Some(StopReason::EndOfText),
            Some(&t) if Some(t) == self.newline && tokens.len() > 1 => Some(StopReason::EndOfLine),
            _ => None,
        })
    }

    fn retain(&mut self, _needed: &[bool]) {}
}

/// Runs a search to the end; checks on the way that the certain tokens only ever grow and
/// that the result starts with them.
fn search(scorer: &mut impl Scorer, params: BeamParams) -> Finished {
    let mut beams = Beams::new(params);
    let mut certain: Vec<u32> = Vec::new();
    loop {
        match beams.advance(scorer).expect("advances") {
            Progress::Expanded => {}
            Progress::Round => {
                let now = beams.certain();
                assert!(now.starts_with(&certain), "{certain:?} then {now:?}");
                certain = now;
            }
            Progress::Done => break,
        }
    }
    let best = beams.best().expect("a result").clone();
    assert!(best.tokens.starts_with(&certain), "{certain:?}, {best:?}");
    best
}

/// The likeliest token each time (the lowest id among equals), as greedy decoding picks.
fn greedy(fake: &Fake, max_tokens: usize) -> (Vec<u32>, StopReason) {
    let mut tokens = Vec::new();
    while tokens.len() < max_tokens {
        let logits = fake.logits_of(&tokens);
        let mut best = 0;
        for (t, &l) in logits.iter().enumerate() {
            if l > logits[best] {
                best = t;
            }
        }
        tokens.push(best as u32);
        match fake.ending(&tokens).expect("ending") {
            Some(StopReason::EndOfText) => {
                tokens.pop();
                return (tokens, StopReason::EndOfText);
            }
            Some(reason) => return (tokens, reason),
            None => {}
        }
    }
    (tokens, StopReason::MaxTokens)
}

fn params(width: usize, max_tokens: usize) -> BeamParams {
    BeamParams {
        width,
        length_penalty: 1.0,
        no_repeat_ngram: 0,
        max_tokens,
    }
}

#[test]
fn the_beam_finds_a_better_scoring_tagline_than_greedy_and_stops_when_nothing_can_beat_it() {
    // A (0.55) leads to a poor continuation; B (0.45) is followed by a confident end.
    let (a, b, c, d) = (1, 2, 3, 4);
    let table = vec![
        (vec![], vec![(a, 0.55), (b, 0.45)]),
        (vec![a], vec![(c, 0.4), (END, 0.3), (d, 0.3)]),
        (vec![b], vec![(END, 0.95), (c, 0.05)]),
        (vec![a, c], vec![(END, 0.6), (d, 0.4)]),
    ];
    let mut greedy_fake = Fake::table(6, table.clone());
    let greedy = search(&mut greedy_fake, params(1, 8));
    assert_eq!(
        (greedy.tokens.as_slice(), greedy.stop),
        (&[a, c][..], StopReason::EndOfText)
    );
    let expected = (0.55f64.ln() + 0.4f64.ln() + 0.6f64.ln()) / 3.0;
    assert!((greedy.score - expected).abs() < 1e-6, "{}", greedy.score);

    let mut fake = Fake::table(6, table);
    let beam = search(&mut fake, params(2, 8));
    assert_eq!(
        (beam.tokens.as_slice(), beam.stop),
        (&[b][..], StopReason::EndOfText)
    );
    let expected = (0.45f64.ln() + 0.95f64.ln()) / 2.0;
    assert!((beam.score - expected).abs() < 1e-6, "{}", beam.score);
    assert!(beam.score > greedy.score);
    // The prompt, A and B, then A·C, then A·C·D, whose bound (its sum over 8 tokens)
    // falls below B·END's -0.43 per token: 5 passes, not the 15 of running to 8 tokens.
    assert_eq!(fake.passes, 1 + 2 + 1 + 1);

    // With no length normalisation the shorter B wins by its plain sum as well.
    let mut fake = Fake::table(
        6,
        vec![
            (vec![], vec![(a, 0.55), (b, 0.45)]),
            (vec![a], vec![(c, 0.4), (END, 0.3), (d, 0.3)]),
            (vec![b], vec![(END, 0.95), (c, 0.05)]),
        ],
    );
    let plain = search(
        &mut fake,
        BeamParams {
            length_penalty: 0.0,
            ..params(2, 8)
        },
    );
    assert_eq!(plain.tokens, [b]);
    // Unlisted paths are flat, so A·C's sum only falls from -1.51: below B's -0.85 with no
    // normalisation, A·C is dropped at once and the search ends after two rounds.
    assert_eq!(fake.passes, 1 + 2);
}

#[test]
fn width_one_is_greedy_decoding_token_for_token() {
    for seed in 0..40 {
        for max_tokens in [1, 3, 12] {
            let mut fake = Fake::hashed(24, seed);
            fake.newline = Some(5);
            let (tokens, stop) = greedy(&fake, max_tokens);
            let found = search(&mut fake, params(1, max_tokens));
            assert_eq!((found.tokens, found.stop), (tokens, stop), "seed {seed}");
        }
    }
}

#[test]
fn ties_go_to_the_earlier_hypothesis_then_the_lower_token() {
    // Tokens 1 to 7 equally likely everywhere (END nearly impossible): every sum ties with
    // the same bits, so the order alone decides.
    let flat: Vec<(u32, f64)> = (1..8).map(|t| (t, 1.0 / 7.0)).collect();
    let paths: [&[u32]; 5] = [&[], &[1], &[2], &[1, 1], &[1, 2]];
    let table = || paths.iter().map(|p| (p.to_vec(), flat.clone())).collect();
    let mut fake = Fake::table(8, table());
    let mut beams = Beams::new(params(2, 3));
    assert_eq!(beams.advance(&mut fake).expect("prefill"), Progress::Round);
    assert_eq!(beams.certain(), Vec::<u32>::new(), "[1] and [2]");
    assert_eq!(beams.advance(&mut fake).expect("[1]"), Progress::Expanded);
    assert_eq!(beams.advance(&mut fake).expect("[2]"), Progress::Round);
    assert_eq!(
        beams.certain(),
        vec![1],
        "[1, 1] and [1, 2]: the earlier hypothesis's"
    );
    let result = search(&mut Fake::table(8, table()), params(2, 3));
    assert_eq!(
        (result.tokens, result.stop),
        (vec![1, 1, 1], StopReason::MaxTokens)
    );
}

#[test]
fn a_search_is_deterministic_and_within_its_pass_budget() {
    for seed in 0..20 {
        let run = |seed| {
            let mut fake = Fake::hashed(32, seed);
            fake.newline = Some(3);
            let result = search(&mut fake, params(4, 10));
            (result, fake.passes)
        };
        let (first, passes) = run(seed);
        assert_eq!(run(seed), (first.clone(), passes));
        assert!(passes <= 1 + 4 * 9, "{passes} passes");
        assert!(first.tokens.len() <= 10);
    }
}

#[test]
fn no_hypothesis_repeats_an_ngram_when_told_not_to() {
    for seed in 0..20 {
        for n in [1, 2, 3] {
            let mut fake = Fake::hashed(12, seed);
            let result = search(
                &mut fake,
                BeamParams {
                    no_repeat_ngram: n,
                    ..params(3, 10)
                },
            );
            let grams: Vec<&[u32]> = result.tokens.windows(n).collect();
            for (i, gram) in grams.iter().enumerate() {
                assert!(!grams[i + 1..].contains(gram), "{n}: {:?}", result.tokens);
            }
        }
    }
}

#[test]
fn no_tokens_to_generate_runs_nothing() {
    let mut fake = Fake::hashed(8, 1);
    let mut beams = Beams::new(params(3, 0));
    assert_eq!(beams.advance(&mut fake).expect("done"), Progress::Done);
    assert_eq!(fake.passes, 0);
    assert_eq!(beams.best().map(|b| b.stop), Some(StopReason::MaxTokens));
}

#[test]
fn the_length_penalty_and_width_are_checked() {
    assert!(params(0, 4).validate().is_err());
    for penalty in [-0.5, f64::NAN, f64::INFINITY] {
        let p = BeamParams {
            length_penalty: penalty,
            ..params(2, 4)
        };
        assert!(p.validate().is_err(), "{penalty}");
    }
    assert!(params(1, 0).validate().is_ok());
}

const MODEL: &[u8] = include_bytes!("../../../tests/fixtures/gpt2_tiny/model.safetensors");
const CONFIG: &[u8] = include_bytes!("../../../tests/fixtures/gpt2_tiny/config.json");

/// The tiny GPT-2 with its 512 ids as words (as `tests/task_run.rs`).
fn tiny_gpt2() -> Generator {
    let vocab: serde_json::Map<String, serde_json::Value> = (0..512u32)
        .map(|id| (format!("w{id}"), id.into()))
        .collect();
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": { "type": "Whitespace" },
        "post_processor": null, "decoder": null,
        "model": { "type": "WordLevel", "vocab": vocab, "unk_token": "w1" }
    });
    let tokenizer = json.to_string().parse().expect("tokenizer");
    Generator::gpt2(
        Gpt2::from_safetensors(MODEL, CONFIG).expect("loads"),
        tokenizer,
    )
}

/// The generator's scorer, checked at every pass against `reference` decoding the same
/// hypothesis alone: the prompt, then its tokens one at a time.
struct Checked<'a> {
    inner: ModelScorer<'a>,
    reference: &'a mut Generator,
    prompt: Vec<u32>,
    passes: usize,
    /// Passes whose hypothesis did not continue the one before (its keys and values swapped in).
    switches: usize,
    last: usize,
}

impl Scorer for Checked<'_> {
    fn logits(&mut self, tree: &Tree, node: usize) -> Result<Vec<f32>> {
        if tree.node(node).parent != self.last {
            self.switches += 1;
        }
        self.last = node;
        let ours = self.inner.logits(tree, node)?;
        self.reference.forget_cache();
        let mut logits = self.reference.run(&self.prompt, 0)?;
        for (i, &token) in tree.tokens(node).iter().enumerate() {
            logits = self.reference.run(&[token], self.prompt.len() + i)?;
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&ours), bits(&logits.to_vec1::<f32>()?), "node {node}");
        self.passes += 1;
        Ok(ours)
    }

    fn ending(&self, tokens: &[u32]) -> Result<Option<StopReason>> {
        self.inner.ending(tokens)
    }

    fn retain(&mut self, needed: &[bool]) {
        self.inner.retain(needed);
    }
}

#[test]
fn each_hypothesis_sees_the_keys_and_values_of_decoding_it_alone() {
    let (mut generator, mut reference) = (tiny_gpt2(), tiny_gpt2());
    let prompt = vec![5u32, 7, 11, 13];
    let params = params(3, 12);
    let (_, reuse) = generator.begin(&prompt, params.max_tokens).expect("begins");
    let mut cache = NodeCache::new(&prompt, reuse);
    let ends = |_: &str| false;
    let mut checked = Checked {
        inner: ModelScorer {
            generator: &mut generator,
            cache: &mut cache,
            ends: &ends,
        },
        reference: &mut reference,
        prompt,
        passes: 0,
        switches: 0,
        last: 0,
    };
    let result = search(&mut checked, params);
    assert_eq!(result.tokens.len(), 12);
    assert_eq!(
        checked.passes,
        1 + 3 * 11,
        "every round runs three hypotheses"
    );
    assert!(checked.switches > 11, "{} swaps", checked.switches);
}
