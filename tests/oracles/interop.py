"""The other side's own code, checking tinygpt's exports and imports (tests/interop.rs).

    interop.py check-hf DIR CASE.json     transformers loads DIR; logits, ids, text, generate()
    interop.py make-hf DIR SPEC.json      a random GPT2LMHeadModel saved by save_pretrained,
                                          with its logits on fixed sequences in DIR/expected.json
    interop.py make-llama DIR SPEC.json   the same for LlamaForCausalLM, Qwen3ForCausalLM or
                                          NanoChatForCausalLM (spec "arch"; GQA, biases, dtype,
                                          shards as the spec says)
    interop.py check-gguf FILE HF_DIR CASE.json
                                          ggml's gguf reader reads FILE back against the HF
                                          export of the same run (gpt2, llama or qwen3);
                                          llama.cpp tokenizes and scores

Each prints one JSON object on stdout for the Rust test to judge.
"""

import json
import sys

import numpy as np


def load(path):
    with open(path) as f:
        return json.load(f)


def check_hf(folder, case_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    case = load(case_path)
    model, info = AutoModelForCausalLM.from_pretrained(folder, output_loading_info=True)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    report = {
        "class": type(model).__name__,
        "missing": sorted(info["missing_keys"]),
        "unexpected": sorted(info["unexpected_keys"]),
        "mismatched": [str(m) for m in info["mismatched_keys"]],
        "max_logit_diff": 0.0,
        "ids": [],
        "decoded": [],
    }
    with torch.no_grad():
        for text, ids, logits in zip(case["texts"], case["ids"], case["logits"]):
            ours = model(torch.tensor([ids])).logits[0].numpy()
            diff = float(np.abs(ours - np.array(logits, dtype=np.float32)).max())
            report["max_logit_diff"] = max(report["max_logit_diff"], diff)
            if not case.get("greedy", True):
                continue
            encoded = tokenizer(text)["input_ids"]
            report["ids"].append(encoded)
            report["decoded"].append(tokenizer.decode(encoded))
        if not case.get("greedy", True):
            print(json.dumps(report))
            return
        prompt = tokenizer(case["prompt"], return_tensors="pt")["input_ids"]
        out = model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            do_sample=False,
            max_new_tokens=case["max_new_tokens"],
            pad_token_id=tokenizer.eos_token_id or 0,
        )
        report["greedy"] = tokenizer.decode(out[0])
    print(json.dumps(report))


def make_hf(folder, spec_path):
    """A randomly initialised GPT-2 of `spec`, with a tokenizer, saved as transformers does."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    spec = load(spec_path)
    text, bpe = train_bpe(spec)
    end = bpe.token_to_id("<|endoftext|>")
    config = GPT2Config(
        vocab_size=bpe.get_vocab_size(),
        n_positions=spec["block_size"],
        n_embd=spec["n_embd"],
        n_layer=spec["n_layer"],
        n_head=spec["n_head"],
        activation_function=spec["activation"],
        layer_norm_epsilon=spec["layer_norm_eps"],
        tie_word_embeddings=spec["tie"],
        bos_token_id=end,
        eos_token_id=end,
    )
    torch.manual_seed(spec["seed"])
    model = GPT2LMHeadModel(config)
    # Non-trivial LayerNorms and biases (a fresh model has ones and zeros there).
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_(torch.randn_like(p) * 0.1 + (1.0 if name.endswith("ln_1.weight") else 0.0))
    model.eval()
    model.save_pretrained(folder)
    save_with_expected(bpe, text, spec, folder)


def train_bpe(spec):
    """A byte-level BPE trained on the start of the spec's corpus, with an end-of-text token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    with open(spec["corpus"], encoding="utf-8") as f:
        text = f.read()[:200_000]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec["vocab_size"],
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(text.splitlines(keepends=True), trainer)
    return text, bpe


def save_with_expected(bpe, text, spec, folder):
    """The tokenizer beside the model, and the logits of the model as saved (read back in
    float32, whatever dtype it was saved in) on three fixed sequences in expected.json."""
    import torch
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|endoftext|>", bos_token="<|endoftext|>"
    ).save_pretrained(folder)
    sequences = [
        bpe.encode(text[i * 1000 : i * 1000 + 400]).ids[: spec["block_size"]] for i in range(3)
    ]
    saved = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = [saved(torch.tensor([s])).logits[0].tolist() for s in sequences]
    with open(f"{folder}/expected.json", "w") as f:
        json.dump({"ids": sequences, "logits": logits}, f)
    print(json.dumps({"vocab_size": bpe.get_vocab_size(), "class": type(saved).__name__}))


