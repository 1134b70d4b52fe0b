//! Logs go to journald, with structured fields, when stderr is the journal; otherwise readable lines
//! on stderr. `RUST_LOG` filters them (default: info).

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::process::systemd;

pub fn init() {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if systemd::stderr_is_journal() {
        match tracing_journald::layer() {
            Ok(journald) => return tracing_subscriber::registry().with(filter()).with(journald).init(),
            Err(error) => eprintln!("cannot log to journald ({error}); logging to stderr"),
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(|| LossyStderr)
        .with_target(false)
        .with_ansi(crate::cli::color::wanted(std::io::stderr().is_terminal()))
        .init();
}

/// Stderr that drops a line it cannot write. tracing-subscriber reports a failed write with
/// `eprintln!`, which panics when stderr is a closed pipe: a vanished log reader must not take the
/// server down with it.
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
