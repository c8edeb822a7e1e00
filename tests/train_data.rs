//! Retrieval-augmented training data on the real bundle: each prompt is the tagline task's
//! own, holds other movies' taglines only (never the movie's, never an identical one, never a
//! held-out movie's), and the loss counts exactly the tagline and the end of its turn.

mod common;

use std::collections::HashSet;

use marquee::generate::Generator;
use marquee::task::tagline::prompt_prefix;
use marquee::train::data::{training_examples, DataOptions};

#[test]
fn training_prompts_never_show_the_answer_or_a_held_out_movie() {
    let retriever = marquee::retriever::Retriever::open_dir(&common::bundle_dir()).expect("bundle");
    let generator =
        Generator::from_llama_gguf(&common::asset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
            .expect("loads");
    let with_tagline: Vec<usize> = (0..retriever.movies().len())
        .filter(|&i| retriever.movies()[i].tagline.is_some())
        .collect();
    let held_out: HashSet<usize> = with_tagline.iter().step_by(7).copied().take(200).collect();
    let movies: Vec<usize> = with_tagline.iter().copied().step_by(97).take(30).collect();
    let options = DataOptions::default();
    let examples =
        training_examples(&retriever, &generator, &movies, &held_out, options).expect("examples");
    let trained: HashSet<usize> = examples.iter().map(|e| e.movie).collect();
    assert!(
        trained.is_disjoint(&held_out),
        "a held-out movie was trained on"
    );
    assert_eq!(
        examples.len(),
        movies.iter().filter(|m| !held_out.contains(m)).count()
    );
    let prefix = generator.encode(&prompt_prefix()).expect("encodes");
    let mut examples_shown = 0;
    for e in &examples {
        let movie = &retriever.movies()[e.movie];
        let tagline = movie.tagline.as_deref().expect("trained movies have one");
        assert!(e.ids.starts_with(&prefix), "not the task's prompt");
        assert!(
            !e.examples.contains(&e.movie),
            "{} is its own example",
            movie.title
        );
        for &x in &e.examples {
            assert!(!held_out.contains(&x), "held-out {x} in a prompt");
            let shown = retriever.movies()[x].tagline.as_deref().unwrap_or_default();
            assert!(!shown.trim().eq_ignore_ascii_case(tagline.trim()));
        }
        examples_shown += e.examples.len();
        let first = e.answer.iter().position(|&a| a).expect("an answer");
        assert!(
            e.answer[first..].iter().all(|&a| a),
            "the answer is the tail"
        );
        let answer = generator
            .tokenizer()
            .decode(&e.ids[first..], false)
            .expect("decodes");
        assert_eq!(answer, format!("{tagline}<|im_end|>"));
        let prompt = generator
            .tokenizer()
            .decode(&e.ids[..first], false)
            .expect("decodes");
        assert!(
            !prompt.contains(tagline),
            "{}'s tagline is in its prompt",
            movie.title
        );
    }
    assert!(
        examples_shown >= examples.len() * 2,
        "few examples: {examples_shown}"
    );
    let again =
        training_examples(&retriever, &generator, &movies, &held_out, options).expect("examples");
    assert_eq!(again, examples, "the same seed, the same data");
}
