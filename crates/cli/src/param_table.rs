//! A model's parameters matrix by matrix, as text: `tinygpt params` prints it and
//! `tinygpt report` shows it.

use indicatif::HumanCount;
use tinygpt_model::{GptConfig, ParamCount};

/// The parameter table as text.
pub fn table(config: &GptConfig, source: &str) -> String {
    let count = ParamCount::of(config);
    let n = |x: usize| HumanCount(x as u64).to_string();
    let shape = |a: usize, b: usize| format!("{} × {}", n(a), n(b));
    let (c, v, l) = (config.n_embd, config.vocab_size, config.n_layer);
    let mut out = format!(
        "{source}: {l} layers, {} heads of size {}{}, n_embd {}, context {}, vocab {}, {} embeddings\n\n",
        config.n_head,
        config.head_size(),
        match config.kv_heads() {
            kv if kv == config.n_head => String::new(),
            kv => format!(" ({kv} key/value heads)"),
        },
        n(c),
        n(config.block_size),
        n(v),
        if config.tie_embeddings {
            "tied"
        } else {
            "untied"
        }
    );
    let mut row = |name: &str, shape: &str, per_block: &str, total: &str| {
        out += &format!("{name:<28} {shape:>18} {per_block:>16} {total:>20}\n");
    };
    row("matrix", "shape", "per block", "total");
    let (attention, mlp) = (count.attention_matrix, count.mlp_matrix);
    row(
        "token embedding",
        &shape(v, c),
        "",
        &n(count.token_embedding),
    );
    let (kv, key_value) = (config.kv_width(), count.key_value_matrix);
    for (name, width, each) in [
        ("query", c, attention),
        ("key", kv, key_value),
        ("value (down)", kv, key_value),
        ("output (value up)", c, attention),
    ] {
        row(name, &shape(c, width), &n(each), &n(l * each));
    }
    let hidden = config.mlp_hidden();
    row("MLP up", &shape(c, hidden), &n(mlp), &n(l * mlp));
    if count.mlp_matrices == 3 {
        row("MLP gate (SwiGLU)", &shape(c, hidden), &n(mlp), &n(l * mlp));
    }
    row("MLP down", &shape(hidden, c), &n(mlp), &n(l * mlp));
    if count.unembedding > 0 {
        row("unembedding", &shape(c, v), "", &n(count.unembedding));
    } else {
        row("unembedding", "tied", "", "0");
    }
    row("weight matrices", "", "", &n(count.weight_matrices()));
    row(
        "  of which attention",
        "",
        &n(count.attention_per_block()),
        &n(l * count.attention_per_block()),
    );
    row(
        "  of which MLP",
        "",
        &n(count.mlp_per_block()),
        &n(l * count.mlp_per_block()),
    );
    out += "\n";
    let mut row = |name: &str, shape: &str, total: usize| {
        out += &format!("{name:<28} {shape:>18} {:>16} {:>20}\n", "", n(total));
    };
    let positions = match config.positions {
        tinygpt_model::Positions::Learned => shape(config.block_size, c),
        tinygpt_model::Positions::Rope => "none (rotary)".to_string(),
    };
    row("position embedding", &positions, count.position_embedding);
    row("biases", "", count.biases);
    let norms = match config.norm {
        tinygpt_model::NormKind::LayerNorm => "LayerNorm gains and shifts",
        tinygpt_model::NormKind::RmsNorm => "RMSNorm gains",
    };
    row(norms, "", count.layer_norms);
    row("everything", "", count.total());
    if count.tied > 0 {
        out += &format!(
            "(tied: the unembedding reuses the token embedding's {} numbers)\n",
            n(count.tied)
        );
    }
    out += &format!(
        "\ntraining FLOPs per token (6 × matmul weights + attention): {}\n",
        HumanCount(count.train_flops_per_token(config))
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinygpt_train::model_config::model_config;

    #[test]
    fn gpt3_table_shows_the_lecture_totals() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/gpt3.toml");
        let config = model_config(&root, &[]).unwrap();
        let text = table(&config, "gpt3");
        let line = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap()
                .to_string()
        };
        assert!(
            line("weight matrices").ends_with("175,181,291,520"),
            "{text}"
        );
        assert!(
            line("  of which attention").contains(" 603,979,776 "),
            "{text}"
        );
        assert!(line("token embedding").ends_with("617,558,016"), "{text}");
        assert!(line("query").ends_with("14,495,514,624"), "{text}");
        assert!(
            line("output (value up)").ends_with("14,495,514,624"),
            "{text}"
        );
        assert!(line("MLP down").ends_with("57,982,058,496"), "{text}");
        assert!(line("unembedding").ends_with("617,558,016"), "{text}");
    }
}