def make_llama(folder, spec_path):
    """A random Llama, Qwen3 or NanoChat (spec "arch") with a BPE tokenizer, saved by
    save_pretrained in the spec's dtype and shard size, its weights scaled so logits are O(1)
    and its norm gains and biases far from ones and zeros."""
    import torch
    import transformers

    spec = load(spec_path)
    text, bpe = train_bpe(spec)
    end = bpe.token_to_id("<|endoftext|>")
    classes = {
        "llama": ("LlamaConfig", "LlamaForCausalLM"),
        "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
        "nanochat": ("NanoChatConfig", "NanoChatForCausalLM"),
    }
    config_class, model_class = (getattr(transformers, n) for n in classes[spec["arch"]])
    extra = {}
    if spec["arch"] == "llama":
        extra = {"attention_bias": spec["bias"], "mlp_bias": spec["bias"]}
    if spec["arch"] == "nanochat":
        extra = {"final_logit_softcapping": spec["softcap"]}
    if spec["arch"] != "nanochat":
        extra["head_dim"] = spec["n_embd"] // spec["n_head"]
    config = config_class(
        vocab_size=bpe.get_vocab_size(),
        hidden_size=spec["n_embd"],
        intermediate_size=spec["intermediate"],
        num_hidden_layers=spec["n_layer"],
        num_attention_heads=spec["n_head"],
        num_key_value_heads=spec["n_kv_head"],
        max_position_embeddings=spec["block_size"],
        rms_norm_eps=spec["eps"],
        rope_parameters={"rope_type": "default", "rope_theta": spec["rope_theta"]},
        tie_word_embeddings=spec["tie"],
        bos_token_id=end,
        eos_token_id=end,
        pad_token_id=None,
        **extra,
    )
    torch.manual_seed(spec["seed"])
    model = model_class(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                base = 1.0 if name.endswith("norm.weight") else 0.0
                p.copy_(torch.randn_like(p) * 0.2 + base)
            else:
                p.mul_(5.0)
    model.eval()
    dtype = getattr(torch, spec["dtype"])
    model.to(dtype).save_pretrained(folder, max_shard_size=spec["max_shard_size"])
    save_with_expected(bpe, text, spec, folder)


def gguf_tensor(arch, n_layer, hf_name, values, config):
    """What llama.cpp's converter makes of a Hugging Face tensor: its GGUF name (from the gguf
    package's own map) and its values (GPT-2's Conv1D matrices transposed; Llama's query and
    key rows interleaved for llama.cpp's adjacent-pair rotation, as convert_hf_to_gguf.py
    permutes them)."""
    import gguf

    names = gguf.get_tensor_name_map(
        {"gpt2": gguf.MODEL_ARCH.GPT2, "llama": gguf.MODEL_ARCH.LLAMA, "qwen3": gguf.MODEL_ARCH.QWEN3}[arch],
        n_layer,
    )
    name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
    if name is None:
        return None, values
    if arch == "gpt2":
        matrix = values.ndim == 2 and not name.startswith(("token_embd", "position_embd", "output."))
        return name, values.T if matrix else values
    if arch == "llama" and name.endswith(("attn_q.weight", "attn_q.bias", "attn_k.weight", "attn_k.bias")):
        heads = config["num_attention_heads"]
        if ".attn_k." in name:
            heads = config["num_key_value_heads"]
        shape = values.shape
        values = values.reshape(heads, 2, shape[0] // heads // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)
    return name, values


def check_gguf(path, hf_folder, case_path):
    import gguf
    from safetensors.numpy import load_file

    case = load(case_path)
    config = load(f"{hf_folder}/config.json")
    reader = gguf.GGUFReader(path)
    fields = {name: field for name, field in reader.fields.items()}

    def scalar(key):
        return fields[key].contents()

    arch = config["model_type"]
    common = {
        "general.architecture": arch,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "gpt-2",
        "general.file_type": 0,
        "tokenizer.ggml.add_bos_token": False,
    }
    if arch == "gpt2":
        n_layer = config["n_layer"]
        expected_keys = {
            "gpt2.block_count": n_layer,
            "gpt2.context_length": config["n_positions"],
            "gpt2.embedding_length": config["n_embd"],
            "gpt2.feed_forward_length": config.get("n_inner") or 4 * config["n_embd"],
            "gpt2.attention.head_count": config["n_head"],
        }
        close_keys = {"gpt2.attention.layer_norm_epsilon": config["layer_norm_epsilon"]}
    else:
        n_layer = config["num_hidden_layers"]
        expected_keys = {
            f"{arch}.block_count": n_layer,
            f"{arch}.context_length": config["max_position_embeddings"],
            f"{arch}.embedding_length": config["hidden_size"],
            f"{arch}.feed_forward_length": config["intermediate_size"],
            f"{arch}.attention.head_count": config["num_attention_heads"],
            f"{arch}.attention.head_count_kv": config["num_key_value_heads"],
            f"{arch}.rope.dimension_count": config["hidden_size"] // config["num_attention_heads"],
        }
        close_keys = {
            f"{arch}.attention.layer_norm_rms_epsilon": config["rms_norm_eps"],
            f"{arch}.rope.freq_base": config["rope_parameters"]["rope_theta"],
        }
    expected_keys.update(common)
    wrong_keys = [
        f"{k}={scalar(k)!r}, expected {v!r}" for k, v in expected_keys.items() if scalar(k) != v
    ]
    for key, want in close_keys.items():
        if abs(scalar(key) - want) > 1e-6 * want:
            wrong_keys.append(f"{key} {scalar(key)}, expected {want}")
    tokens = scalar("tokenizer.ggml.tokens")
    end = scalar("tokenizer.ggml.eos_token_id")
    if tokens[end] != "<|endoftext|>" or scalar("tokenizer.ggml.bos_token_id") != end:
        wrong_keys.append(f"end of text {end} is {tokens[end]!r}")
    if scalar("tokenizer.ggml.token_type")[end] != 3:
        wrong_keys.append("end of text is not a control token")

    # Every tensor, against the Hugging Face export of the same weights.
    hf = load_file(f"{hf_folder}/model.safetensors")
    in_file = {t.name: t for t in reader.tensors}
    wrong_tensors = []
    for hf_name, values in hf.items():
        name, want = gguf_tensor(arch, n_layer, hf_name, values, config)
        if name is None:
            wrong_tensors.append(f"{hf_name} has no GGUF name")
            continue
        tensor = in_file.pop(name, None)
        if tensor is None:
            wrong_tensors.append(f"{name} missing")
            continue
        got = np.asarray(tensor.data).reshape(tuple(reversed([int(d) for d in tensor.shape])))
        if name in ("token_embd.weight", "output.weight") and got.shape[0] == want.shape[0] + 1:
            # The end-of-text row added for a vocabulary without one: zeros.
            if np.any(got[-1] != 0):
                wrong_tensors.append(f"{name}: the added row is not zero")
            got = got[:-1]
        if got.shape != want.shape or not np.array_equal(got, want):
            wrong_tensors.append(f"{name}: {got.shape} vs {want.shape}")
    wrong_tensors += [f"{name} unexpected" for name in in_file]

    from llama_cpp import Llama

    llm = Llama(
        path,
        n_ctx=expected_keys[f"{arch}.context_length"],
        n_batch=expected_keys[f"{arch}.context_length"],
        logits_all=True,
        type_k=0,  # f32 KV cache
        type_v=0,
        flash_attn=False,
        n_threads=1,
        verbose=False,
    )
    ids = llm.tokenize(case["text"].encode("utf-8"), add_bos=False, special=False)
    diffs, agree, positions = [], 0, 0
    losses = {"theirs": [], "ours": []}
    for window, logits in zip(case["windows"], case["logits"]):
        llm.reset()
        llm.eval(window)
        theirs = np.array(llm.scores[: llm.n_tokens])[:, : len(logits[0])]
        ours = np.array(logits, dtype=np.float32)
        diffs.append(float(np.abs(theirs - ours).max()))
        agree += int((theirs.argmax(1) == ours.argmax(1)).sum())
        positions += len(window)
        for who, scores in (("theirs", theirs), ("ours", ours)):
            losses[who].append(next_token_loss(scores.astype(np.float64), window))
    print(
        json.dumps(
            {
                "wrong_keys": wrong_keys,
                "wrong_tensors": wrong_tensors,
                "tensors": len(reader.tensors),
                "ids": ids,
                "max_logit_diff": max(diffs),
                "argmax_agreement": agree / positions,
                "positions": positions,
                "loss": float(np.mean(losses["theirs"])),
                "our_loss": float(np.mean(losses["ours"])),
            }
        )
    )


def next_token_loss(scores, window):
    """Mean cross-entropy of each position's scores on the window's next token."""
    shifted = scores[:-1] - scores[:-1].max(1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    return float(-np.mean(log_probs[np.arange(len(window) - 1), window[1:]]))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {
        "check-hf": check_hf,
        "make-hf": make_hf,
        "make-llama": make_llama,
        "check-gguf": check_gguf,
    }[command](*args)
