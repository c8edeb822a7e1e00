//! The tagline metrics against the Python packages everyone quotes: sacrebleu's corpus BLEU
//! and Google's rouge-score ROUGE-L (fixture: scripts/reference/make_metrics_fixture.py).

use marquee::eval::{corpus_bleu, rouge_l_f1};

#[derive(serde::Deserialize)]
struct Fixture {
    pairs: Vec<Pair>,
    corpus_bleu: std::collections::BTreeMap<String, Corpus>,
}

#[derive(serde::Deserialize)]
struct Pair {
    candidate: String,
    reference: String,
    rouge_l_f1: f64,
}

#[derive(serde::Deserialize)]
struct Corpus {
    indices: Vec<usize>,
    bleu: f64,
}

fn fixture() -> Fixture {
    serde_json::from_str(include_str!("fixtures/metrics_reference.json")).expect("fixture parses")
}

#[test]
fn rouge_l_matches_rouge_score() {
    for p in fixture().pairs {
        let ours = rouge_l_f1(&p.candidate, &p.reference);
        assert!(
            (ours - p.rouge_l_f1).abs() < 1e-9,
            "{:?}: {ours} vs {}",
            p.candidate,
            p.rouge_l_f1
        );
    }
}

#[test]
fn corpus_bleu_matches_sacrebleu() {
    let f = fixture();
    for (name, corpus) in &f.corpus_bleu {
        let candidates: Vec<String> = corpus
            .indices
            .iter()
            .map(|&i| f.pairs[i].candidate.clone())
            .collect();
        let references: Vec<String> = corpus
            .indices
            .iter()
            .map(|&i| f.pairs[i].reference.clone())
            .collect();
        let ours = corpus_bleu(&candidates, &references);
        println!("{name}: ours {ours:.6}, sacrebleu {:.6}", corpus.bleu);
        assert!(
            (ours - corpus.bleu).abs() < 1e-6,
            "{name}: {ours} vs {}",
            corpus.bleu
        );
    }
}
