#!/usr/bin/env python3
"""The native peers of `cargo bench --bench engine`, run by it beside each of our figures:
sentence-transformers (+ torch) for the builder's embedding throughput, faiss-cpu for exact
(flat) and HNSW search. Installed by scripts/bench-setup into $MARQUEE_CACHE/peers/venv.
The bench writes the inputs (texts, vectors, queries, the exact top-10 of each query) and
reads one JSON object from stdout; nothing here decides what is compared.

    peer.py embed  --texts texts.json --batch 32 --threads T
    peer.py search --base base.f32 --queries q1.f32,q2.f32 --truth t1.i32,t2.i32
                   --threads T --ef-construction 40,100 --ef-search 16,32,...
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

DIM = 384
K = 10


def embed(args: argparse.Namespace) -> dict:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    texts = json.loads(Path(args.texts).read_text(encoding="utf-8"))
    cache = Path(os.environ.get("MARQUEE_CACHE", Path.home() / ".cache" / "marquee"))
    model = SentenceTransformer(str(cache / "assets" / "minilm"), device="cpu")
    model.encode(texts[:64], batch_size=args.batch)  # warm-up: torch's first calls allocate
    start = time.perf_counter()
    model.encode(texts, batch_size=args.batch, normalize_embeddings=True)
    seconds = time.perf_counter() - start
    return {
        "peer": f"sentence-transformers {sentence_transformers_version()} + torch "
        f"{torch.__version__}, {args.threads} threads",
        "texts": len(texts),
        "seconds": seconds,
        "texts_per_s": len(texts) / seconds,
    }


def sentence_transformers_version() -> str:
    import sentence_transformers

    return sentence_transformers.__version__


def read_f32(path: str) -> np.ndarray:
    return np.fromfile(path, dtype="<f4").reshape(-1, DIM)


def per_query_ms(index, queries: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean time per query, and the results. The queries go in one call on one thread
    (FAISS then searches them one after another), so no Python overhead is counted per
    query: the figure favours the peer, if anything."""
    start = time.perf_counter()
    _, found = index.search(queries, K)
    return (time.perf_counter() - start) * 1e3 / len(queries), found


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f) & set(t)) for f, t in zip(found.tolist(), truth.tolist()))
    return hits / truth.size


def search(args: argparse.Namespace) -> dict:
    import faiss

    base = read_f32(args.base)
    query_sets = [read_f32(p) for p in args.queries.split(",")]
    truths = [np.fromfile(p, dtype="<i4").reshape(-1, K) for p in args.truth.split(",")]
    faiss.omp_set_num_threads(args.threads)

    flat = faiss.IndexFlatIP(DIM)
    flat.add(base)
    # Searched on one thread, as ours (a search runs on the caller's thread).
    faiss.omp_set_num_threads(1)
    out = {"peer": f"faiss-cpu {faiss.__version__}", "flat": [], "hnsw": []}
    for queries, truth in zip(query_sets, truths):
        per_query_ms(flat, queries[:20])  # warm-up
        ms, found = per_query_ms(flat, queries)
        out["flat"].append({"ms": ms, "recall": recall(found, truth)})

    for ef_construction in [int(x) for x in args.ef_construction.split(",")]:
        faiss.omp_set_num_threads(args.threads)
        index = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        start = time.perf_counter()
        index.add(base)
        build_s = time.perf_counter() - start
        faiss.omp_set_num_threads(1)
        sweeps = []
        for queries, truth in zip(query_sets, truths):
            sweep = []
            for ef in [int(x) for x in args.ef_search.split(",")]:
                index.hnsw.efSearch = ef
                per_query_ms(index, queries[:20])
                ms, found = per_query_ms(index, queries)
                sweep.append({"ef_search": ef, "ms": ms, "recall": recall(found, truth)})
            sweeps.append(sweep)
        out["hnsw"].append(
            {"ef_construction": ef_construction, "build_s": build_s, "sweeps": sweeps}
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    e = sub.add_parser("embed")
    e.add_argument("--texts", required=True)
    e.add_argument("--batch", type=int, default=32)
    e.add_argument("--threads", type=int, default=os.cpu_count())
    s = sub.add_parser("search")
    s.add_argument("--base", required=True)
    s.add_argument("--queries", required=True)
    s.add_argument("--truth", required=True)
    s.add_argument("--threads", type=int, default=os.cpu_count())
    s.add_argument("--ef-construction", default="40,100")
    s.add_argument("--ef-search", default="16,32,64,128,256,512")
    args = parser.parse_args()
    result = embed(args) if args.command == "embed" else search(args)
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
