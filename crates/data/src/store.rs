//! What tinygpt keeps beside a corpus, shared by every stage that writes there: the cache
//! directory's name and how it is made, and the hex digits of the hashes its names and the
//! file memo carry.

use std::path::Path;

/// The directory beside a corpus holding its token caches and its file memo.
pub(crate) const CACHE_DIR: &str = ".tinygpt-cache";

/// Creates a cache directory that keeps itself out of git (it sits beside the corpus, often
/// inside the user's repository).
pub(crate) fn create_cache_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(&ignore, "*\n")?;
    }
    Ok(())
}

/// Lowercase hex digits of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The 32 bytes a 64-digit hex string spells, or `None`.
pub(crate) fn unhex(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
