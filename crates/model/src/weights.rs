//! Weights on disk as safetensors, named by their place in the module tree
//! (`blocks.0.attn.query.weight`), so files are readable by any safetensors tool and the same
//! weights always give the same bytes.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData, bf16, f16};
use safetensors::tensor::{Dtype, TensorView};

/// A float tensor on the host, with its name.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl NamedTensor {
    /// The same tensor under another name.
    pub fn renamed(self, name: &str) -> Self {
        Self {
            name: name.into(),
            ..self
        }
    }

    /// A matrix's transpose.
    pub fn transposed(&self) -> Self {
        let (rows, cols) = (self.shape[0], self.shape[1]);
        let mut values = vec![0.0; self.values.len()];
        for (r, row) in self.values.chunks_exact(cols).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                values[c * rows + r] = v;
            }
        }
        Self {
            name: self.name.clone(),
            shape: vec![cols, rows],
            values,
        }
    }

    /// Tensors with equal leading dimensions joined along their last dimension.
    pub fn side_by_side(parts: [&Self; 3], name: &str) -> Self {
        let width = |t: &Self| *t.shape.last().expect("a tensor has a dimension");
        let rows = parts[0].values.len() / width(parts[0]);
        let mut values = Vec::with_capacity(parts.iter().map(|t| t.values.len()).sum());
        for r in 0..rows {
            for part in parts {
                let w = width(part);
                values.extend_from_slice(&part.values[r * w..(r + 1) * w]);
            }
        }
        let mut shape = parts[0].shape.clone();
        *shape.last_mut().expect("a tensor has a dimension") = parts.iter().map(|t| width(t)).sum();
        Self {
            name: name.into(),
            shape,
            values,
        }
    }

    /// The inverse of [`Self::side_by_side`]: `n` equal parts of the last dimension.
    pub fn split_side_by_side(&self, n: usize) -> Vec<Self> {
        let total = *self.shape.last().expect("a tensor has a dimension");
        let w = total / n;
        (0..n)
            .map(|k| {
                let values = self
                    .values
                    .chunks_exact(total)
                    .flat_map(|row| &row[k * w..(k + 1) * w])
                    .copied()
                    .collect();
                let mut shape = self.shape.clone();
                *shape.last_mut().expect("a tensor has a dimension") = w;
                Self {
                    name: self.name.clone(),
                    shape,
                    values,
                }
            })
            .collect()
    }
}

/// Why a weights file could not be read into a module.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WeightsError {
    #[error("not a valid safetensors file ({0})")]
    Format(String),
    #[error("tensor {name} is {found}: tinygpt reads f32, f16 and bf16 weights")]
    Dtype { name: String, found: String },
    #[error("tensor {name} missing")]
    Missing { name: String },
    #[error("tensor {name} has shape {found:?}, the model expects {expected:?}")]
    Shape {
        name: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("tensor {name} is not part of the model")]
    Unexpected { name: String },
}

/// Serialises tensors (sorted by name) and string metadata to safetensors bytes.
pub fn to_safetensors(tensors: &[NamedTensor], metadata: HashMap<String, String>) -> Vec<u8> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            let view =
                TensorView::new(Dtype::F32, t.shape.clone(), b).expect("length matches shape");
            (t.name.as_str(), view)
        })
        .collect();
    let metadata = (!metadata.is_empty()).then_some(metadata);
    safetensors::serialize(views, metadata).expect("f32 tensors always serialise")
}

/// Parses safetensors bytes into f32 tensors (in file order) and the metadata.
pub fn from_safetensors(
    bytes: &[u8],
) -> Result<(Vec<NamedTensor>, HashMap<String, String>), WeightsError> {
    let file = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| WeightsError::Format(e.to_string()))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| WeightsError::Format(e.to_string()))?;
    let mut tensors = Vec::new();
    for (name, view) in file.tensors() {
        // Half precision widens to f32 exactly (checkpoints on model hubs are often f16/bf16).
        let values = match view.dtype() {
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => view
                .data()
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => view
                .data()
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(WeightsError::Dtype {
                    name,
                    found: format!("{other:?}"),
                });
            }
        };
        tensors.push(NamedTensor {
            name,
            shape: view.shape().to_vec(),
            values,
        });
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((tensors, header.metadata().clone().unwrap_or_default()))
}

