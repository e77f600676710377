//! Standard output (and error) that a closed pipe cannot turn into a panic. `println!` panics when its
//! write fails (`tinygpt runs | head -1` closes the pipe after one line); [`outln!`] and
//! [`out!`] return the error instead, every command passes it up with `?`, and `main` ends a
//! command whose reader went away with exit 0 and no message ([`reader_went_away`]). Commands
//! print after their work is done (a run saved, a file exported), so nothing is lost; `sample`
//! stops generating, since what it makes is its output.

/// `println!` that returns the write's error instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*).map_err($crate::output::StdoutError)
    }};
}

/// `print!` that returns the write's error (and flushes) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        write!(stdout, $($arg)*)
            .and_then(|()| stdout.flush())
            .map_err($crate::output::StdoutError)
    }};
}

/// `eprintln!` that never panics: with standard error closed (`tinygpt train 2>&1 | head`)
/// the message is lost, never the run (a panic there would abort the command mid-work).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// A failed write to standard output (told apart from other files' errors, so that only
/// stdout's closed pipe ends a command quietly).
#[derive(Debug, thiserror::Error)]
#[error("cannot write to standard output: {0}")]
pub struct StdoutError(pub std::io::Error);

/// Whether `error` is standard output's reader having gone away (a closed pipe).
pub fn reader_went_away(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<StdoutError>()
            .is_some_and(|e| e.0.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
