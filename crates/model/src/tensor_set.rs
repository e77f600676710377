//! A model's tensors by name while they are converted to or from another tool's names: each
//! taken out once, its shape checked before it is touched, and whatever is left at the end an
//! error (a tensor the other side has that tinygpt would silently drop).

use std::collections::HashMap;

use crate::weights::{NamedTensor, WeightsError};

/// Tensors by name, taken out one by one; whatever is left at the end was not expected.
pub struct Tensors {
    tensors: HashMap<String, NamedTensor>,
}

impl Tensors {
    pub fn new(tensors: impl IntoIterator<Item = NamedTensor>) -> Self {
        Self {
            tensors: tensors.into_iter().map(|t| (t.name.clone(), t)).collect(),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn take(&mut self, name: &str) -> Result<NamedTensor, WeightsError> {
        self.tensors
            .remove(name)
            .ok_or_else(|| WeightsError::Missing { name: name.into() })
    }

    pub fn take_shaped(
        &mut self,
        name: &str,
        shape: &[usize],
    ) -> Result<NamedTensor, WeightsError> {
        let t = self.take(name)?;
        if t.shape != shape {
            return Err(WeightsError::Shape {
                name: name.into(),
                found: t.shape,
                expected: shape.to_vec(),
            });
        }
        Ok(t)
    }

    pub fn take_or_zeros(&mut self, name: &str, shape: &[usize]) -> NamedTensor {
        self.tensors.remove(name).unwrap_or_else(|| NamedTensor {
            name: name.into(),
            shape: shape.to_vec(),
            values: vec![0.0; shape.iter().product()],
        })
    }

    /// The untied head `name` (`[vocab, n_embd]`, as PyTorch's `lm_head` is) in tinygpt's
    /// layout as `unembedding.weight`, or `None` for a tied model, which may still carry its
    /// head only if it is the embedding itself (`embedding`: its name there and its values).
    pub fn take_head(
        &mut self,
        name: &str,
        shape: &[usize],
        tied: bool,
        embedding: (&str, &[f32]),
    ) -> Result<Option<NamedTensor>, WeightsError> {
        let head = match self.has(name) {
            true => Some(self.take_shaped(name, shape)?),
            false => None,
        };
        match (tied, head) {
            (false, Some(head)) => Ok(Some(head.transposed().renamed("unembedding.weight"))),
            (false, None) => Err(WeightsError::Missing { name: name.into() }),
            (true, Some(head)) if head.values != embedding.1 => Err(WeightsError::Unexpected {
                name: format!(
                    "{name} (differs from {}, yet the config ties them)",
                    embedding.0
                ),
            }),
            (true, _) => Ok(None),
        }
    }

    /// tinygpt's untied unembedding (`[n_embd, vocab]`) as PyTorch's `lm_head.weight`
    /// (`[vocab, n_embd]`); none for a tied model.
    pub fn take_unembedding(&mut self, tied: bool) -> Result<Option<NamedTensor>, WeightsError> {
        if tied {
            return Ok(None);
        }
        let unembedding = self.take("unembedding.weight")?;
        Ok(Some(unembedding.transposed().renamed("lm_head.weight")))
    }

    /// A norm's gain, or ones when it has none (the same function).
    pub fn take_or_ones(&mut self, name: &str, width: usize) -> NamedTensor {
        self.tensors.remove(name).unwrap_or_else(|| NamedTensor {
            name: name.into(),
            shape: vec![width],
            values: vec![1.0; width],
        })
    }

    /// A linear map's weight `[d_in, d_out]` and its bias (zeros when it has none).
    pub fn take_linear(
        &mut self,
        at: &str,
        d_out: usize,
    ) -> Result<(NamedTensor, NamedTensor), WeightsError> {
        let weight = self.take(&format!("{at}.weight"))?;
        let bias = self.take_or_zeros(&format!("{at}.bias"), &[d_out]);
        Ok((weight, bias))
    }

    /// The output width of the matrix `name`.
    pub fn width(&self, name: &str) -> Result<usize, WeightsError> {
        self.tensors
            .get(name)
            .and_then(|t| t.shape.last().copied())
            .ok_or_else(|| WeightsError::Missing { name: name.into() })
    }

    /// `out` sorted by name (as `save_pretrained` writes tensors), once nothing is left over.
    pub fn finish_sorted(
        self,
        mut out: Vec<NamedTensor>,
    ) -> Result<Vec<NamedTensor>, WeightsError> {
        self.finish()?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn finish(self) -> Result<(), WeightsError> {
        let mut left: Vec<String> = self.tensors.into_keys().collect();
        left.sort();
        match left.into_iter().next() {
            Some(name) => Err(WeightsError::Unexpected { name }),
            None => Ok(()),
        }
    }
}
