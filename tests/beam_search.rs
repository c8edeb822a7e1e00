//! Beam search on the real bundle and SmolLM2 (the page's q4_0 generator), through the
//! tagline task as the page and the CLI run it: width 1 is the greedy tagline; a width-4
//! beam is reproducible, shows exactly its result piece by piece, ends at the first line
//! and stops mid-search. Prints the time of a sampled and a beam tagline, same idea, same
//! process.

mod common;

use std::collections::HashSet;
use std::time::Instant;

use marquee::generate::{Generation, Generator, StopReason};
use marquee::retriever::Retriever;
use marquee::task::tagline::{Strategy, Tagline, TaglineRequest};
use marquee::task::{Run, RunEvent};

fn setup() -> (Retriever, Generator) {
    let dir = common::bundle_dir();
    let retriever = Retriever::open_dir(&dir).expect("the bundle opens");
    let bytes = std::fs::read(dir.join("generator-q4_0.gguf")).expect("the bundle's generator");
    let mut generator = Generator::from_llama_gguf(&bytes).expect("loads");
    marquee::task::prime::<Tagline>(&mut generator).expect("primes");
    (retriever, generator)
}

fn start(retriever: &Retriever, generator: &mut Generator, request: &TaglineRequest) -> Run {
    marquee::task::tagline::start(retriever, Some(generator), request, &HashSet::new(), |_| {})
        .expect("starts")
        .run
        .expect("a generation")
}

fn run(
    retriever: &Retriever,
    generator: &mut Generator,
    request: &TaglineRequest,
) -> (Vec<RunEvent>, Generation) {
    let run = start(retriever, generator, request);
    common::run_to_end(run, generator)
}

fn beam(idea: &str, width: usize) -> TaglineRequest {
    TaglineRequest {
        decoding: Strategy::Beam,
        beam_width: width,
        ..TaglineRequest::new(idea)
    }
}

const IDEAS: [&str; 3] = [
    "Toys that come to life when nobody is watching go on an adventure.",
    "A detective in a rain-soaked city hunts a killer who leaves riddles.",
    "Two rival chefs are snowed in at a mountain lodge with one kitchen.",
];

#[test]
fn width_one_is_the_greedy_tagline() {
    let (retriever, mut generator) = setup();
    for idea in IDEAS {
        let greedy = TaglineRequest {
            temperature: 0.0,
            repeat_penalty: 1.0,
            ..TaglineRequest::new(idea)
        };
        // From the same cache (the primed prefix), so prefill reports the same reuse.
        generator.forget_cache();
        let (greedy_events, greedy_done) = run(&retriever, &mut generator, &greedy);
        generator.forget_cache();
        let exact = TaglineRequest {
            no_repeat_ngram: 0,
            ..beam(idea, 1)
        };
        let (beam_events, beam_done) = run(&retriever, &mut generator, &exact);
        assert_eq!(beam_done, greedy_done, "{idea}");
        assert_eq!(beam_events, greedy_events, "{idea}");
    }
}

#[test]
fn a_beam_tagline_is_reproducible_and_shows_exactly_its_result() {
    let (retriever, mut generator) = setup();
    for idea in IDEAS {
        let sampled_started = Instant::now();
        let (_, sampled) = run(&retriever, &mut generator, &TaglineRequest::new(idea));
        let sampled_s = sampled_started.elapsed().as_secs_f64();
        let beam_started = Instant::now();
        let (events, done) = run(&retriever, &mut generator, &beam(idea, 4));
        let beam_s = beam_started.elapsed().as_secs_f64();
        eprintln!(
            "{idea}\n  sampled {sampled_s:.2} s, {} tokens: {:?}\n  beam 4  {beam_s:.2} s, {} tokens: {:?} ({} pieces)",
            sampled.tokens.len(),
            sampled.text,
            done.tokens.len(),
            done.text,
            events.iter().filter(|e| matches!(e, RunEvent::Text(_))).count(),
        );
        assert!(!done.text.is_empty(), "{idea}");
        assert!(!done.text.contains('\n'), "{:?}", done.text);
        // The tagline's default: no three tokens repeated.
        for (i, w) in done.tokens.windows(3).enumerate() {
            let later = &done.tokens[i + 1..];
            assert!(!later.windows(3).any(|v| v == w), "a loop: {:?}", done.text);
        }
        assert_eq!(
            done.text,
            common::shown_text(&events).trim(),
            "nothing taken back or added"
        );
        assert_ne!(done.stop, StopReason::Cancelled);
        let (again_events, again) = run(&retriever, &mut generator, &beam(idea, 4));
        assert_eq!((again_events, again), (events, done), "{idea}");
    }
}

#[test]
fn stop_ends_a_beam_search_mid_way() {
    let (retriever, mut generator) = setup();
    let request = TaglineRequest {
        max_tokens: 64,
        ..beam(IDEAS[1], 8)
    };
    let mut run = start(&retriever, &mut generator, &request);
    let mut seen = Vec::new();
    for _ in 0..12 {
        seen.push(run.step(&mut generator).expect("steps"));
    }
    run.cancel();
    let done = loop {
        match run.step(&mut generator).expect("steps") {
            RunEvent::Done(done) => break done,
            event => seen.push(event),
        }
    };
    assert_eq!(done.stop, StopReason::Cancelled);
    assert_eq!(done.text, common::shown_text(&seen).trim());
    assert!(
        done.tokens.len() < 12,
        "{} tokens after 12 passes of 8",
        done.tokens.len()
    );
}
