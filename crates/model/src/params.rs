//! Parameter accounting from the config alone: no tensor is allocated.

use crate::config::GptConfig;

/// Parameter counts by kind, in the lecture's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamCount {
    pub token_embedding: usize,
    pub position_embedding: usize,
    /// Per block: query, key, value (down) and output (value up) matrices.
    pub attention_per_block: usize,
    /// Per block: MLP up and down matrices.
    pub mlp_per_block: usize,
    /// Zero when tied to the token embedding.
    pub unembedding: usize,
    /// All biases of linear maps, over all blocks.
    pub biases: usize,
    /// All LayerNorm gains and shifts, blocks and final.
    pub layer_norms: usize,
    pub n_layer: usize,
}

impl ParamCount {
    pub fn of(config: &GptConfig) -> Self {
        let (c, v, l) = (config.n_embd, config.vocab_size, config.n_layer);
        let bias = usize::from(config.bias);
        // Per block: q, k, v, output biases (4c) + MLP biases (4c up, c down).
        let biases_per_block = bias * (4 * c + 4 * c + c);
        // Gain (and shift) for ln_1 and ln_2 per block, plus the final ln_f.
        let per_layer_norm = c * (1 + bias);
        Self {
            token_embedding: v * c,
            position_embedding: config.block_size * c,
            attention_per_block: 4 * c * c,
            mlp_per_block: 2 * c * 4 * c,
            unembedding: if config.tie_embeddings { 0 } else { c * v },
            biases: l * biases_per_block,
            layer_norms: (2 * l + 1) * per_layer_norm,
            n_layer: l,
        }
    }

    /// Weight matrices only (embeddings, attention, MLP, unembedding).
    pub fn weight_matrices(&self) -> usize {
        self.token_embedding
            + self.position_embedding
            + self.n_layer * (self.attention_per_block + self.mlp_per_block)
            + self.unembedding
    }

    /// Every trainable number in the model.
    pub fn total(&self) -> usize {
        self.weight_matrices() + self.biases + self.layer_norms
    }
}
