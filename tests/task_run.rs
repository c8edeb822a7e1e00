//! A task's generation as a state machine, on committed fixtures only (no download): the
//! tiny random GPT-2 of `tests/fixtures/gpt2_tiny` behind a word-level tokenizer made here,
//! a third of whose tokens are line breaks, so the stop rules have something to stop at.
//! `Run` reports `Prefilled` once, then text pieces, then `Done` whose text is what was
//! shown; the first-line rule never shows a line break after text; Stop ends it as
//! `cancelled`; a finished run stays finished. The same of a beam search's run, whose width 1
//! is greedy decoding event for event.

mod common;

use marquee::generate::{BeamParams, Generator, Gpt2, SamplingParams, StopReason};
use marquee::task::{Run, RunEvent, StopRule};
use tokenizers::Tokenizer;

const MODEL: &[u8] = include_bytes!("fixtures/gpt2_tiny/model.safetensors");
const CONFIG: &[u8] = include_bytes!("fixtures/gpt2_tiny/config.json");

/// The fixture model's 512 token ids as words, every third one a line break.
fn generator() -> Generator {
    let vocab: serde_json::Map<String, serde_json::Value> = (0..512u32)
        .map(|id| {
            let word = if id % 3 == 0 {
                format!("\n{id}")
            } else {
                format!("w{id}")
            };
            (word, id.into())
        })
        .collect();
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": { "type": "Whitespace" },
        "post_processor": null,
        "decoder": null,
        "model": { "type": "WordLevel", "vocab": vocab, "unk_token": "w1" }
    });
    let tokenizer: Tokenizer = json.to_string().parse().expect("tokenizer");
    Generator::gpt2(
        Gpt2::from_safetensors(MODEL, CONFIG).expect("loads"),
        tokenizer,
    )
}

#[test]
fn a_run_reports_prefill_then_text_then_done() {
    let mut g = generator();
    let prompt = [5u32, 7, 11, 13];
    for seed in 0..8 {
        let params = SamplingParams {
            temperature: 1.0,
            seed,
            max_tokens: 20,
            ..SamplingParams::default()
        };
        let run = Run::new(
            g.start(&prompt, &params).expect("starts"),
            StopRule::EndOfText,
        );
        let (seen, done) = common::run_to_end(run, &mut g);
        assert!(
            matches!(
                seen.first(),
                Some(RunEvent::Prefilled {
                    prompt_tokens: 4,
                    ..
                })
            ),
            "{seen:?}"
        );
        assert!(matches!(seen.last(), Some(RunEvent::Done(_))), "{seen:?}");
        assert_eq!(
            seen.iter()
                .filter(|e| matches!(e, RunEvent::Prefilled { .. }))
                .count(),
            1
        );
        assert_eq!(done.text, common::shown_text(&seen).trim());
        assert_eq!(
            done.stop,
            StopReason::MaxTokens,
            "no end token in this vocabulary"
        );
        assert_eq!(done.tokens.len(), 20);
    }
}

#[test]
fn the_first_line_rule_shows_no_line_break_after_text() {
    let mut g = generator();
    let prompt = [5u32, 7, 11, 13];
    let mut ended_at_a_line = 0;
    for seed in 0..16 {
        let params = SamplingParams {
            temperature: 1.0,
            seed,
            max_tokens: 24,
            ..SamplingParams::default()
        };
        let free = Run::new(
            g.start(&prompt, &params).expect("starts"),
            StopRule::EndOfText,
        );
        let (free_events, _) = common::run_to_end(free, &mut g);
        let run = Run::new(
            g.start(&prompt, &params).expect("starts"),
            StopRule::FirstLine,
        );
        let (seen, done) = common::run_to_end(run, &mut g);
        let shown = common::shown_text(&seen);
        assert!(!shown.trim_start().contains('\n'), "{shown:?}");
        assert_eq!(done.text, shown.trim());
        // The same seed's unruled text, cut at its first line break after some text.
        let full = common::shown_text(&free_events);
        let start = full.len() - full.trim_start().len();
        let first_line = match full[start..].find('\n') {
            Some(end) => {
                ended_at_a_line += 1;
                assert_eq!(done.stop, StopReason::EndOfLine);
                &full[start..start + end]
            }
            None => &full[start..],
        };
        assert_eq!(done.text, first_line.trim(), "seed {seed}");
    }
    assert!(ended_at_a_line > 0, "no sample had a second line");
}

