#!/usr/bin/env python3
"""Writes tests/fixtures/lora/: what peft and torch compute for LoRA training on two tiny
random models, for tests/lora_reference.rs to check Marquee's trainer against.

- a llama: a random `LlamaConfig` (2 layers, hidden 64, 4 query heads sharing 2 KV heads,
  vocab 300, tied embeddings), adapters on q, k, v, o, gate, up and down;
- GPT-2: the tiny random model of tests/fixtures/gpt2_tiny (make_gpt2_fixture.py), adapters
  on c_attn, attn.c_proj, c_fc and mlp.c_proj.

peft's LoRA with rank 4, alpha 8, no dropout and `init_lora_weights=False` (A and B both
random, so that A has a gradient at the first step). The loss is the mean cross-entropy of
the answer tokens only (position i's logits predict token i + 1, counted where answer[i]),
as `Trainable::loss` defines it. Training is 5 steps of torch's AdamW (betas 0.9 / 0.999,
eps 1e-8, weight decay 0.01) with the learning rate of Marquee's `Schedule` (linear warm-up
over 2 steps to 1e-2, then linear decay to 0 at step 6: 5e-3, 1e-2, 1e-2, 7.5e-3, 5e-3),
set per step, and `clip_grad_norm_` to 1.0, which clips the llama's gradients at every step
and GPT-2's at two of the five (so both sides of the limit are checked).

The initial weights are f32 (what the Rust side loads exactly); everything after is
computed in float64, so that the reference's own rounding is far below what the test
judges. Two spots of transformers' llama compute in f32 whatever the input, and are patched
here: `LlamaRMSNorm` normalizes in the input's dtype (the same formula; in f32 it is the
same code path), and the rotary tables are transformers' formula in f32 as before, but with
cos and sin rounded from f64, as the Rust side's tables are (it builds them in f32, as
llama.cpp and our inference path do, with glibc's cosf and sinf): torch's f32 cos and sin
differ from those in the last bit for 24 of the 512 values, which alone kept the f64
comparison at 1e-7. Attention runs through SDPA, which keeps f64 (the llama's eager path
runs softmax in f32).

Each model's file, `{llama,gpt2}.safetensors`, holds (names as Marquee's, `blk.{i}.attn_q`
etc., A (rank × in), B (out × rank)):
- llama only: the base weights in GGUF layout (`token_embd.weight`, `blk.{i}.attn_q.weight`,
  ...): q and k rows are permuted back from transformers' half-split rotary layout to the
  interleaved one, as llama.cpp's convert_hf_to_gguf.py does (and so are lora_B's rows of
  q and k, and their gradients). GPT-2's base weights are the gpt2_tiny fixture itself.
- `init.{name}`: the adapters before training (f32);
- `grad.{name}`: the gradient of the loss at step 0, before clipping (f64);
- `after.{name}`: the adapters after the 5 steps (f64);
- metadata "reference": JSON with the configuration, token ids, answer mask, the loss and
  the gradients' global norm before clipping at each step.

Run once (the fixtures are committed; the tests need no Python), in a venv with torch,
transformers, peft and safetensors (versions used: see the files' metadata):
    ~/.cache/marquee/peft-ref/venv/bin/python scripts/reference/make_lora_fixture.py
"""
import json
import math
import re
from pathlib import Path

import numpy as np
import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
from transformers.models.llama import modeling_llama

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "lora"
GPT2_DIR = ROOT / "tests" / "fixtures" / "gpt2_tiny"

RANK, ALPHA = 4, 8.0
STEPS = 5
# Marquee's train::Schedule { peak, warmup, total }.
PEAK, WARMUP, TOTAL = 1e-2, 2, 6
WEIGHT_DECAY, MAX_GRAD_NORM = 0.01, 1.0

# The last five tokens are the answer.
IDS = [1, 17, 250, 3, 99, 42, 7, 280, 5, 64, 128, 2]
ANSWER = [False] * 7 + [True] * 5


def rate(step: int) -> float:
    """Schedule::rate, exactly."""
    if step < WARMUP:
        return PEAK * (step + 1) / WARMUP
    left = max(TOTAL - step, 0)
    span = max(TOTAL - WARMUP, 1)
    return PEAK * min(max(left / span, 0.0), 1.0)


