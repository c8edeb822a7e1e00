//! The Ask job on the real bundle: the fused retrieval finds the chunk that answers a plain
//! question (the title named, the fact asked for), a "which film" question finds its film,
//! and the reader adapter the bundle ships answers from the passage with the answer only.

mod common;

use std::collections::HashSet;

use marquee::bundle::{self, part};
use marquee::generate::{Adapter, AdapterMode, Generator};
use marquee::qa::{PassageIndex, Signal};
use marquee::retriever::Retriever;
use marquee::task::ask::{start, Ask, AskRequest};

fn open() -> (Retriever, PassageIndex) {
    let dir = common::bundle_dir();
    let retriever = Retriever::open_dir(&dir).expect("bundle");
    let search = PassageIndex::open_dir(&dir, retriever.manifest(), retriever.movies().len())
        .expect("the bundle's passages");
    (retriever, search)
}

/// The best chunk's text for `question`, by the fused signal the page uses.
fn best(retriever: &Retriever, search: &PassageIndex, question: &str) -> String {
    let embedding = retriever.embedder().embed_query(question).expect("embeds");
    let hits = search
        .search(question, &embedding, 3, Signal::Fused, &HashSet::new())
        .expect("search");
    search.passages.chunk_text(hits[0].chunk)
}

#[test]
fn fused_retrieval_puts_the_answer_in_the_first_chunk() {
    let (retriever, search) = open();
    for (question, header, answer) in [
        ("Who directed Titanic?", "Titanic (1997):", "James Cameron"),
        ("Who wrote Alien?", "Alien (1979):", "Dan O'Bannon"),
        (
            "Who played the Joker in The Dark Knight?",
            "The Dark Knight (2008):",
            "Heath Ledger as Joker",
        ),
        (
            "Which 2010 film did Christopher Nolan direct?",
            "Inception (2010):",
            "Christopher Nolan",
        ),
    ] {
        let text = best(&retriever, &search, question);
        assert!(
            text.starts_with(header) && text.contains(answer),
            "{question}: {text}"
        );
    }
}

#[test]
fn the_reader_adapter_answers_with_the_answer_only() {
    let (retriever, search) = open();
    let dir = common::bundle_dir();
    let manifest = retriever.manifest();
    let gguf = bundle::read_part(&dir, manifest, part::GENERATOR).expect("generator part");
    let reader = bundle::read_part(&dir, manifest, part::ASK_ADAPTER).expect("reader part");
    let mut generator = Generator::from_llama_gguf(&gguf).expect("loads");
    let adapter = Adapter::read(&reader).expect("adapter");
    generator
        .set_adapter(Some(&adapter), AdapterMode::Apart)
        .expect("applies");
    marquee::task::prime::<Ask>(&mut generator).expect("primes");
    let request = AskRequest::new("Who directed Jurassic Park?");
    let job = start(
        &search,
        retriever.embedder(),
        Some(&mut generator),
        &request,
        &HashSet::new(),
        |_| {},
    )
    .expect("starts");
    assert!(!job.unknown);
    let (_, answer) = common::run_to_end(job.run.expect("generates"), &mut generator);
    // The base model answers in a sentence, often naming the writers; the reader names the
    // director and stops (no claim on the exact bytes: they may differ by kernel).
    assert!(answer.text.contains("Spielberg"), "{:?}", answer.text);
    assert!(
        answer.text.split_whitespace().count() <= 4,
        "{:?}",
        answer.text
    );
}
