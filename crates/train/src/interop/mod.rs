//! Models in other tools' formats: Hugging Face `transformers` directories ([`hf`]) and
//! llama.cpp's GGUF ([`gguf`]). Both go through GPT-2's tensor names
//! ([`tinygpt_model::gpt2`]): tinygpt's architecture is GPT-2's.

pub mod gguf;
mod gguf_file;
pub mod hf;
