#!/usr/bin/env python3
"""A tinygpt run config trained in plain PyTorch until the whole val split reaches a loss.

The model is gpt.py's (tinygpt's architecture and switches); the data, split and evaluation are
tinygpt's: a character vocabulary of the corpus's sorted characters, the last
data.val_fraction of the characters as validation, and the val loss as `tinygpt eval` computes
it (windows of block_size at stride block_size, every target scored once, the remainder by one
window aligned to the end). The recipe is the config's [train]: AdamW (decay on 2-D parameters),
or train.optimizer = "muon" (Muon with Nesterov momentum, the quintic Newton-Schulz iteration
and the sqrt(max(1, out/in)) scale on the blocks' matrices; AdamW on the rest), the cosine or
WSD schedule, global-norm clipping. Wall seconds count training steps only, not evaluations.

    python bench/reference/train_to_loss.py --config configs/shakespeare-modern.toml \
        --target 1.7114 --every 50 --json
"""
import argparse
import json
import math
import os
import sys
import time
import tomllib

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt import Gpt  # noqa: E402

TRAIN_DEFAULTS = {
    "batch_size": 32, "max_steps": 2000, "lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 100,
    "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.99, "grad_clip": 1.0, "grad_accum": 1,
    "seed": 1337, "optimizer": "adamw", "muon_lr": 0.02, "muon_momentum": 0.95,
    "muon_momentum_warmup": 300, "muon_weight_decay": 0.0, "schedule": "cosine",
    "warmdown_fraction": 0.2,
}


def learning_rate(step, t):
    """tinygpt's schedule (crates/train/src/schedule.rs), step 1-based."""
    lr, min_lr, warmup = t["lr"], t["min_lr"], t["warmup_steps"]
    if warmup > 0 and step <= warmup:
        return lr * step / warmup
    if t["schedule"] == "wsd":
        warmdown = round(t["warmdown_fraction"] * t["max_steps"])
        start = max(t["max_steps"] - warmdown, 0)
        if step <= start or warmdown == 0:
            return lr
        return lr + min((step - start) / warmdown, 1.0) * (min_lr - lr)
    decay = max(t["max_steps"] - warmup, 0)
    if decay == 0:
        return lr
    progress = min((step - warmup) / decay, 1.0)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (lr - min_lr)


def newton_schulz(g, steps=5):
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.T if g.shape[0] > g.shape[1] else g
    x = x / (x.norm() + 1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if g.shape[0] > g.shape[1] else x


class Muon:
    """Muon for PyTorch's [out, in] weights: the step scale sqrt(max(1, out/in))."""

    def __init__(self, params, t):
        self.params, self.t = params, t
        self.buffers = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self, step, lr):
        t = self.t
        warmup = t["muon_momentum_warmup"]
        start = min(0.85, t["muon_momentum"])
        mu = t["muon_momentum"] if warmup == 0 else \
            start + min(step / warmup, 1.0) * (t["muon_momentum"] - start)
        for p, buf in zip(self.params, self.buffers):
            g = p.grad
            buf.mul_(mu).add_(g, alpha=1 - mu)
            look_ahead = g * (1 - mu) + buf * mu
            scale = math.sqrt(max(1.0, p.shape[0] / p.shape[1]))
            p.mul_(1 - lr * t["muon_weight_decay"])
            p.add_(newton_schulz(look_ahead), alpha=-lr * scale)


