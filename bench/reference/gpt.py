#!/usr/bin/env python3
"""tinygpt's model and training step in plain PyTorch, for speed comparisons side by side.

The same architecture as crates/model: learned token and position embeddings, dropout on
their sum; pre-LayerNorm blocks (the config's layer_norm_eps, 1e-5 by default) of causal
self-attention (query, key and value as one packed projection, softmax(QK^T/sqrt(d)) with the
future masked, no dropout on the pattern) and a 4x GELU MLP (exact erf, or tanh for
activation = "gelu_tanh"), each branch followed by dropout and added to the
residual; a final LayerNorm; the unembedding tied to the token embedding (or its own matrix,
no bias). GPT-2's initialisation (normal 0.02; residual output projections 0.02/sqrt(2L);
zero biases; unit LayerNorm gains). The step is `tinygpt bench`'s: a batch of random tokens,
the mean next-token cross-entropy, backward, global-norm clipping to 1.0, AdamW (lr 1e-3,
betas (0.9, 0.99), eps 1e-8, weight decay 0.1 on 2-D parameters only). Sampling is greedy
with a KV cache, one token at a time from a one-token prompt, as `bench` samples.

    python bench/reference/gpt.py --model '{"vocab_size": 65, ...}' --batch-size 32 --json
    (bench/reference/compare.py passes the model `tinygpt bench --json` reports)
    python bench/reference/gpt.py --model '{...}' --batch-size 8 --check DIR
    (the loss of the step `tinygpt bench --save-first-step DIR` took, redone from its weights)
"""
import argparse
import json
import math
import os
import platform
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, c, n_head, bias, residual_std):
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(c, 3 * c, bias=bias)
        self.output = nn.Linear(c, c, bias=bias)
        nn.init.normal_(self.qkv.weight, std=0.02)
        nn.init.normal_(self.output.weight, std=residual_std)

    def heads(self, x):
        b, t, c = x.shape
        return x.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)

    def forward(self, x, cache=None):
        b, t, c = x.shape
        q, k, v = (self.heads(p) for p in self.qkv(x).split(c, dim=2))
        if cache is not None:
            if "k" in cache:
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        # One new query attends to every cached key: no mask needed then.
        causal = t > 1 or cache is None
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.output(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, c, n_head, bias, dropout, residual_std, eps, activation):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c, eps=eps, bias=bias)
        self.attn = Attention(c, n_head, bias, residual_std)
        self.ln_2 = nn.LayerNorm(c, eps=eps, bias=bias)
        # tinygpt's "gelu" is the exact (erf) form, "gelu_tanh" GPT-2's approximation.
        self.approximate = "tanh" if activation == "gelu_tanh" else "none"
        self.up = nn.Linear(c, 4 * c, bias=bias)
        self.down = nn.Linear(4 * c, c, bias=bias)
        nn.init.normal_(self.up.weight, std=0.02)
        nn.init.normal_(self.down.weight, std=residual_std)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, cache=None):
        x = x + self.dropout(self.attn(self.ln_1(x), cache))
        hidden = F.gelu(self.up(self.ln_2(x)), approximate=self.approximate)
        return x + self.dropout(self.down(hidden))


class Gpt(nn.Module):
    def __init__(self, m):
        super().__init__()
        c, bias = m["n_embd"], m.get("bias", True)
        eps, activation = m.get("layer_norm_eps", 1e-5), m.get("activation", "gelu")
        residual_std = 0.02 / math.sqrt(2 * m["n_layer"])
        self.token_embedding = nn.Embedding(m["vocab_size"], c)
        self.position_embedding = nn.Embedding(m["block_size"], c)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.02)
        self.dropout = nn.Dropout(m.get("dropout", 0.0))
        self.blocks = nn.ModuleList(
            Block(c, m["n_head"], bias, m.get("dropout", 0.0), residual_std, eps, activation)
            for _ in range(m["n_layer"])
        )
        self.ln_f = nn.LayerNorm(c, eps=eps, bias=bias)
        self.unembedding = None
        if not m.get("tie_embeddings", True):
            self.unembedding = nn.Linear(c, m["vocab_size"], bias=False)
            nn.init.normal_(self.unembedding.weight, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, tokens, caches=None, offset=0):
        t = tokens.shape[1]
        positions = torch.arange(offset, offset + t, device=tokens.device)
        x = self.dropout(self.token_embedding(tokens) + self.position_embedding(positions))
        for i, block in enumerate(self.blocks):
            x = block(x, None if caches is None else caches[i])
        x = self.ln_f(x)
        weight = self.token_embedding.weight if self.unembedding is None else self.unembedding.weight
        return x @ weight.t()


def adamw(model):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    plain = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": plain, "weight_decay": 0.0}]
    # foreach: PyTorch's fastest CPU AdamW (fused=True is for GPUs in most builds).
    return torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.99), eps=1e-8, foreach=True)


