#!/usr/bin/env python3
"""Measures sentence-transformers embedding TMDB the way `index-builder build` does (the same
"Title. Overview" texts, batch 32, normalized), so the README can put both side by side.

    python scripts/reference/bench_sentence_transformers.py [--limit N] [--threads T]
"""
import argparse
import csv
import os
import time
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer


def main() -> None:
    cache = Path(os.environ.get("MARQUEE_CACHE", Path.home() / ".cache" / "marquee"))
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with open(cache / "assets" / "tmdb" / "movies.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["id"].strip() and r["title"].strip()
                and r["overview"].strip()]
    texts = [f"{r['title'].strip()}. {r['overview'].strip()}" for r in rows][: args.limit]
    model = SentenceTransformer(str(cache / "assets" / "minilm"), device="cpu")
    model.encode(texts[:64], batch_size=args.batch_size)  # warm-up
    start = time.perf_counter()
    model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True)
    seconds = time.perf_counter() - start
    query = "toys that come to life when nobody is watching"
    for _ in range(5):
        model.encode([query])
    runs = []
    for _ in range(50):
        t = time.perf_counter()
        model.encode([query])
        runs.append(time.perf_counter() - t)
    runs.sort()
    print(f"sentence-transformers, torch {torch.__version__}, {args.threads} threads, "
          f"batch {args.batch_size}: {len(texts)} texts in {seconds:.1f} s = "
          f"{len(texts) / seconds:.1f} texts/s; one query (median of 50): {runs[25] * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
