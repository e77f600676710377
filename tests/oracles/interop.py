"""The other side's own code, checking tinygpt's exports and imports (tests/interop.rs).

    interop.py check-hf DIR CASE.json     transformers loads DIR; logits, ids, text, generate()
    interop.py make-hf DIR SPEC.json      a random GPT2LMHeadModel saved by save_pretrained,
                                          with its logits on fixed sequences in DIR/expected.json
    interop.py check-gguf FILE HF_DIR CASE.json
                                          ggml's gguf reader reads FILE back against the HF
                                          export of the same run; llama.cpp tokenizes and scores

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
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2LMHeadModel

    case = load(case_path)
    model, info = GPT2LMHeadModel.from_pretrained(folder, output_loading_info=True)
    model.eval()
    auto = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    report = {
        "class": type(auto).__name__,
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
            encoded = tokenizer(text)["input_ids"]
            report["ids"].append(encoded)
            report["decoded"].append(tokenizer.decode(encoded))
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
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    spec = load(spec_path)
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
    PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|endoftext|>", bos_token="<|endoftext|>"
    ).save_pretrained(folder)
    sequences = [
        bpe.encode(text[i * 1000 : i * 1000 + 400]).ids[: spec["block_size"]] for i in range(3)
    ]
    with torch.no_grad():
        logits = [model(torch.tensor([s])).logits[0].tolist() for s in sequences]
    with open(f"{folder}/expected.json", "w") as f:
        json.dump({"ids": sequences, "logits": logits}, f)
    print(json.dumps({"vocab_size": bpe.get_vocab_size()}))


GGUF_NAMES = {
    "wte.weight": "token_embd.weight",
    "wpe.weight": "position_embd.weight",
    "ln_f.weight": "output_norm.weight",
    "ln_f.bias": "output_norm.bias",
    "lm_head.weight": "output.weight",
}
GGUF_MODULES = {
    "ln_1": "attn_norm",
    "attn.c_attn": "attn_qkv",
    "attn.c_proj": "attn_output",
    "ln_2": "ffn_norm",
    "mlp.c_fc": "ffn_up",
    "mlp.c_proj": "ffn_down",
}


def gguf_name(hf_name):
    """llama.cpp's converter's name for a GPT-2 tensor, and whether it transposes it."""
    name = hf_name.removeprefix("transformer.")
    if name in GGUF_NAMES:
        return GGUF_NAMES[name], False
    _, layer, rest = name.split(".", 2)
    module, param = rest.rsplit(".", 1)
    gguf_module = GGUF_MODULES[module]
    return f"blk.{layer}.{gguf_module}.{param}", param == "weight" and "norm" not in gguf_module


def check_gguf(path, hf_folder, case_path):
    import gguf
    from safetensors.numpy import load_file

    case = load(case_path)
    config = load(f"{hf_folder}/config.json")
    reader = gguf.GGUFReader(path)
    fields = {name: field for name, field in reader.fields.items()}

    def scalar(key):
        return fields[key].contents()

    expected_keys = {
        "general.architecture": "gpt2",
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "gpt-2",
        "general.file_type": 0,
        "gpt2.block_count": config["n_layer"],
        "gpt2.context_length": config["n_positions"],
        "gpt2.embedding_length": config["n_embd"],
        "gpt2.feed_forward_length": 4 * config["n_embd"],
        "gpt2.attention.head_count": config["n_head"],
        "tokenizer.ggml.add_bos_token": False,
    }
    wrong_keys = [
        f"{k}={scalar(k)!r}, expected {v!r}" for k, v in expected_keys.items() if scalar(k) != v
    ]
    eps = scalar("gpt2.attention.layer_norm_epsilon")
    if abs(eps - config["layer_norm_epsilon"]) > 1e-6 * config["layer_norm_epsilon"]:
        wrong_keys.append(f"layer_norm_epsilon {eps}")
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
        name, transpose = gguf_name(hf_name)
        want = values.T if transpose else values
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
        n_ctx=config["n_positions"],
        n_batch=config["n_positions"],
        logits_all=True,
        type_k=0,  # f32 KV cache
        type_v=0,
        flash_attn=False,
        n_threads=1,
        verbose=False,
    )
    ids = llm.tokenize(case["text"].encode("utf-8"), add_bos=False, special=False)
    diffs, agree, positions = [], 0, 0
    for window, logits in zip(case["windows"], case["logits"]):
        llm.reset()
        llm.eval(window)
        theirs = np.array(llm.scores[: llm.n_tokens])[:, : len(logits[0])]
        ours = np.array(logits, dtype=np.float32)
        diffs.append(float(np.abs(theirs - ours).max()))
        agree += int((theirs.argmax(1) == ours.argmax(1)).sum())
        positions += len(window)
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
            }
        )
    )


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"check-hf": check_hf, "make-hf": make_hf, "check-gguf": check_gguf}[command](*args)
