//! The file-descriptor limit `--max-connections` needs. systemd gives services a soft
//! `RLIMIT_NOFILE` of 1024 (the hard one is much higher) for the sake of old `select()` code; with
//! the default 1024 connections the process would run out of descriptors before it reaches its
//! own limit, and clients would wait in the accept queue instead of getting the documented 503.
//! So the process raises its soft limit to what it needs, up to the hard limit, and refuses to
//! start when even the hard limit is too low.

use crate::config::{Config, Invalid};

/// Descriptors beyond the client connections: the listener, the runtime's epoll and pipes, the
/// refusal answers in flight (64 at most), SQLite's file and its readers, Redis, notify sockets,
/// log streams, and a cluster primary's per-worker sockets.
const RESERVE: u64 = 256;

/// The soft limit this process runs with once raised.
pub fn ensure_for(config: &Config) -> Result<u64, Invalid> {
    let needed = u64::from(config.max_connections) + RESERVE;
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(Invalid(format!("cannot read RLIMIT_NOFILE: {}", std::io::Error::last_os_error())));
    }
    if limit.rlim_cur >= needed {
        return Ok(limit.rlim_cur);
    }
    if limit.rlim_max < needed {
        return Err(Invalid(format!(
            "--max-connections {} needs {needed} file descriptors ({} for connections and {RESERVE} \
             for the process), but the hard limit (RLIMIT_NOFILE) is {}: lower --max-connections \
             to at most {} or raise the limit (LimitNOFILE= in the unit)",
            config.max_connections,
            config.max_connections,
            limit.rlim_max,
            limit.rlim_max.saturating_sub(RESERVE),
        )));
    }
    let raised = libc::rlimit { rlim_cur: needed, rlim_max: limit.rlim_max };
    // SAFETY: setrlimit reads the struct we own; raising the soft limit up to the hard one needs
    // no privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(Invalid(format!(
            "--max-connections {}: cannot raise RLIMIT_NOFILE to {needed}: {}",
            config.max_connections,
            std::io::Error::last_os_error()
        )));
    }
    Ok(needed)
}