#[test]
fn stop_ends_a_run_as_cancelled_and_a_done_run_stays_done() {
    let mut g = generator();
    let params = SamplingParams {
        max_tokens: 20,
        ..SamplingParams::default()
    };
    let mut run = Run::new(
        g.start(&[5, 7], &params).expect("starts"),
        StopRule::EndOfText,
    );
    assert!(matches!(
        run.step(&mut g).expect("prefill"),
        RunEvent::Prefilled { .. }
    ));
    run.cancel();
    // At most the piece already decoded with the prefill shows; then it is done.
    let mut after = Vec::new();
    let done = loop {
        match run.step(&mut g).expect("steps") {
            RunEvent::Done(done) => break done,
            event => after.push(event),
        }
    };
    assert!(after.len() <= 1, "{after:?}");
    assert_eq!(done.stop, StopReason::Cancelled);
    assert!(done.tokens.len() <= 1);
    assert!(matches!(
        run.step(&mut g).expect("again"),
        RunEvent::Done(_)
    ));
    // A run started before another one on the same generator can no longer step.
    let mut first = Run::new(
        g.start(&[5, 7], &params).expect("starts"),
        StopRule::EndOfText,
    );
    let _second = g.start(&[5, 7], &params).expect("starts");
    assert!(first.step(&mut g).is_err());
}

/// A beam search's run under `rule`.
fn beam(g: &mut Generator, prompt: &[u32], params: BeamParams, rule: StopRule) -> Run {
    let decoder = g
        .start_beam(prompt, &params, Box::new(move |text: &str| rule.ends(text)))
        .expect("starts");
    Run::new(decoder, rule)
}

#[test]
fn beam_width_one_is_greedy_decoding_event_for_event() {
    let mut g = generator();
    let mut ended_at_a_line = 0;
    for (i, rule) in [StopRule::EndOfText, StopRule::FirstLine]
        .into_iter()
        .cycle()
        .take(16)
        .enumerate()
    {
        let prompt = [5u32 + i as u32, 7, 11 * i as u32 % 512, 13];
        let max_tokens = 4 + i;
        let greedy = Run::new(
            g.start(&prompt, &SamplingParams::greedy(max_tokens))
                .expect("starts"),
            rule,
        );
        let (greedy_events, greedy_done) = common::run_to_end(greedy, &mut g);
        let params = BeamParams {
            width: 1,
            length_penalty: 1.0,
            no_repeat_ngram: 0,
            max_tokens,
        };
        let (beam_events, beam_done) =
            common::run_to_end(beam(&mut g, &prompt, params, rule), &mut g);
        assert_eq!(beam_events, greedy_events, "prompt {prompt:?}");
        assert_eq!(beam_done, greedy_done);
        ended_at_a_line += usize::from(beam_done.stop == StopReason::EndOfLine);
    }
    assert!(ended_at_a_line > 0, "no run ended at a line break");
}

#[test]
fn a_beam_run_is_deterministic_and_shows_its_result_piece_by_piece() {
    let mut g = generator();
    for i in 0..6u32 {
        let prompt = [3 + i, 17, 19 * i % 512];
        let params = BeamParams {
            width: 4,
            length_penalty: 1.0,
            no_repeat_ngram: 0,
            max_tokens: 16,
        };
        let (first, done) =
            common::run_to_end(beam(&mut g, &prompt, params, StopRule::FirstLine), &mut g);
        let (again, done_again) =
            common::run_to_end(beam(&mut g, &prompt, params, StopRule::FirstLine), &mut g);
        assert_eq!((&first, &done), (&again, &done_again));
        // The pieces shown are the result: nothing was taken back, nothing added after.
        assert_eq!(done.text, common::shown_text(&first).trim());
        assert!(!done.text.contains('\n'), "{:?}", done.text);
        assert_ne!(done.stop, StopReason::Cancelled);
        assert!(done.tokens.len() <= 16);
        // One model pass per step: the prefill, then at most four per token.
        assert!(first.len() <= 2 + 4 * 16, "{} events", first.len());
    }
}

#[test]
fn stop_ends_a_beam_search_mid_way_with_the_text_shown() {
    let mut g = generator();
    let params = BeamParams {
        width: 4,
        length_penalty: 1.0,
        no_repeat_ngram: 0,
        max_tokens: 24,
    };
    let mut run = beam(&mut g, &[5, 7], params, StopRule::EndOfText);
    let mut seen = Vec::new();
    for _ in 0..9 {
        seen.push(run.step(&mut g).expect("steps"));
    }
    assert!(matches!(seen[0], RunEvent::Prefilled { .. }), "{seen:?}");
    assert!(
        seen.iter().any(|e| matches!(e, RunEvent::Pending)),
        "passes that show nothing return to the caller: {seen:?}"
    );
    run.cancel();
    let done = loop {
        match run.step(&mut g).expect("steps") {
            RunEvent::Done(done) => break done,
            event => seen.push(event),
        }
    };
    assert_eq!(done.stop, StopReason::Cancelled);
    assert_eq!(done.text, common::shown_text(&seen).trim());
    assert!(done.tokens.len() < 24);
    assert!(matches!(
        run.step(&mut g).expect("again"),
        RunEvent::Done(_)
    ));
    // A beam search started before another generation can no longer step.
    let mut first = beam(&mut g, &[5, 7], params, StopRule::EndOfText);
    let _second = g
        .start(&[5, 7], &SamplingParams::greedy(8))
        .expect("starts");
    assert!(first.step(&mut g).is_err());
}
