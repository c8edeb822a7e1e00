#!/usr/bin/env python3
"""Training-speed peer of `index-builder finetune`: peft LoRA on the same SmolLM2-135M-Instruct
GGUF in torch on the CPU, with the same adapters (rank 8, alpha 16 on q_proj and v_proj),
batch 1, AdamW, loss on the last `--answer` tokens of each sequence only, as finetune's
prompt + tagline examples. Prints training tokens/s (after warm-up steps) and peak RSS.

Run it right after `scripts/bench-training` runs ours, on the same machine (that script runs
both), in a venv with torch, transformers, peft and gguf (PyPI), never from the test command:
    python bench/training/peft_peer.py --tokens 130 --answer 14 --steps 30 --threads 2
"""
import argparse
import os
import resource
import time
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

CACHE = Path(os.environ.get("MARQUEE_CACHE", Path.home() / ".cache" / "marquee"))
GGUF = CACHE / "assets" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=130, help="tokens per example")
    parser.add_argument("--answer", type=int, default=14, help="tokens the loss counts")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3, help="steps left out of the timing")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(
        GGUF.parent, gguf_file=GGUF.name, torch_dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]))
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=5e-4, weight_decay=0.0)
    vocab = model.config.vocab_size
    tokens = 0
    started = None
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            started = time.perf_counter()
        ids = torch.randint(0, vocab, (1, args.tokens))
        labels = ids.clone()
        labels[:, : args.tokens - args.answer] = -100
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        if step >= args.warmup:
            tokens += args.tokens
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peft + torch {torch.__version__}, {args.threads} threads: {args.steps} steps of "
          f"{args.tokens} tokens in {seconds:.1f} s: {tokens / seconds:.0f} tokens/s, "
          f"peak memory {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
