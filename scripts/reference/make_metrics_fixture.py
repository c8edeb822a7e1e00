#!/usr/bin/env python3
"""Writes tests/fixtures/metrics_reference.json: sacrebleu's corpus BLEU and rouge-score's
ROUGE-L F1 for fixed tagline pairs, the reference src/eval.rs is checked against.

    pip install sacrebleu rouge-score && python scripts/reference/make_metrics_fixture.py
"""
import json
from pathlib import Path

import sacrebleu
from rouge_score import rouge_scorer

ROOT = Path(__file__).resolve().parents[2]

PAIRS = [
    ("Enter the world of Pandora.", "Enter the World of Pandora."),
    ("The adventure takes off!", "The toys are back in town."),
    ("Your mind is the scene of the crime.", "The dream is real."),
    ("Don't go in the water.", "Just when you thought it was safe to go back in the water..."),
    ("In space no one can hear you scream.", "In space, no one can hear you scream."),
    ("1,000 reasons to run - and 3.5 ways to hide", "One thousand reasons to run."),
    ("Some assembly required.", "Avengers assemble!"),
    ("", "An empty generation scores zero."),
    ("Heroes aren't born. They're made.", "Heroes are made, not born."),
    ("The last man on Earth is not alone", "The last man on Earth is not alone."),
    ("A story of love & loss, \"told\" in <12> parts", "A story of love and loss."),
    ("Nothing in common", "Completely different words here"),
]

CORPORA = {"all": list(range(len(PAIRS))), "first_five": [0, 1, 2, 3, 4], "no_match": [11]}


def main() -> None:
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    rows = [{"candidate": c, "reference": r, "rouge_l_f1": scorer.score(r, c)["rougeL"].fmeasure}
            for c, r in PAIRS]
    bleu = {}
    for name, idx in CORPORA.items():
        hyps = [PAIRS[i][0] for i in idx]
        refs = [[PAIRS[i][1] for i in idx]]
        bleu[name] = {"indices": idx, "bleu": sacrebleu.corpus_bleu(hyps, refs).score}
    out = ROOT / "tests" / "fixtures" / "metrics_reference.json"
    out.write_text(json.dumps({
        "generated_by": f"sacrebleu {sacrebleu.__version__} (defaults), rouge-score (rougeL)",
        "pairs": rows, "corpus_bleu": bleu}, ensure_ascii=False, indent=1) + "\n")
    print("wrote", out, {k: round(v["bleu"], 3) for k, v in bleu.items()})


if __name__ == "__main__":
    main()
