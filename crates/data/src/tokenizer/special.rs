//! The one special token tinygpt's vocabularies know (character and BPE alike).

/// The special token that separates documents in a byte-level BPE vocabulary.
pub const END_OF_TEXT: &str = "<|endoftext|>";
