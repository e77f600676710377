//! Parameter accounting from the config alone: no tensor is allocated.
//!
//! Counts follow the lecture's terms: the *weight matrices* are the token embedding, the
//! query, key, value (down) and output (value up) maps and the MLP's up and down maps of every
//! block, and the unembedding. Everything else a real model has — the position embedding,
//! biases, LayerNorm gains and shifts — is an extra. With tied embeddings the unembedding
//! shares the token embedding's numbers, so it adds none.

use crate::config::{Activation, GptConfig, NormKind, Positions};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamCount {
    pub n_layer: usize,
    pub token_embedding: usize,
    /// Each of query and output, per block (and of key and value without GQA).
    pub attention_matrix: usize,
    /// Each of key and value, per block: `n_embd × kv_width` (smaller with GQA).
    pub key_value_matrix: usize,
    /// Each of MLP up and MLP down (and SwiGLU's gate), per block: `n_embd × mlp_hidden`.
    pub mlp_matrix: usize,
    /// MLP matrices per block: 2, or 3 with SwiGLU's gate.
    pub mlp_matrices: usize,
    /// Zero when tied to the token embedding.
    pub unembedding: usize,
    pub position_embedding: usize,
    /// All biases of linear maps, over all blocks.
    pub biases: usize,
    /// All norm gains and shifts: blocks, final, embedding norm and QK-norm.
    pub layer_norms: usize,
    /// Numbers the unembedding would have had if untied (0 when untied).
    pub tied: usize,
}

impl ParamCount {
    pub fn of(config: &GptConfig) -> Self {
        let (c, v, l) = (config.n_embd, config.vocab_size, config.n_layer);
        let kv = config.kv_width();
        let bias = usize::from(config.bias);
        let mlp_matrices = mlp_matrices(config);
        let hidden = config.mlp_hidden();
        // Per block: q, output biases (2c), k, v (2 kv) + MLP biases (hidden per up map, c down).
        let biases_per_block = bias * (2 * c + 2 * kv + (mlp_matrices - 1) * hidden + c);
        let (per_norm, norms, per_qk_norm) = norms(config);
        Self {
            n_layer: l,
            token_embedding: v * c,
            attention_matrix: c * c,
            key_value_matrix: c * kv,
            mlp_matrix: c * hidden,
            mlp_matrices,
            unembedding: if config.tie_embeddings { 0 } else { c * v },
            position_embedding: if config.positions == Positions::Learned {
                config.block_size * c
            } else {
                0
            },
            biases: l * biases_per_block,
            layer_norms: norms * per_norm + l * 2 * per_qk_norm,
            tied: if config.tie_embeddings { c * v } else { 0 },
        }
    }

    /// The total number of parameters, or `None` when it does not fit in 64 bits (an absurd
    /// config): every product and sum is checked, so no size can overflow into a wrong count.
    pub fn checked_total(config: &GptConfig) -> Option<u64> {
        let u = |x: usize| u64::try_from(x).ok();
        let (c, v, l, t) = (
            u(config.n_embd)?,
            u(config.vocab_size)?,
            u(config.n_layer)?,
            u(config.block_size)?,
        );
        let bias = u64::from(config.bias);
        let kv = u(config.kv_heads())?.checked_mul(u(config.head_size())?)?;
        let mlp = u(mlp_matrices(config))?;
        let (per_norm, norms, per_qk_norm) = norms(config);
        let (per_norm, per_qk_norm) = (u(per_norm)?, u(per_qk_norm)?);
        let hidden = match config.mlp_width {
            0 => c.checked_mul(4)?,
            width => u(width)?,
        };
        // 2c² (query, output) + 2c·kv (key, value) + c·hidden per MLP matrix; biases 2c + 2kv
        // + hidden per up map + c.
        let per_block = c
            .checked_mul(c)?
            .checked_mul(2)?
            .checked_add(c.checked_mul(hidden)?.checked_mul(mlp)?)?
            .checked_add(c.checked_mul(kv)?.checked_mul(2)?)?
            .checked_add(
                bias.checked_mul(
                    c.checked_mul(3)?
                        .checked_add(hidden.checked_mul(mlp - 1)?)?
                        .checked_add(kv.checked_mul(2)?)?,
                )?,
            )?
            .checked_add(per_qk_norm.checked_mul(2)?)?;
        let positions = if config.positions == Positions::Learned {
            t
        } else {
            0
        };
        let embeddings = v
            .checked_mul(c)?
            .checked_mul(if config.tie_embeddings { 1 } else { 2 })?
            .checked_add(positions.checked_mul(c)?)?;
        l.checked_mul(per_block)?
            .checked_add(embeddings)?
            .checked_add(u(norms)?.checked_mul(per_norm)?)
    }

    /// Query, key, value and output matrices of one block.
    pub fn attention_per_block(&self) -> usize {
        2 * self.attention_matrix + 2 * self.key_value_matrix
    }

    /// MLP up and down (and gate) matrices of one block.
    pub fn mlp_per_block(&self) -> usize {
        self.mlp_matrices * self.mlp_matrix
    }

