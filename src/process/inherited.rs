//! What a process inherits from whoever started it beyond its arguments, read once.
//!
//! A cluster primary starts each worker with its index, the block of the instance's metrics file
//! leased to it and (without Redis) its end of the chat bus, all named in the worker's environment;
//! the worker's forwarded Socket.IO requests go to sockets in the primary's private directory.
//! `lib::main` reads all of it here, before the logger or a runtime starts any thread, and passes
//! it down as values: nothing in the running server looks these up again.
//!
//! Nothing is removed from the environment either. `std::env::remove_var` and `set_var` race with
//! every other thread that reads the environment (libc's `getenv`, behind DNS resolution, time
//! zones and more), which makes them unsound once a runtime runs (harmonia's `systemd.rs` explains
//! the same choice). The programs this process starts get their environment built explicitly
//! instead: a worker's by its primary (`cluster::worker`), the program a fork-mode process
//! re-executes by `lifecycle`.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::infra::metrics::{self, Share};
use crate::process::cluster::{bus, NOTIFY_DIR_PREFIX, WORKER_INDEX_ENV};

/// What this process was handed at start-up. Outside a cluster (fork mode, a cluster's primary)
/// every field is normally empty.
#[derive(Debug, Default)]
pub(crate) struct Inherited {
    /// This process's index among its primary's workers: set only in a cluster worker, and what
    /// makes the process one.
    pub(crate) worker: Option<u16>,
    /// The block of the instance's shared metrics file leased to this worker; without one the
    /// process counts privately.
    pub(crate) metrics: Option<Share>,
    /// This worker's end of its primary's chat bus (cluster mode without `--redis-url`), owned from
    /// start-up on and close-on-exec, so nothing this process starts gets it.
    pub(crate) bus: Option<OwnedFd>,
    /// The primary's private directory (`app-primary-<pid>` in the runtime directory), where the
    /// workers' notify sockets and their sockets for forwarded Socket.IO requests live.
    pub(crate) primary_runtime_dir: Option<PathBuf>,
}

impl Inherited {
    /// Reads what the environment hands this process. Call once, before any thread starts: the bus
    /// descriptor it takes over must have no other owner.
    pub(crate) fn read() -> Inherited {
        let var = |name: &str| std::env::var(name).ok();
        let worker = var(WORKER_INDEX_ENV).and_then(|index| index.parse().ok());
        let metrics = match (std::env::var_os(metrics::FILE_ENV), var(metrics::BLOCK_ENV)) {
            (Some(file), Some(block)) => {
                block.parse().ok().map(|block| Share { file: PathBuf::from(file), block })
            }
            _ => None,
        };
        // Only a worker has a bus, and only at the descriptor its primary puts it at: any other
        // number (a stray variable, say 3) could name a descriptor something else owns.
        let bus = worker
            .and(var(bus::BUS_FD_ENV))
            .and_then(|fd| fd.parse::<RawFd>().ok())
            .filter(|&fd| fd == bus::BUS_FD)
            .and_then(take_fd);
        let primary_runtime_dir = worker
            .and(std::env::var_os("NOTIFY_SOCKET"))
            .and_then(|socket| primary_dir_of(Path::new(&socket)));
        Inherited { worker, metrics, bus, primary_runtime_dir }
    }
}

/// Takes ownership of inherited descriptor `fd`, marking it close-on-exec; `None` if it is not open.
fn take_fd(fd: RawFd) -> Option<OwnedFd> {
    // SAFETY: fcntl on a descriptor number; it fails with EBADF if nothing is open there.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return None;
    }
    // SAFETY: only called for a worker's BUS_FD, which its primary put there for it alone (the
    // listener is fd 3, and nothing this process opens comes before it takes this one); it is
    // taken once, here, before any thread runs, so nothing else owns or closes it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The primary's directory, from the notify socket it gave this worker there; only a directory
/// named as a primary names it, so a stray NOTIFY_SOCKET is never taken for one.
fn primary_dir_of(notify_socket: &Path) -> Option<PathBuf> {
    let dir = notify_socket.parent()?;
    let name = dir.file_name()?.to_str()?;
    name.starts_with(NOTIFY_DIR_PREFIX).then(|| dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primary_dir_is_the_notify_sockets_when_named_as_a_primary_names_it() {
        let socket = Path::new("/run/app/app-primary-42/worker-0-1.sock");
        assert_eq!(primary_dir_of(socket), Some(PathBuf::from("/run/app/app-primary-42")));
        assert_eq!(primary_dir_of(Path::new("/run/systemd/notify")), None);
    }

    #[test]
    fn a_descriptor_that_is_not_open_is_not_taken() {
        assert!(take_fd(4000).is_none());
    }
}
