#!/usr/bin/env python3
"""The established implementations on Marquee's recommendation split, for docs/evaluation.md.

Reads the split `index-builder recommend-eval --export DIR` writes (train.tsv, test.tsv:
user_id, item_id, rating, in split order) and runs on it:
- scikit-surprise's KNNBasic, user- and item-based, cosine and msd, k = 40, min_k = 1
  (its defaults otherwise): RMSE and MAE over the test ratings (unknown users or movies
  get Surprise's own fallback, the global mean; predictions clipped to 1-5);
- implicit's CosineRecommender (item-KNN, K neighbours per movie) on binary "rated"
  interactions, and a most-popular list: HR@N, NDCG@N, P@N over every movie a test user
  did not rate in training, averaged over test users; NDCG with binary gains over the
  ideal list of min(N, held-out) hits, as `recommend-eval` computes them.

Not part of the test suite. Set up once (see docs/evaluation.md):
  python3 -m venv ~/.cache/marquee/recs-ref/venv
  ~/.cache/marquee/recs-ref/venv/bin/pip install numpy scipy scikit-surprise==1.1.5 implicit==0.7.3
Usage: recs_reference.py DIR [--k 40] [--n 10] [--item-k 11,20,50] [--json OUT]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix


def read(path: Path) -> list[tuple[str, str, float]]:
    with open(path, newline="") as f:
        rows = csv.DictReader(f, delimiter="\t")
        return [(r["user_id"], r["item_id"], float(r["rating"])) for r in rows]


def surprise_rows(train, test, k: int) -> list[dict]:
    import pandas as pd
    from surprise import Dataset, KNNBasic, Reader, accuracy

    frame = pd.DataFrame(train, columns=["user", "item", "rating"])
    trainset = Dataset.load_from_df(frame, Reader(rating_scale=(1, 5))).build_full_trainset()
    out = []
    for user_based in (True, False):
        for name in ("cosine", "msd"):
            start = time.perf_counter()
            algo = KNNBasic(k=k, min_k=1, sim_options={"name": name, "user_based": user_based},
                            verbose=False)
            algo.fit(trainset)
            predictions = algo.test(test)
            seconds = time.perf_counter() - start
            impossible = sum(1 for p in predictions if p.details.get("was_impossible"))
            out.append({
                "kind": "rating",
                "name": f"Surprise KNNBasic {'User' if user_based else 'Item'}-based "
                        f"{name.capitalize()}, k = {k}",
                "rmse": accuracy.rmse(predictions, verbose=False),
                "mae": accuracy.mae(predictions, verbose=False),
                "impossible": impossible,
                "seconds": seconds,
            })
    return out


def ranking(recommend, users, truth, n: int) -> dict:
    hits = ndcg = precision = 0.0
    counted = 0
    for u in users:
        relevant = truth.get(u)
        if not relevant:
            continue
        ranked = recommend(u)[:n]
        dcg = sum(1 / math.log2(rank + 2) for rank, i in enumerate(ranked) if i in relevant)
        got = sum(1 for i in ranked if i in relevant)
        ideal = sum(1 / math.log2(rank + 2) for rank in range(min(n, len(relevant))))
        hits += got > 0
        ndcg += dcg / ideal
        precision += got / n
        counted += 1
    return {"hr": hits / counted, "ndcg": ndcg / counted, "precision": precision / counted,
            "users": counted}


def implicit_rows(train, test, n: int, item_ks: list[int]) -> list[dict]:
    from implicit.nearest_neighbours import CosineRecommender

    users = sorted({u for u, _, _ in train + test}, key=int)
    items = sorted({i for _, i, _ in train + test}, key=int)
    u_index = {u: x for x, u in enumerate(users)}
    i_index = {i: x for x, i in enumerate(items)}
    rows = [u_index[u] for u, _, _ in train]
    cols = [i_index[i] for _, i, _ in train]
    user_items = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(users), len(items)))
    user_items.sum_duplicates()
    user_items.data[:] = 1.0
    truth: dict[int, set[int]] = {}
    for u, i, _ in test:
        truth.setdefault(u_index[u], set()).add(i_index[i])
    # Users with nothing in training get no list (as in recommend-eval).
    test_users = [u for u in sorted(truth) if user_items[u].nnz > 0]

    popularity = np.asarray(user_items.sum(axis=0)).ravel()
    by_popularity = np.argsort(-popularity, kind="stable")

    def popular(u):
        seen = set(user_items[u].indices)
        return [i for i in by_popularity[: n + len(seen)] if i not in seen]

    out = [{"kind": "ranking", "name": "most popular (numpy)", **ranking(popular, test_users, truth, n)}]
    for k in item_ks:
        model = CosineRecommender(K=k)
        start = time.perf_counter()
        model.fit(user_items, show_progress=False)
        ids, _ = model.recommend(np.array(test_users), user_items[test_users], N=n,
                                 filter_already_liked_items=True)
        lists = {u: list(row) for u, row in zip(test_users, ids)}
        seconds = time.perf_counter() - start
        # implicit keeps each movie itself among its K (similarity 1): K - 1 real neighbours.
        out.append({"kind": "ranking", "name": f"implicit CosineRecommender, K = {k}",
                    "seconds": seconds, **ranking(lists.__getitem__, test_users, truth, n)})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("split", type=Path)
    parser.add_argument("--k", type=int, default=40)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--item-k", default="11,20,50")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    train, test = read(args.split / "train.tsv"), read(args.split / "test.tsv")
    rows = surprise_rows(train, test, args.k)
    rows += implicit_rows(train, test, args.n, [int(k) for k in args.item_k.split(",")])
    for r in rows:
        if r["kind"] == "rating":
            print(f"| {r['name']} | {r['rmse']:.4f} | {r['mae']:.4f} | {r['impossible']} |")
        else:
            print(f"| {r['name']} | {r['hr']:.4f} | {r['ndcg']:.4f} | {r['precision']:.4f} | {r['users']} |")
    if args.json:
        args.json.write_text(json.dumps({"split": str(args.split), "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
