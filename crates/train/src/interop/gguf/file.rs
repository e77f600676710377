//! The GGUF container (version 3), written: a header, typed key–value metadata, tensor
//! infos, then the tensors, each aligned. Only the value kinds tinygpt's exporter needs.

/// GGUF's data alignment when the file names none.
const ALIGNMENT: usize = 32;

/// A GGUF metadata value (the kinds this exporter writes).
pub(crate) enum Value {
    U32(u32),
    F32(f32),
    Bool(bool),
    Str(String),
    Strs(Vec<String>),
    I32s(Vec<i32>),
}

/// GGUF's type tags.
const TYPE_U32: u32 = 4;
const TYPE_I32: u32 = 5;
const TYPE_F32: u32 = 6;
const TYPE_BOOL: u32 = 7;
const TYPE_STRING: u32 = 8;
const TYPE_ARRAY: u32 = 9;
const GGML_F32: u32 = 0;

#[derive(Default)]
pub(crate) struct Gguf {
    pub metadata: Vec<(String, Value)>,
    /// Name, shape (outermost first, as numpy and safetensors give it), f32 values.
    pub tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl Gguf {
    pub fn put(&mut self, key: &str, value: Value) {
        self.metadata.push((key.into(), value));
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            put_str(&mut out, key);
            put_value(&mut out, value);
        }
        let mut offset = 0;
        for (name, shape, values) in &self.tensors {
            put_str(&mut out, name);
            out.extend_from_slice(&(shape.len() as u32).to_le_bytes());
            // GGUF lists dimensions fastest-varying first: the reverse of numpy's order.
            for &d in shape.iter().rev() {
                out.extend_from_slice(&(d as u64).to_le_bytes());
            }
            out.extend_from_slice(&GGML_F32.to_le_bytes());
            out.extend_from_slice(&(offset as u64).to_le_bytes());
            offset += padded(4 * values.len());
        }
        out.resize(padded(out.len()), 0);
        for (_, _, values) in &self.tensors {
            for v in values {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.resize(padded(out.len()), 0);
        }
        out
    }
}

fn padded(n: usize) -> usize {
    n.div_ceil(ALIGNMENT) * ALIGNMENT
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, value: &Value) {
    let mut tag = |t: u32| out.extend_from_slice(&t.to_le_bytes());
    match value {
        Value::U32(v) => {
            tag(TYPE_U32);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::F32(v) => {
            tag(TYPE_F32);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::Bool(v) => {
            tag(TYPE_BOOL);
            out.push(u8::from(*v));
        }
        Value::Str(s) => {
            tag(TYPE_STRING);
            put_str(out, s);
        }
        Value::Strs(items) => {
            tag(TYPE_ARRAY);
            out.extend_from_slice(&TYPE_STRING.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for s in items {
                put_str(out, s);
            }
        }
        Value::I32s(items) => {
            tag(TYPE_ARRAY);
            out.extend_from_slice(&TYPE_I32.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for v in items {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_aligned_and_offsets_cumulative() {
        let mut file = Gguf::default();
        file.put("k", Value::U32(7));
        file.tensors
            .push(("a".into(), vec![3], vec![1.0, 2.0, 3.0]));
        file.tensors.push(("b".into(), vec![2, 1], vec![4.0, 5.0]));
        let bytes = file.to_bytes();
        assert_eq!(&bytes[..4], b"GGUF");
        assert_eq!(bytes.len() % ALIGNMENT, 0);
        // Header 24 + kv (8+1 + 4 + 4) + info a (8+1 + 4 + 8 + 4 + 8) + info b (8+1 + 4 + 16 + 4 + 8)
        // = 24 + 17 + 33 + 41 = 115 → data at 128; a at 128..140, b at 160..168.
        let f32_at = |i: usize| f32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
        assert_eq!(f32_at(128), 1.0);
        assert_eq!(f32_at(136), 3.0);
        assert_eq!(f32_at(160), 4.0);
        assert_eq!(f32_at(164), 5.0);
        assert_eq!(bytes.len(), 192);
    }
}