    /// The lecture's total: embedding, every block's attention and MLP matrices, unembedding.
    pub fn weight_matrices(&self) -> usize {
        self.token_embedding
            + self.n_layer * (self.attention_per_block() + self.mlp_per_block())
            + self.unembedding
    }

    /// Every trainable number in the model.
    pub fn total(&self) -> usize {
        self.weight_matrices() + self.position_embedding + self.biases + self.layer_norms
    }

    /// Training FLOPs per token (forward + backward): 6 per weight of every matrix multiply
    /// (2 forward, 4 backward; the unembedding multiplies even when tied, the embedding lookup
    /// does not), plus attention's own 12 · n_layer · n_embd · block_size for the scores and
    /// the weighted values — the accounting of the PaLM paper and nanoGPT.
    pub fn train_flops_per_token(&self, config: &GptConfig) -> u64 {
        // u128: a config whose parameters fit in 64 bits can still have FLOPs that do not.
        let u = |x: usize| x as u128;
        let matmul_weights = u(self.n_layer) * u(self.attention_per_block() + self.mlp_per_block())
            + u(config.vocab_size) * u(config.n_embd);
        let attention = 12 * u(config.n_layer) * u(config.n_embd) * u(config.block_size);
        u64::try_from(6 * matmul_weights + attention).unwrap_or(u64::MAX)
    }
}

/// 2 MLP matrices, or 3 with SwiGLU's gate.
fn mlp_matrices(config: &GptConfig) -> usize {
    if config.activation == Activation::Swiglu {
        3
    } else {
        2
    }
}

/// Parameters of one residual-stream norm, how many such norms (two per block, the final
/// one, the embedding's), and parameters of one QK-norm (two per block).
fn norms(config: &GptConfig) -> (usize, usize, usize) {
    let gain = usize::from(config.norm_weight);
    let shift = usize::from(config.bias && config.norm == NormKind::LayerNorm);
    let per_norm = config.n_embd * (gain + shift);
    let count = 2 * config.n_layer + 1 + usize::from(config.embedding_norm);
    let per_qk_norm = if config.qk_norm {
        config.head_size() * (gain + shift)
    } else {
        0
    };
    (per_norm, count, per_qk_norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpt3() -> GptConfig {
        GptConfig {
            vocab_size: 50257,
            block_size: 2048,
            n_layer: 96,
            n_head: 96,
            n_embd: 12288,
            dropout: 0.0,
            bias: true,
            tie_embeddings: false,
            activation: Default::default(),
            layer_norm_eps: 1e-5,
            ..GptConfig::default()
        }
    }

    #[test]
    fn gpt3_matches_the_lecture_matrix_by_matrix() {
        let count = ParamCount::of(&gpt3());
        assert_eq!(count.token_embedding, 617_558_016);
        assert_eq!(count.n_layer * count.attention_matrix, 14_495_514_624);
        assert_eq!(count.n_layer * count.mlp_matrix, 57_982_058_496);
        assert_eq!(count.unembedding, 617_558_016);
        assert_eq!(count.attention_per_block(), 603_979_776);
        assert_eq!(count.weight_matrices(), 175_181_291_520);
    }

    #[test]
    fn checked_total_equals_the_count_and_refuses_overflow() {
        for tie in [true, false] {
            for bias in [true, false] {
                let config = GptConfig {
                    tie_embeddings: tie,
                    bias,
                    ..gpt3()
                };
                assert_eq!(
                    ParamCount::checked_total(&config),
                    Some(ParamCount::of(&config).total() as u64)
                );
            }
        }
        let absurd = GptConfig {
            n_embd: 1 << 31,
            n_layer: 1 << 20,
            ..gpt3()
        };
        assert_eq!(ParamCount::checked_total(&absurd), None);
    }

    #[test]
    fn an_mlp_width_counts_as_its_matrices_and_biases() {
        // Llama-like: SwiGLU, 11/4 × width; GPT-2-like with biases, 3 × width.
        for (activation, width, bias) in [
            (Activation::Swiglu, 88, false),
            (Activation::Gelu, 96, true),
        ] {
            let config = GptConfig {
                vocab_size: 50,
                n_embd: 32,
                n_head: 4,
                activation,
                mlp_width: width,
                bias,
                ..GptConfig::default()
            };
            let count = ParamCount::of(&config);
            assert_eq!(count.mlp_matrix, 32 * width);
            assert_eq!(
                ParamCount::checked_total(&config),
                Some(count.total() as u64)
            );
        }
    }

    #[test]
    fn flops_per_token_by_hand() {
        let config = GptConfig {
            vocab_size: 10,
            block_size: 4,
            n_layer: 1,
            n_head: 1,
            n_embd: 2,
            dropout: 0.0,
            bias: false,
            tie_embeddings: true,
            activation: Default::default(),
            layer_norm_eps: 1e-5,
            ..GptConfig::default()
        };
        // matmul weights: 4·2² + 2·2·8 + 10·2 = 16 + 32 + 20 = 68; attention 12·1·2·4 = 96
        assert_eq!(
            ParamCount::of(&config).train_flops_per_token(&config),
            6 * 68 + 96
        );
    }
}