def train_speed(model, m, batch_size, steps, warmup, compiled):
    optimizer = adamw(model)
    forward = torch.compile(model) if compiled else model
    model.train()
    generator = torch.Generator().manual_seed(0)
    t = m["block_size"]
    times = []
    for i in range(warmup + steps):
        tokens = torch.randint(0, m["vocab_size"], (batch_size, t + 1), generator=generator)
        started = time.perf_counter()
        logits = forward(tokens[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss.item()
        if i >= warmup:
            times.append(time.perf_counter() - started)
    median = statistics.median(times)
    return batch_size * t / median, median, min(times), max(times)


@torch.no_grad()
def sample_speed(model, m, n):
    """Greedy tokens per second, as tinygpt's Generator makes them: a KV cache, and when the
    context would pass block_size, the newest block_size/2 tokens kept and the cache rebuilt."""
    model.eval()
    block = m["block_size"]
    tokens, window_start, caches, seen = [0], 0, None, 0
    started = time.perf_counter()
    for _ in range(n):
        if len(tokens) - window_start > block:
            window_start = len(tokens) - max(block // 2, 1)
            caches = None
        if caches is None:
            caches, seen = [{} for _ in model.blocks], window_start
        feed = torch.tensor([tokens[seen:]])
        logits = model(feed, caches, offset=seen - window_start)
        seen = len(tokens)
        tokens.append(int(logits[0, -1].argmax()))
    return n / (time.perf_counter() - started)


def load_tinygpt(model, path):
    """Loads tinygpt's weights (its safetensors names; Linear weights [d_in, d_out], the
    transpose of PyTorch's; query, key and value packed here as one projection)."""
    from safetensors.torch import load_file

    w = load_file(path)
    t = lambda name: w[name].t()  # noqa: E731
    state = {
        "token_embedding.weight": w["token_embedding.weight"],
        "position_embedding.weight": w["position_embedding.weight"],
        "ln_f.weight": w["ln_f.gamma"],
    }
    if "ln_f.beta" in w:
        state["ln_f.bias"] = w["ln_f.beta"]
    if "unembedding.weight" in w:
        state["unembedding.weight"] = t("unembedding.weight")
    for i in range(len(model.blocks)):
        tiny, ours = f"blocks.{i}.", f"blocks.{i}."
        qkv = [tiny + f"attn.{p}" for p in ("query", "key", "value")]
        state[ours + "attn.qkv.weight"] = torch.cat([t(n + ".weight") for n in qkv], dim=0)
        pairs = [("attn.output", "attn.output"), ("mlp.up", "up"), ("mlp.down", "down")]
        for theirs, mine in pairs:
            state[ours + mine + ".weight"] = t(tiny + theirs + ".weight")
        for norm in ("ln_1", "ln_2"):
            state[ours + norm + ".weight"] = w[tiny + norm + ".gamma"]
        if tiny + "attn.query.bias" in w:
            state[ours + "attn.qkv.bias"] = torch.cat([w[n + ".bias"] for n in qkv])
            for theirs, mine in pairs:
                state[ours + mine + ".bias"] = w[tiny + theirs + ".bias"]
            for norm in ("ln_1", "ln_2"):
                state[ours + norm + ".bias"] = w[tiny + norm + ".beta"]
    model.load_state_dict(state, strict=True)


def check(model, directory):
    """The loss of the first step `tinygpt bench --save-first-step DIR` took, redone here from
    the same weights and batch."""
    load_tinygpt(model, os.path.join(directory, "model.safetensors"))
    with open(os.path.join(directory, "first-step.json")) as f:
        step = json.load(f)
    model.train()  # as tinygpt's step: dropout (0 in a comparable config) on
    logits = model(torch.tensor(step["inputs"]))
    targets = torch.tensor(step["targets"])
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)).item()
    return {"loss_reference": loss, "loss_tinygpt": step["loss"],
            "difference": abs(loss - step["loss"])}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="the model object of `tinygpt bench --json`")
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--sample-tokens", type=int, default=256)
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--json", action="store_true")
    p.add_argument("--check", metavar="DIR",
                   help="redo the first step `tinygpt bench --save-first-step DIR` wrote")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    m = json.loads(args.model)
    model = Gpt(m)
    if args.check:
        print(json.dumps(check(model, args.check)))
        return
    params = sum(p.numel() for p in model.parameters())
    tok_s, median, low, high = train_speed(model, m, args.batch_size, args.steps, args.warmup,
                                           args.compile)
    report = {
        "implementation": "torch.compile" if args.compile else "PyTorch eager",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": args.threads,
        "params": params,
        "batch_size": args.batch_size,
        "block_size": m["block_size"],
        "train_tokens_per_sec": tok_s,
        "step_ms_median": median * 1e3,
        "step_ms_min": low * 1e3,
        "step_ms_max": high * 1e3,
    }
    if args.sample_tokens > 0:
        report["sample_tokens_per_sec_kv_cache"] = sample_speed(model, m, args.sample_tokens)
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
