#!/usr/bin/env python3
"""llama.cpp (llama-cpp-python) on the same GGUF and prompt as benches/generation.rs:
the anchor for Marquee's native generation speed.

    python scripts/reference/bench_llama_cpp.py [--threads 1 2]
"""
import argparse
import os
import re
import time
from pathlib import Path

import llama_cpp

ROOT = Path(__file__).resolve().parents[2]


def bench_prompt() -> str:
    """The PROMPT constant of benches/generation.rs, so both measure the same text."""
    source = (ROOT / "benches" / "generation.rs").read_text()
    body = re.search(r'const PROMPT: &str = "(.*?)";', source, re.S).group(1)
    return re.sub(r"\\\n", "", body).replace("\\'", "'")


def main() -> None:
    cache = Path(os.environ.get("MARQUEE_CACHE", Path.home() / ".cache" / "marquee"))
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--decode", type=int, default=64)
    args = parser.parse_args()
    model = cache / "assets" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    prompt = bench_prompt()
    print(f"llama-cpp-python {llama_cpp.__version__}, {model.name}, best of 3")
    print("| threads | prompt tokens | prefill tok/s | decode tok/s |\n|---|---|---|---|")
    for threads in args.threads:
        llm = llama_cpp.Llama(model_path=str(model), n_ctx=1024, n_threads=threads,
                              n_threads_batch=threads, verbose=False)
        ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        best = (0.0, 0.0)
        for _ in range(3):
            llm.reset()
            start = time.perf_counter()
            llm.eval(ids)
            prefill = time.perf_counter() - start
            token = llm.sample(top_k=1)
            start = time.perf_counter()
            for _ in range(args.decode - 1):
                llm.eval([token])
                token = llm.sample(top_k=1)
            decode = time.perf_counter() - start
            best = (max(best[0], len(ids) / prefill), max(best[1], (args.decode - 1) / decode))
        print(f"| {threads} | {len(ids)} | {best[0]:.0f} | {best[1]:.1f} |")


if __name__ == "__main__":
    main()
