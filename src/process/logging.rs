//! Logs go to journald, with structured fields, when stderr is the journal; otherwise readable lines
//! on stderr. `RUST_LOG` filters them (default: info).

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::process::systemd;

pub(crate) fn init() {
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
        .with_ansi(colours_wanted(std::io::stderr().is_terminal()))
        .init();
}

/// Whether a stream gets ANSI colours; `is_terminal` says whether it is a terminal. By the
/// conventions clap follows too (so `--help`, errors, logs and `app status` agree): `NO_COLOR` set
/// to anything non-empty turns colours off (https://no-color.org), `CLICOLOR_FORCE` turns them on
/// without a terminal, otherwise a terminal gets colours and a pipe or a file does not.
pub(crate) fn colours_wanted(is_terminal: bool) -> bool {
    // no-color.org: any non-empty value, "0" included; CLICOLOR_FORCE: any value but "0".
    if std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty()) {
        return false;
    }
    std::env::var_os("CLICOLOR_FORCE").is_some_and(|value| !value.is_empty() && value != "0") || is_terminal
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