def rms_norm_in_input_dtype(self, hidden_states):
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


def rope_tables_as_rust(positions: int, dim: int, base: float):
    """Marquee's `generate::rope_tables` (transformers' inverse frequencies and angles in f32)
    with cos and sin rounded from f64, as glibc's cosf and sinf give them: all but one of
    the 512 values are the Rust side's bit for bit."""
    f32 = np.float32
    inv = [f32(1.0) / f32(base ** float(f32(i) / f32(dim))) for i in range(0, dim, 2)]
    angles = [[float(f32(f32(p) * t)) for t in inv] for p in range(positions)]
    cos = torch.tensor([[float(f32(math.cos(a))) for a in row] for row in angles])
    sin = torch.tensor([[float(f32(math.sin(a))) for a in row] for row in angles])
    return torch.cat([cos, cos], -1).double(), torch.cat([sin, sin], -1).double()


def answer_loss(model) -> torch.Tensor:
    logits = model(input_ids=torch.tensor([IDS])).logits[0]
    rows = [i - 1 for i in range(1, len(IDS)) if ANSWER[i]]
    targets = [IDS[i] for i in range(1, len(IDS)) if ANSWER[i]]
    return torch.nn.functional.cross_entropy(logits[rows], torch.tensor(targets))


def train(model, names: dict):
    """Five steps; returns (losses, norms before clipping, step-0 gradients by peft name)."""
    params = dict((n, p) for n, p in model.named_parameters() if p.requires_grad)
    assert set(params) == set(names), sorted(set(params) ^ set(names))
    opt = torch.optim.AdamW(list(params.values()), lr=rate(0), betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=WEIGHT_DECAY)
    losses, norms, grads = [], [], {}
    for step in range(STEPS):
        for group in opt.param_groups:
            group["lr"] = rate(step)
        opt.zero_grad()
        loss = answer_loss(model)
        loss.backward()
        if step == 0:
            grads = {n: p.grad.detach().clone() for n, p in params.items()}
        norm = torch.nn.utils.clip_grad_norm_(list(params.values()), MAX_GRAD_NORM)
        opt.step()
        losses.append(loss.item())
        norms.append(norm.item())
    assert any(n > MAX_GRAD_NORM for n in norms), f"clipping never triggers: {norms}"
    return losses, norms, grads


def adapters(model, names: dict, fix_rows) -> dict:
    """The trained tensors under Marquee's names, rows of B permuted where `fix_rows` says."""
    out = {}
    for n, p in model.named_parameters():
        if p.requires_grad:
            out[names[n]] = fix_rows(names[n], p.detach().clone())
    return out


def peft_names(model, matrix_of: dict) -> dict:
    """peft parameter name → `blk.{i}.{matrix}.lora_a` / `lora_b`."""
    names = {}
    pattern = re.compile(r"\.(?:layers|h)\.(\d+)\.(.+)\.lora_([AB])\.default\.weight$")
    for n, p in model.named_parameters():
        if p.requires_grad:
            m = pattern.search(n)
            assert m, n
            layer, module, ab = m.groups()
            names[n] = f"blk.{layer}.{matrix_of[module]}.lora_{ab.lower()}"
    return names


def run(model, matrix_of, fix_rows, path: Path, base: dict, reference: dict) -> None:
    names = peft_names(model, matrix_of)
    init = {f"init.{k}": v.float().contiguous() for k, v in adapters(model, names, fix_rows).items()}
    model.double()
    losses, norms, grads = train(model, names)
    tensors = dict(base)
    tensors.update(init)
    tensors.update({f"grad.{names[n]}": fix_rows(names[n], g).double().contiguous()
                    for n, g in grads.items()})
    tensors.update({f"after.{k}": v.double().contiguous()
                    for k, v in adapters(model, names, fix_rows).items()})
    reference.update({
        "generated_by": f"torch {torch.__version__}, transformers {transformers.__version__}, "
                        f"peft {peft.__version__}, by scripts/reference/make_lora_fixture.py",
        "lora": {"rank": RANK, "alpha": ALPHA},
        "schedule": {"peak": PEAK, "warmup": WARMUP, "total": TOTAL},
        "weight_decay": WEIGHT_DECAY,
        "max_grad_norm": MAX_GRAD_NORM,
        "steps": STEPS,
        "ids": IDS,
        "answer": ANSWER,
        "losses": losses,
        "grad_norms": norms,
    })
    save_file(tensors, path, metadata={"reference": json.dumps(reference)})
    print(f"{path.name}: losses {losses}, norms before clipping {norms}")


