#!/usr/bin/env python3
"""The int8 ONNX MiniLM that onnxruntime-web runs beside our page (bench/browser/bench.mjs),
made from the same weights the engine embeds with, and the token ids it is fed.

Run with the peers venv (scripts/bench-setup makes it and calls `export`):
    $MARQUEE_CACHE/peers/venv/bin/python scripts/reference/minilm_onnx.py export --out FILE
    echo '["a sentence", ...]' | ... minilm_onnx.py tokenize [--reference]

export: all-MiniLM-L6-v2 ($MARQUEE_CACHE/assets/minilm: the HF BertModel's config.json,
  model.safetensors) → ONNX (inputs input_ids, attention_mask, token_type_ids, int64, batch
  and sequence axes dynamic; output last_hidden_state) → onnxruntime's dynamic int8
  quantization (QInt8 weights per channel, reduced range, the way transformers.js makes its
  "model_quantized.onnx").
  Pooling and normalization stay outside the model, in the page's JS, as transformers.js
  does them. Checks with onnxruntime (CPU) that the int8 model's mean-pooled, normalized
  vectors are within cosine 0.985 of sentence-transformers' own, so a slow or fast peer is
  not a broken one.
tokenize: JSON list of sentences on stdin → JSON [{text, input_ids, attention_mask,
  token_type_ids}] from the same tokenizer.json, set up as the engine sets it up
  (src/embed/mod.rs: no padding, truncation at 256, the text trimmed as embed_query does),
  so the browser page needs no tokenizer and both sides embed the same ids. --reference
  adds sentence-transformers' vector of each sentence (bench.mjs checks ORT-web's output).
"""
import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything comes from the assets dir
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CACHE = Path(os.environ.get("MARQUEE_CACHE", Path.home() / ".cache" / "marquee"))
MODEL_DIR = CACHE / "assets" / "minilm"
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model (src/embed/mod.rs)
# Dynamic int8 (u8 activations quantized per tensor at run time) costs MiniLM about 1 %:
# 0.989-0.993 on CHECK_SENTENCES with transformers.js's settings, the lowest for the
# longest sentence; quantizing only the MatMuls (58.7 MB) gives the same. A broken export,
# or weights quantized per tensor (0.85-0.98), falls below this.
MIN_COSINE = 0.985

# Checked after export: short and long, the kinds of text the page embeds.
CHECK_SENTENCES = [
    "A heist crew hides inside a dream to steal a secret from a billionaire's mind.",
    "Who directed Jurassic Park?",
    "toys that come to life when nobody is watching",
    "Space",
    "In the 22nd century, a paraplegic Marine is dispatched to the moon Pandora on a unique "
    "mission, but becomes torn between following orders and protecting an alien civilization.",
]


def tokenizer(model_dir: Path):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    # The shipped tokenizer.json pads and truncates at 128; the engine pads nothing and
    # truncates where sentence-transformers does.
    tok.no_padding()
    tok.enable_truncation(MAX_TOKENS)
    return tok


def encode(tok, texts):
    rows = []
    for text in texts:
        enc = tok.encode(text.strip())
        rows.append({
            "text": text,
            "input_ids": enc.ids,
            "attention_mask": enc.attention_mask,
            "token_type_ids": enc.type_ids,
        })
    return rows


def reference_embeddings(model_dir: Path, texts):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu")
    return model.encode([t.strip() for t in texts], normalize_embeddings=True, convert_to_numpy=True)


def cmd_tokenize(args) -> None:
    texts = json.load(sys.stdin)
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        sys.exit("tokenize: stdin must be a JSON list of strings")
    rows = encode(tokenizer(args.model_dir), texts)
    if args.reference:  # lets the caller check the vectors a peer computes from these ids
        for row, v in zip(rows, reference_embeddings(args.model_dir, texts)):
            row["reference"] = [round(float(x), 7) for x in v]
    json.dump(rows, sys.stdout)
    sys.stdout.write("\n")


