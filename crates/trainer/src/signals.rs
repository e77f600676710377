//! Ctrl-C and SIGTERM: the first asks training to checkpoint and stop at the end of the
//! current step; a second one exits at once (checkpoint writes are atomic, so that is safe).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};

pub fn interrupt_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let handler_flag = flag.clone();
    ctrlc::set_handler(move || {
        if handler_flag.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted again: exiting without a new checkpoint");
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupt: saving a checkpoint after this step (press Ctrl-C again to quit now)"
        );
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(flag)
}
