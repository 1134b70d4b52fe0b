//! A reload that is over when `systemctl reload` returns, on every systemd version.
//!
//! systemd 253 and newer have `Type=notify-reload`: systemd sends the signal and waits for the
//! service's `RELOADING=1` ... `READY=1`. Debian 12's systemd 252 does not, and with
//! `ExecReload=kill -HUP $MAINPID` the reload job ends as soon as the signal is sent. So the unit's
//! ExecReload= runs `app reload --pid $MAINPID`, which plays the service manager's part for the
//! one reload: it listens on a socket named after the main process, sends SIGHUP, and waits for the
//! same `RELOADING=1` and `READY=1` the process sends systemd. systemd waits for ExecReload= to
//! exit, so the reload job ends when the new processes are ready, and fails when the process
//! reports a failed reload (`X_APP_RELOAD=failed ...`), dies, or stops. A fork-mode process
//! re-executes itself with the same pid, so the new program finds the same socket.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::process::reload_waiter::{socket_path, RESULT_PREFIX};

/// Why a reload did not end well, as `app reload --pid` reports it (and systemd's reload job fails).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot listen on {}: {source}", path.display())]
    Listen { path: PathBuf, source: io::Error },
    /// The process could not be watched (it is not there, or not ours to see).
    #[error("process {pid}: {source}")]
    Watch { pid: u32, source: io::Error },
    #[error("cannot signal process {pid}: {source}")]
    Signal { pid: u32, source: io::Error },
    #[error("process {pid} was not ready again within {patience:?}")]
    Timeout { pid: u32, patience: Duration },
    #[error("poll: {0}")]
    Poll(io::Error),
    #[error("recv: {0}")]
    Recv(io::Error),
    #[error("process {pid} is stopping")]
    Stopping { pid: u32 },
    /// The process said its reload failed (`X_APP_RELOAD=failed ...`): `outcome` is what it said.
    #[error("process {pid}: reload {outcome}")]
    Failed { pid: u32, outcome: String },
    #[error("process {pid} exited during the reload")]
    Exited { pid: u32 },
}

/// Sends `pid` SIGHUP and waits until it has reloaded: `Err` says why the reload failed.
pub(crate) fn reload_and_wait(pid: u32, patience: Duration) -> Result<(), Error> {
    let path = socket_path(pid);
    let _ = std::fs::remove_file(&path);
    let socket = match UnixDatagram::bind(&path) {
        Ok(socket) => socket,
        Err(source) => return Err(Error::Listen { path, source }),
    };
    let _remove = RemoveOnDrop(path);
    let process = pidfd(pid).map_err(|source| Error::Watch { pid, source })?;
    // SAFETY: kill has no memory-safety preconditions; the pidfd keeps the pid from being reused.
    if unsafe { libc::kill(pid as libc::pid_t, libc::SIGHUP) } != 0 {
        return Err(Error::Signal { pid, source: io::Error::last_os_error() });
    }
    let deadline = Instant::now() + patience;
    let mut reloading = false;
    let mut datagram = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout { pid, patience });
        }
        let mut fds = [
            libc::pollfd { fd: socket.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: process.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        let timeout = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: poll reads and writes the two pollfds we own.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) } < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::Poll(error));
        }
        if fds[0].revents & libc::POLLIN != 0 {
            let length = socket.recv(&mut datagram).map_err(Error::Recv)?;
            let text = String::from_utf8_lossy(&datagram[..length]);
            let lines: Vec<&str> = text.lines().collect();
            if lines.contains(&"STOPPING=1") {
                return Err(Error::Stopping { pid });
            }
            reloading |= lines.contains(&"RELOADING=1");
            if reloading && lines.contains(&"READY=1") {
                return match lines.iter().find_map(|line| line.strip_prefix(RESULT_PREFIX)) {
                    Some(outcome) => Err(Error::Failed { pid, outcome: outcome.to_string() }),
                    None => Ok(()),
                };
            }
        } else if fds[1].revents != 0 {
            return Err(Error::Exited { pid });
        }
    }
}

/// A pidfd for `pid`: readable once the process has exited.
fn pidfd(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the fd was just opened and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