def export_f32(model_dir: Path, out: Path) -> None:
    import torch
    from transformers import BertModel

    # Eager attention: plain MatMul/Softmax nodes, which the quantizer and every ORT build
    # handle (sdpa traces into the same ops, but eager keeps the graph predictable).
    model = BertModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    class LastHidden(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.int64)
    mask = (ids != 0).to(torch.int64)
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad():
        # The TorchScript exporter: dynamic_axes needs no onnxscript (the dynamo exporter,
        # torch's default now, does) and gives the graph transformers.js's exports have.
        torch.onnx.export(
            LastHidden(model), (ids, mask, torch.zeros_like(ids)), str(out),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                          "last_hidden_state": axes},
            opset_version=17, do_constant_folding=True, dynamo=False,
        )


def pooled(session, rows):
    import numpy as np

    out = []
    for r in rows:  # one at a time, as the page embeds a query
        feeds = {k: np.array([r[k]], dtype=np.int64)
                 for k in ("input_ids", "attention_mask", "token_type_ids")}
        hidden = session.run(["last_hidden_state"], feeds)[0][0]
        mask = feeds["attention_mask"][0].astype(np.float32)[:, None]
        v = (hidden * mask).sum(0) / max(mask.sum(), 1e-9)
        out.append(v / max(np.linalg.norm(v), 1e-12))
    return np.stack(out)


def cmd_export(args) -> None:
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (args.model_dir / name).is_file():
            sys.exit(f"export: no {args.model_dir / name} (python3 scripts/fetch_assets.py --only minilm)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="minilm-onnx-") as tmp:
        f32 = Path(tmp) / "minilm-f32.onnx"
        export_f32(args.model_dir, f32)
        onnx.checker.check_model(str(f32))
        f32_bytes = f32.stat().st_size
        # Written next to the target, then renamed: a failed run leaves no half-made model
        # that scripts/bench-setup would take as up to date.
        partial = args.out.with_name(args.out.name + ".partial")
        # transformers.js's settings (its quantize script: per channel, reduced range).
        # Per channel is what keeps the vectors: per tensor gave cosine 0.96-0.98 (full
        # range) and 0.85-0.91 (reduced) here. Reduced range (7-bit weights) avoids u8×s8
        # products saturating in 16 bits on x86 without VNNI, where the check runs.
        quantize_dynamic(str(f32), str(partial), weight_type=QuantType.QInt8,
                         per_channel=True, reduce_range=True)

        rows = encode(tokenizer(args.model_dir), CHECK_SENTENCES)
        cpu = ["CPUExecutionProvider"]
        got_f32 = pooled(ort.InferenceSession(str(f32), providers=cpu), rows)
        got_int8 = pooled(ort.InferenceSession(str(partial), providers=cpu), rows)
    want = reference_embeddings(args.model_dir, CHECK_SENTENCES)
    cos_f32 = (got_f32 * want).sum(1)
    cos_int8 = (got_int8 * want).sum(1)
    ops = sorted({n.op_type for n in onnx.load(str(partial)).graph.node})
    print(f"f32 ONNX {f32_bytes / 1e6:.1f} MB → int8 {partial.stat().st_size / 1e6:.1f} MB "
          f"(onnxruntime {ort.__version__}, QInt8 per channel, reduced range); ops: {', '.join(ops)}")
    for text, a, b in zip(CHECK_SENTENCES, cos_f32, cos_int8):
        short = text if len(text) <= 60 else text[:57] + "..."
        print(f"  cosine to sentence-transformers: f32 {a:.5f}, int8 {b:.5f}  {short}")
    if cos_f32.min() < 0.9999:
        partial.unlink()
        sys.exit(f"export: the f32 ONNX model is off (cosine {cos_f32.min():.5f}): export bug")
    if cos_int8.min() < MIN_COSINE:
        partial.unlink()
        sys.exit(f"export: int8 cosine {cos_int8.min():.4f} < {MIN_COSINE}")
    partial.replace(args.out)
    print(f"wrote {args.out} (min int8 cosine {cos_int8.min():.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="write the int8 ONNX model and check it")
    export.add_argument("--out", type=Path, required=True)
    tokenize = sub.add_parser("tokenize", help="JSON sentences on stdin → token ids on stdout")
    tokenize.add_argument("--reference", action="store_true",
                          help="add sentence-transformers' normalized vector of each sentence")
    args = parser.parse_args()
    {"export": cmd_export, "tokenize": cmd_tokenize}[args.command](args)


if __name__ == "__main__":
    main()
