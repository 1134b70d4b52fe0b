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

/// Why the process cannot have the descriptors it needs. A configuration error for the command
/// line (exit status 2, see [`Invalid`]): starting again would not help.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot read RLIMIT_NOFILE: {0}")]
    Read(std::io::Error),
    #[error(
        "--max-connections {max_connections} needs {needed} file descriptors ({max_connections} for \
         connections and {RESERVE} for the process), but the hard limit (RLIMIT_NOFILE) is {hard}: \
         lower --max-connections to at most {at_most} or raise the limit (LimitNOFILE= in the unit)",
        at_most = hard.saturating_sub(RESERVE)
    )]
    HardLimitTooLow { max_connections: u32, needed: u64, hard: u64 },
    #[error("--max-connections {max_connections}: cannot raise RLIMIT_NOFILE to {needed}: {source}")]
    Raise { max_connections: u32, needed: u64, source: std::io::Error },
}

impl From<Error> for Invalid {
    fn from(error: Error) -> Invalid {
        Invalid(error.to_string())
    }
}

/// The soft limit this process runs with once raised.
pub(crate) fn ensure_for(config: &Config) -> Result<u64, Error> {
    let max_connections = config.max_connections;
    let needed = u64::from(max_connections) + RESERVE;
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(Error::Read(std::io::Error::last_os_error()));
    }
    if limit.rlim_cur >= needed {
        return Ok(limit.rlim_cur);
    }
    if limit.rlim_max < needed {
        return Err(Error::HardLimitTooLow { max_connections, needed, hard: limit.rlim_max });
    }
    let raised = libc::rlimit { rlim_cur: needed, rlim_max: limit.rlim_max };
    // SAFETY: setrlimit reads the struct we own; raising the soft limit up to the hard one needs
    // no privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(Error::Raise { max_connections, needed, source: std::io::Error::last_os_error() });
    }
    Ok(needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hard_limit_too_low_says_what_is_needed_and_the_two_ways_out() {
        let error = Error::HardLimitTooLow { max_connections: 1024, needed: 1280, hard: 512 };
        assert_eq!(
            error.to_string(),
            "--max-connections 1024 needs 1280 file descriptors (1024 for connections and 256 for the \
             process), but the hard limit (RLIMIT_NOFILE) is 512: lower --max-connections to at most \
             256 or raise the limit (LimitNOFILE= in the unit)"
        );
    }
}