def val_loss(model, val, block, batch=32):
    """tinygpt eval's mean loss over every target of the val split."""
    n = len(val)
    span = min(block, n - 1)
    windows, start = [], 0
    while start + span < n:
        windows.append((start, 0))
        start += span
    if start < n - 1:
        last = n - 1 - span
        windows.append((last, start - last))
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(windows), batch):
            chunk = windows[i:i + batch]
            x = torch.stack([val[s:s + span] for s, _ in chunk])
            y = torch.stack([val[s + 1:s + span + 1] for s, _ in chunk])
            logp = F.log_softmax(model(x).float(), dim=-1)
            nll = -logp.gather(2, y.unsqueeze(-1)).squeeze(-1)
            for row, (_, first) in enumerate(chunk):
                total += nll[row, first:].double().sum().item()
                count += span - first
    model.train()
    return total / count


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--target", type=float, required=True, help="val loss to reach")
    p.add_argument("--every", type=int, default=50, help="evaluate every this many steps")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    with open(args.config, "rb") as f:
        config = tomllib.load(f)
    t = {**TRAIN_DEFAULTS, **config.get("train", {})}
    data = config["data"]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    corpus = os.path.join(root, data["corpus"]) if not os.path.isabs(data["corpus"]) else data["corpus"]
    with open(corpus, encoding="utf-8") as f:
        text = f.read()
    chars = sorted(set(text))
    ids = {ch: i for i, ch in enumerate(chars)}
    n_val = int(math.floor(len(text) * data.get("val_fraction", 0.1) + 0.5))
    tokens = torch.tensor([ids[ch] for ch in text], dtype=torch.long)
    train, val = tokens[:len(text) - n_val], tokens[len(text) - n_val:]

    m = dict(config["model"])
    m["vocab_size"] = m.get("vocab_size") or len(chars)
    torch.manual_seed(t["seed"])
    model = Gpt(m)
    block, batch = m["block_size"], t["batch_size"]

    named = list(model.named_parameters())
    muon_params = [p for n, p in named if t["optimizer"] == "muon" and n.startswith("blocks.")
                   and p.dim() == 2]
    muon_ids = {id(p) for p in muon_params}
    rest = [p for _, p in named if id(p) not in muon_ids]
    groups = [{"params": [p for p in rest if p.dim() >= 2], "weight_decay": t["weight_decay"]},
              {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0}]
    adamw = torch.optim.AdamW(groups, lr=t["lr"], betas=(t["beta1"], t["beta2"]), eps=1e-8,
                              foreach=True)
    muon = Muon(muon_params, t) if muon_params else None

    generator = torch.Generator().manual_seed(t["seed"])
    seconds, curve, reached = 0.0, [], None
    for step in range(1, t["max_steps"] + 1):
        started = time.perf_counter()
        lr = learning_rate(step, t)
        adamw.zero_grad(set_to_none=True)
        for p in muon_params:
            p.grad = None
        for _ in range(t["grad_accum"]):
            starts = torch.randint(0, len(train) - block - 1, (batch,), generator=generator)
            x = torch.stack([train[s:s + block] for s in starts])
            y = torch.stack([train[s + 1:s + block + 1] for s in starts])
            logits = model(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            (loss / t["grad_accum"]).backward()
        if t["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t["grad_clip"])
        for group in adamw.param_groups:
            group["lr"] = lr
        adamw.step()
        if muon is not None:
            muon.step(step, lr * t["muon_lr"] / t["lr"])
        seconds += time.perf_counter() - started
        if step % args.every == 0 or step == t["max_steps"]:
            loss = val_loss(model, val, block)
            curve.append({"step": step, "val_loss": loss, "seconds": seconds})
            if not args.json:
                print(f"step {step}: val {loss:.4f} ({seconds:.1f} s)", file=sys.stderr)
            if loss <= args.target:
                reached = curve[-1]
                break
    tokens_per_step = batch * block * t["grad_accum"]
    report = {
        "implementation": "PyTorch eager",
        "torch": torch.__version__,
        "threads": args.threads,
        "config": args.config,
        "target": args.target,
        "reached": reached is not None,
        "steps": reached["step"] if reached else None,
        "tokens": reached["step"] * tokens_per_step if reached else None,
        "seconds": reached["seconds"] if reached else None,
        "tokens_per_sec": curve[-1]["step"] * tokens_per_step / curve[-1]["seconds"],
        "curve": curve,
    }
    print(json.dumps(report) if args.json else json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