/// Every float parameter of `module`, named by its path, copied to the host.
pub fn module_tensors<M: Module>(module: &M) -> Vec<NamedTensor> {
    #[derive(Default)]
    struct Collect {
        path: Vec<String>,
        tensors: Vec<NamedTensor>,
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let data = param.val().into_data_as::<f32>();
            self.tensors.push(NamedTensor {
                name: self.path.join("."),
                shape: data.shape().to_vec(),
                values: data.as_slice::<f32>().expect("f32 data").to_vec(),
            });
        }
    }
    let mut collect = Collect::default();
    module.visit(&mut collect);
    collect.tensors
}

/// Replaces every float parameter of `module` with the tensor of the same name. Every
/// parameter must be present with its exact shape, and no tensor may be left over.
pub fn load_module_tensors<M: Module>(
    module: M,
    tensors: Vec<NamedTensor>,
) -> Result<M, WeightsError> {
    struct Load {
        path: Vec<String>,
        tensors: HashMap<String, NamedTensor>,
        error: Option<WeightsError>,
    }
    impl ModuleMapper for Load {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (id, tensor, mapper) = param.consume();
            let name = self.path.join(".");
            let expected = tensor.shape().to_vec();
            let loaded = match self.tensors.remove(&name) {
                None => Err(WeightsError::Missing { name }),
                Some(t) if t.shape != expected => Err(WeightsError::Shape {
                    name,
                    found: t.shape,
                    expected,
                }),
                Some(t) => Ok(t),
            };
            let tensor = match loaded {
                Ok(t) => {
                    let loaded =
                        Tensor::from_data(TensorData::new(t.values, t.shape), &tensor.device());
                    if tensor.is_require_grad() {
                        loaded.require_grad()
                    } else {
                        loaded
                    }
                }
                Err(e) => {
                    self.error.get_or_insert(e);
                    tensor
                }
            };
            Param::from_mapped_value(id, tensor, mapper)
        }
    }
    let mut load = Load {
        path: Vec::new(),
        tensors: tensors.into_iter().map(|t| (t.name.clone(), t)).collect(),
        error: None,
    };
    let module = module.map(&mut load);
    if let Some(e) = load.error {
        return Err(e);
    }
    if let Some(name) = load.tensors.into_keys().min() {
        return Err(WeightsError::Unexpected { name });
    }
    Ok(module)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-tensor safetensors file of `dtype` with the little-endian `bytes`.
    fn file(dtype: Dtype, shape: Vec<usize>, bytes: &[u8]) -> Vec<u8> {
        let view = TensorView::new(dtype, shape, bytes).unwrap();
        safetensors::serialize([("w", view)], None).unwrap()
    }

    #[test]
    fn half_precision_widens_exactly_and_other_dtypes_are_named() {
        let values = [1.5f32, -0.099975586, 65504.0, 6.1035156e-5];
        let halves: Vec<u8> = values
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect();
        let (tensors, _) = from_safetensors(&file(Dtype::F16, vec![4], &halves)).unwrap();
        assert_eq!(tensors[0].values, values);

        let brains: Vec<u8> = [1.5f32, -3.0e38, 0.0078125]
            .iter()
            .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
            .collect();
        let (tensors, _) = from_safetensors(&file(Dtype::BF16, vec![3], &brains)).unwrap();
        assert_eq!(
            tensors[0].values,
            [1.5, bf16::from_f32(-3.0e38).to_f32(), 0.0078125]
        );

        let err = from_safetensors(&file(Dtype::I64, vec![1], &[0; 8])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tensor w is I64: tinygpt reads f32, f16 and bf16 weights"
        );
    }
}
