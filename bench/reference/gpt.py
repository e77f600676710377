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

The modern switches of [model] follow crates/model too: positions = "rope" (Llama's halves
convention, rope_base), norm = "rms_norm", norm_weight, embedding_norm, qk_norm (each head's
queries and keys normalised, then rotated), activation = "relu2" | "swiglu", logit_softcap
and init = "modern" (nanochat's scales), n_kv_head (grouped-query attention: key/value heads
shared by n_head / n_kv_head query heads each, as torch's repeat_interleave spreads them).

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
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Norm(nn.Module):
    """model.norm: LayerNorm or RMSNorm, with a gain when norm_weight (and LayerNorm's shift
    when bias), over the last dimension."""

    def __init__(self, width, m):
        super().__init__()
        self.rms = m.get("norm", "layer_norm") == "rms_norm"
        self.eps = m.get("layer_norm_eps", 1e-5)
        self.weight = nn.Parameter(torch.ones(width)) if m.get("norm_weight", True) else None
        shift = m.get("bias", True) and not self.rms
        self.bias = nn.Parameter(torch.zeros(width)) if shift else None
        self.width = width

    def forward(self, x):
        if self.rms:
            return F.rms_norm(x, (self.width,), self.weight, self.eps)
        return F.layer_norm(x, (self.width,), self.weight, self.bias, self.eps)


def rotary_tables(offset, t, d_head, base):
    """cos and sin [t, d_head/2] of RoPE's angles position * base^(-2i/d), in float64."""
    i = torch.arange(d_head // 2, dtype=torch.float64)
    positions = torch.arange(offset, offset + t, dtype=torch.float64)
    angles = positions[:, None] * base ** (-2.0 * i / d_head)[None, :]
    return angles.cos().float(), angles.sin().float()


def rotate(x, cos, sin):
    """x [b, t, h, d]: pairs (i, i + d/2) turned by their position's angle (Llama's halves)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def init_matrix(weight, m, role):
    """tinygpt's init schemes (crates/model/src/layers.rs) for a matrix by role."""
    c, modern = m["n_embd"], m.get("init", "gpt2") == "modern"
    if not modern:
        std = 0.02 / math.sqrt(2 * m["n_layer"]) if role == "residual_output" else 0.02
        nn.init.normal_(weight, std=std)
        return
    bound = math.sqrt(3) / math.sqrt(c)
    if role == "token_embedding":
        nn.init.normal_(weight, std=0.8)
    elif role == "position_embedding":
        nn.init.normal_(weight, std=0.02)
    elif role == "input":
        nn.init.uniform_(weight, -bound, bound)
    elif role == "mlp_up":
        nn.init.uniform_(weight, -0.4 * bound, 0.4 * bound)
    elif role == "residual_output":
        nn.init.zeros_(weight)
    else:  # head
        nn.init.normal_(weight, std=0.001)


def layer_window(m, layer):
    """How many positions layer `layer`'s queries see, itself included (0: all), as tinygpt's
    GptConfig::layer_window reads attention_window and window_pattern."""
    window, pattern = m.get("attention_window", 0), m.get("window_pattern", "")
    if not pattern:
        return window
    last = layer + 1 == m["n_layer"]
    return window if not last and pattern[layer % len(pattern)] == "S" else 0


class Attention(nn.Module):
    def __init__(self, c, n_head, bias, m, window=0):
        super().__init__()
        self.n_head = n_head
        self.window = window
        self.n_kv_head = m.get("n_kv_head", 0) or n_head
        self.kv = self.n_kv_head * (c // n_head)
        self.qkv = nn.Linear(c, c + 2 * self.kv, bias=bias)
        self.output = nn.Linear(c, c, bias=bias)
        init_matrix(self.qkv.weight, m, "input")
        init_matrix(self.output.weight, m, "residual_output")
        d_head = c // n_head
        self.query_norm = Norm(d_head, m) if m.get("qk_norm", False) else None
        self.key_norm = Norm(d_head, m) if m.get("qk_norm", False) else None
        self.rope_base = m.get("rope_base", 10000.0) if m.get("positions") == "rope" else None

    def heads(self, x, n):
        b, t, c = x.shape
        return x.view(b, t, n, c // n).transpose(1, 2)

    def place(self, x, norm, offset, n):
        """Queries or keys [b, t, n·d] as attention uses them: normalised, then rotated."""
        if norm is None and self.rope_base is None:
            return x
        b, t, c = x.shape
        heads = x.view(b, t, n, c // n)
        if norm is not None:
            heads = norm(heads)
        if self.rope_base is not None:
            heads = rotate(heads, *rotary_tables(offset, t, c // n, self.rope_base))
        return heads.reshape(b, t, c)

    def forward(self, x, cache=None, offset=0):
        b, t, c = x.shape
        q, k, v = self.qkv(x).split([c, self.kv, self.kv], dim=2)
        q = self.place(q, self.query_norm, offset, self.n_head)
        k = self.place(k, self.key_norm, offset, self.n_kv_head)
        q = self.heads(q, self.n_head)
        k, v = self.heads(k, self.n_kv_head), self.heads(v, self.n_kv_head)
        if cache is not None:
            if "k" in cache:
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        groups = self.n_head // self.n_kv_head
        if groups > 1:
            k = k.repeat_interleave(groups, dim=1)
            v = v.repeat_interleave(groups, dim=1)
        keys = k.shape[2]
        if self.window and keys > self.window:
            # Query i (the last t of the keys) sees keys i - window + 1 ..= i.
            i = torch.arange(keys - t, keys).unsqueeze(1)
            j = torch.arange(keys).unsqueeze(0)
            seen = (j <= i) & (j > i - self.window)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=seen)
        else:
            # One new query attends to every cached key: no mask needed then.
            causal = t > 1 or cache is None
            y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.output(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, m, layer=0):
        super().__init__()
        c, bias = m["n_embd"], m.get("bias", True)
        self.ln_1 = Norm(c, m)
        self.attn = Attention(c, m["n_head"], bias, m, layer_window(m, layer))
        self.ln_2 = Norm(c, m)
        self.activation = m.get("activation", "gelu")
        self.up = nn.Linear(c, 4 * c, bias=bias)
        init_matrix(self.up.weight, m, "mlp_up")
        self.gate = None
        if self.activation == "swiglu":
            self.gate = nn.Linear(c, 4 * c, bias=bias)
            init_matrix(self.gate.weight, m, "mlp_up")
        self.down = nn.Linear(4 * c, c, bias=bias)
        init_matrix(self.down.weight, m, "residual_output")
        self.dropout = nn.Dropout(m.get("dropout", 0.0))

    def mlp(self, x):
        if self.activation == "swiglu":
            hidden = F.silu(self.gate(x)) * self.up(x)
        elif self.activation == "relu2":
            hidden = F.relu(self.up(x)).square()
        else:
            # tinygpt's "gelu" is the exact (erf) form, "gelu_tanh" GPT-2's approximation.
            approximate = "tanh" if self.activation == "gelu_tanh" else "none"
            hidden = F.gelu(self.up(x), approximate=approximate)
        return self.down(hidden)

    def forward(self, x, cache=None, offset=0):
        x = x + self.dropout(self.attn(self.ln_1(x), cache, offset))
        return x + self.dropout(self.mlp(self.ln_2(x)))


class Gpt(nn.Module):
    def __init__(self, m):
        super().__init__()
        c = m["n_embd"]
        self.token_embedding = nn.Embedding(m["vocab_size"], c)
        init_matrix(self.token_embedding.weight, m, "token_embedding")
        self.position_embedding = None
        if m.get("positions", "learned") == "learned":
            self.position_embedding = nn.Embedding(m["block_size"], c)
            init_matrix(self.position_embedding.weight, m, "position_embedding")
        self.embedding_norm = Norm(c, m) if m.get("embedding_norm", False) else None
        self.dropout = nn.Dropout(m.get("dropout", 0.0))
        self.blocks = nn.ModuleList(Block(m, layer) for layer in range(m["n_layer"]))
        self.ln_f = Norm(c, m)
        self.unembedding = None
        if not m.get("tie_embeddings", True):
            self.unembedding = nn.Linear(c, m["vocab_size"], bias=False)
            init_matrix(self.unembedding.weight, m, "head")
        self.softcap = m.get("logit_softcap", 0.0)
        for module in self.modules():
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, tokens, caches=None, offset=0):
        t = tokens.shape[1]
        x = self.token_embedding(tokens)
        if self.position_embedding is not None:
            x = x + self.position_embedding(torch.arange(offset, offset + t, device=tokens.device))
        if self.embedding_norm is not None:
            x = self.embedding_norm(x)
        x = self.dropout(x)
        for i, block in enumerate(self.blocks):
            x = block(x, None if caches is None else caches[i], offset)
        x = self.ln_f(x)
        weight = self.token_embedding.weight if self.unembedding is None else self.unembedding.weight
        logits = x @ weight.t()
        if self.softcap > 0:
            logits = self.softcap * torch.tanh(logits / self.softcap)
        return logits


def adamw(model):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    plain = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": plain, "weight_decay": 0.0}]
    # foreach: PyTorch's fastest CPU AdamW (fused=True is for GPUs in most builds).
    return torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.99), eps=1e-8, foreach=True)


def train_speed(model, m, batch_size, steps, warmup, compiled, bf16=False):
    optimizer = adamw(model)
    forward = torch.compile(model) if compiled else model
    model.train()
    generator = torch.Generator().manual_seed(0)
    t = m["block_size"]
    times = []
    for i in range(warmup + steps):
        tokens = torch.randint(0, m["vocab_size"], (batch_size, t + 1), generator=generator)
        started = time.perf_counter()
        # bf16 autocast: oneDNN's AVX512_BF16 (or AMX) products, fp32 weights and optimizer.
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = forward(tokens[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                   tokens[:, 1:].reshape(-1))
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
    state = {"token_embedding.weight": w["token_embedding.weight"]}

    def norm(theirs, mine):
        if theirs + ".gamma" in w:
            state[mine + ".weight"] = w[theirs + ".gamma"]
        if theirs + ".beta" in w:
            state[mine + ".bias"] = w[theirs + ".beta"]

    if "position_embedding.weight" in w:
        state["position_embedding.weight"] = w["position_embedding.weight"]
    norm("ln_f", "ln_f")
    norm("embedding_norm", "embedding_norm")
    if "unembedding.weight" in w:
        state["unembedding.weight"] = t("unembedding.weight")
    for i in range(len(model.blocks)):
        tiny, ours = f"blocks.{i}.", f"blocks.{i}."
        qkv = [tiny + f"attn.{p}" for p in ("query", "key", "value")]
        state[ours + "attn.qkv.weight"] = torch.cat([t(n + ".weight") for n in qkv], dim=0)
        pairs = [("attn.output", "attn.output"), ("mlp.up", "up"), ("mlp.down", "down")]
        if tiny + "mlp.gate.weight" in w:
            pairs.append(("mlp.gate", "gate"))
        for theirs, mine in pairs:
            state[ours + mine + ".weight"] = t(tiny + theirs + ".weight")
        for part in ("ln_1", "ln_2", "attn.query_norm", "attn.key_norm"):
            norm(tiny + part, ours + part)
        if tiny + "attn.query.bias" in w:
            state[ours + "attn.qkv.bias"] = torch.cat([w[n + ".bias"] for n in qkv])
            for theirs, mine in pairs:
                state[ours + mine + ".bias"] = w[tiny + theirs + ".bias"]
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
    p.add_argument("--bf16", action="store_true",
                   help="train under torch.autocast(\"cpu\", dtype=torch.bfloat16)")
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
                                           args.compile, args.bf16)
    report = {
        "implementation": ("torch.compile" if args.compile else "PyTorch eager")
        + (" bf16 autocast" if args.bf16 else ""),
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
        # ru_maxrss is in KiB on Linux: the process's peak, torch itself included.
        "peak_memory_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
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