def peft_model(model, targets):
    config = LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=targets,
                        init_lora_weights=False, bias="none",
                        fan_in_fan_out=isinstance(model, GPT2LMHeadModel))
    return get_peft_model(model, config)


def permute(w: torch.Tensor, heads: int) -> torch.Tensor:
    """transformers' half-split rotary rows → GGUF's interleaved ones (convert_hf_to_gguf.py's
    LlamaModel.permute): within each head, row (j, i) of halves j moves to row (i, j)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama() -> None:
    modeling_llama.LlamaRMSNorm.forward = rms_norm_in_input_dtype
    torch.manual_seed(20261201)
    heads, kv = 4, 2
    config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=heads, num_key_value_heads=kv,
                         max_position_embeddings=32, rms_norm_eps=1e-5,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                         tie_word_embeddings=True, attention_bias=False, mlp_bias=False,
                         initializer_range=0.1, attn_implementation="sdpa")
    model = LlamaForCausalLM(config).eval()
    cos, sin = rope_tables_as_rust(32, 16, 10000.0)
    modeling_llama.LlamaRotaryEmbedding.forward = \
        lambda self, x, position_ids: (cos[position_ids].to(x.dtype), sin[position_ids].to(x.dtype))
    with torch.no_grad():
        # transformers starts every norm at 1: give them values, so that their use is checked.
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1.0 + 0.4 * (torch.rand_like(p) - 0.5))
    hf = {k: v.detach().clone() for k, v in model.state_dict().items()}
    gguf = {"token_embd.weight": hf["model.embed_tokens.weight"],
            "output_norm.weight": hf["model.norm.weight"]}
    matrix_of = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                 "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                 "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}"
        gguf[f"blk.{i}.attn_norm.weight"] = hf[f"{p}.input_layernorm.weight"]
        gguf[f"blk.{i}.ffn_norm.weight"] = hf[f"{p}.post_attention_layernorm.weight"]
        for module, matrix in matrix_of.items():
            w = hf[f"{p}.{module}.weight"]
            if matrix == "attn_q":
                w = permute(w, heads)
            elif matrix == "attn_k":
                w = permute(w, kv)
            gguf[f"blk.{i}.{matrix}.weight"] = w.float().contiguous()

    def fix_rows(name: str, t: torch.Tensor) -> torch.Tensor:
        if name.endswith("attn_q.lora_b"):
            return permute(t, heads)
        if name.endswith("attn_k.lora_b"):
            return permute(t, kv)
        return t

    model = peft_model(model, list(m.split(".")[-1] for m in matrix_of))
    reference = {"config": {"block_count": config.num_hidden_layers, "embedding_length": 64,
                            "head_count": heads, "head_count_kv": kv, "head_dim": 16,
                            "rms_norm_eps": 1e-5, "rope_freq_base": 10000.0,
                            "context_length": 32}}
    run(model, matrix_of, fix_rows, OUT / "llama.safetensors", gguf, reference)


def gpt2() -> None:
    torch.manual_seed(20261202)
    model = GPT2LMHeadModel.from_pretrained(GPT2_DIR, attn_implementation="eager").eval()
    matrix_of = {"attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output",
                 "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}
    # peft's "c_proj" matches both the attention's and the MLP's output projection.
    model = peft_model(model, ["c_attn", "c_proj", "c_fc"])
    run(model, matrix_of, lambda _, t: t, OUT / "gpt2.safetensors", {},
        {"base": "tests/fixtures/gpt2_tiny"})


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    llama()
    gpt2()


if __name__ == "__main__":
    main()
