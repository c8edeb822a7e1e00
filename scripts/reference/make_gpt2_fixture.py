#!/usr/bin/env python3
"""Writes the GPT-2 reference fixtures. Real GPT-2 weights cannot be fetched here, so the
architecture is checked on a small *random* GPT2Config built offline by `transformers`:

- tests/fixtures/gpt2_tiny/model.safetensors, config.json: the random model (~200 kB)
- tests/fixtures/gpt2_tiny/logits.json: its f32 logits for fixed inputs
- tests/fixtures/gpt2_tokenizer.json: the real GPT-2 tokenizer's ids for a sentence set,
  from npm gpt-3-encoder's own JavaScript encoder (run with node): an implementation
  independent of the Rust `tokenizers` crate Marquee uses

Run once (fixtures are committed), in a venv with torch and transformers:
    python scripts/reference/make_gpt2_fixture.py
"""
import json
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures"

INPUTS = [[0, 1, 2, 3, 4, 5, 6, 7], [500, 17, 42, 42, 42, 300, 9, 1, 250, 399, 400, 7], [5]]

SENTENCES = [
    "Hello world",
    "A heist crew hides inside a dream.",
    "The year 2049 was 12,345 km away; don't stop!",
    "  leading spaces and\ttabs\nand newlines  ",
    "Amélie, naïve café owner — in Paris.",
    "A robot 🤖 falls in love.",
    "I'll we've they're it's",
    "Line one\n\nLine two   with   spaces",
]


def main() -> None:
    torch.manual_seed(1234)
    config = GPT2Config(vocab_size=512, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                        n_inner=None, activation_function="gelu_new", resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5)
    model = GPT2LMHeadModel(config).eval()
    tiny = OUT / "gpt2_tiny"
    tiny.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tiny, safe_serialization=True)
    for extra in ("generation_config.json",):
        (tiny / extra).unlink(missing_ok=True)
    logits = []
    with torch.no_grad():
        for ids in INPUTS:
            out = model(torch.tensor([ids])).logits[0]
            logits.append({"input_ids": ids, "logits": [[round(float(x), 6) for x in row] for row in out]})
    (tiny / "logits.json").write_text(json.dumps({
        "generated_by": f"transformers {transformers.__version__}, torch {torch.__version__}",
        "cases": logits}) + "\n")

    cache = Path(os.environ.get("MARQUEE_CACHE", Path.home() / ".cache" / "marquee"))
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(cache / "downloads" / "gpt-3-encoder-1.1.4.tgz") as t:
            t.extractall(tmp, filter="data")
        script = "const {encode} = require('./package/index.js');" \
                 "const s = JSON.parse(require('fs').readFileSync(0, 'utf8'));" \
                 "console.log(JSON.stringify(s.map(encode)));"
        ids = json.loads(subprocess.run(["node", "-e", script], cwd=tmp, check=True, text=True,
                                        input=json.dumps(SENTENCES), capture_output=True).stdout)
    rows = [{"text": s, "ids": i} for s, i in zip(SENTENCES, ids)]
    (OUT / "gpt2_tokenizer.json").write_text(json.dumps({
        "generated_by": "npm gpt-3-encoder@1.1.4 (its JavaScript encoder, under node)",
        "sentences": rows}, ensure_ascii=False, indent=1) + "\n")
    print("wrote", tiny, "and", OUT / "gpt2_tokenizer.json")


if __name__ == "__main__":
    main()
