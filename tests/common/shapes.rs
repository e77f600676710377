//! The `[model]` switches of each shape another tool runs, on top of
//! `configs/tiny-test.toml`, and the Hugging Face class each is exported as.

/// Four heads of 8 sharing two key/value heads, rotary positions (base 500), RMSNorm and a
/// SwiGLU MLP 88 wide (not 4 × 32): what the Llama family shares; [`shape`] adds each
/// class's own switches.
pub const LLAMA: &[&str] = &[
    "model.n_head=4",
    "model.n_kv_head=2",
    "model.positions=rope",
    "model.rope_base=500.0",
    "model.norm=rms_norm",
    "model.activation=swiglu",
    "model.mlp_width=88",
    "model.layer_norm_eps=1e-6",
];

/// The switches of each shape, on top of `configs/tiny-test.toml`.
pub fn shape(arch: &str) -> Vec<&'static str> {
    let mut switches = LLAMA.to_vec();
    switches.extend_from_slice(match arch {
        "llama" => &["model.bias=true"][..],
        "qwen3" => &[
            "model.qk_norm=true",
            "model.bias=false",
            "model.tie_embeddings=false",
        ],
        "nanochat" => &[
            "model.activation=relu2",
            "model.mlp_width=0",
            "model.norm_weight=false",
            "model.embedding_norm=true",
            "model.qk_norm=true",
            "model.logit_softcap=15.0",
            "model.init=modern",
            "model.tie_embeddings=false",
            "model.bias=false",
            "train.optimizer=muon",
            "train.schedule=wsd",
        ],
        _ => unreachable!("llama, qwen3 or nanochat"),
    });
    switches
}

/// The `transformers` class of each shape.
pub fn class(arch: &str) -> &'static str {
    match arch {
        "llama" => "LlamaForCausalLM",
        "qwen3" => "Qwen3ForCausalLM",
        _ => "NanoChatForCausalLM",
    }
}
