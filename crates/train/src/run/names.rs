//! The names of the files that mark a directory as a run and hold it while one writes it
//! (a leaf: the run directory, its lock and its replacement all use them).

/// The file that marks a directory as a run written by tinygpt.
pub const MARKER: &str = "tinygpt-run.json";
/// The file a process holds locked while it writes the run.
pub const LOCK: &str = ".tinygpt.lock";
