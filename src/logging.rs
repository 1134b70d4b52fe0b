//! Logs go to journald, with structured fields, when stderr is the journal; otherwise readable lines
//! on stderr. `RUST_LOG` filters them (default: info).

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::systemd;

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
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
