//! Ctrl-C, SIGTERM and SIGHUP: the first asks training to checkpoint and stop at the end of
//! the current step, and the process then exits with 128 + the signal's number (130, 143,
//! 129), so a script can tell "interrupted" from "finished". A second signal exits at once
//! (checkpoint writes are atomic, so that is safe).

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tinygpt_train::run::files::remove_temporaries;

/// The number of the first stopping signal received, 0 while none has been.
pub type InterruptFlag = Arc<AtomicI32>;

/// `announce`: say so on stderr (the data-parallel ranks other than 0 stay quiet); `ranks`:
/// the processes training together.
pub fn interrupt_flag(announce: bool, ranks: usize) -> Result<InterruptFlag> {
    let first = if ranks > 1 {
        // The launcher also signals every rank when one dies; then MPI ends this one before
        // the next step, and the last checkpoint stands.
        "\ninterrupt: all ranks stop with a checkpoint after this step (unless a rank died: then the last checkpoint stands)"
    } else {
        "\ninterrupt: saving a checkpoint after this step (press Ctrl-C again to quit now)"
    };
    let flag = InterruptFlag::default();
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).context("cannot install the signal handlers")?;
    let seen = flag.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if seen.swap(signal, Ordering::SeqCst) != 0 {
                    if announce {
                        say!("\ninterrupted again: exiting without a new checkpoint");
                    }
                    remove_temporaries();
                    std::process::exit(128 + signal);
                }
                if announce {
                    say!("{first}");
                }
            }
        })
        .context("cannot start the signal thread")?;
    Ok(flag)
}

/// Every command but `train`: a stopping signal ends the process with 128 + its number, as
/// the default action would, but first removes the temporaries being written (an export's
/// half-written file or folder).
pub fn exit_cleanly_on_signals() -> Result<()> {
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).context("cannot install the signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                remove_temporaries();
                std::process::exit(128 + signal);
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

/// The exit code of a process stopped by `signal`, as a shell reports it.
pub fn exit_code(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(1)
}
