//! Models in other tools' formats: Hugging Face `transformers` directories ([`hf`]) and
//! llama.cpp's GGUF ([`gguf`]). Which class a model is exported as is decided once, by
//! [`tinygpt_model::architecture::Architecture`]; the tensor names of each family live in
//! `tinygpt_model::gpt2` and `tinygpt_model::llama`.

pub mod gguf;
pub mod hf;
