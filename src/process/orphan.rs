//! A cluster worker's watch on its primary. Workers must not outlive it: a worker left behind
//! still holds the listening socket, so the kernel goes on accepting connections for an instance
//! that systemd considers dead (and may start again beside it).
//!
//! Two mechanisms, because each covers what the other cannot:
//! - the primary sets `PR_SET_PDEATHSIG` before it executes the worker, so the kernel signals the
//!   worker the moment the primary dies, even while the worker is starting or its event loop is
//!   stuck. The handler only arms `alarm()` (async-signal-safe): SIGALRM then ends the process one
//!   second later whatever it is doing. That is the hard bound.
//! - a pidfd of the primary, polled by the serving loop, is the graceful path: the worker stops
//!   accepting, closes the listener at once, gives requests in flight [`GRACE`] and exits. A pidfd
//!   follows the process, not the thread that forked (which PDEATHSIG follows), and cannot be
//!   fooled by pid reuse.
//!
//! A pipe from the primary would do what the pidfd does, at the cost of an inherited descriptor;
//! the pidfd needs nothing from the primary (Linux 5.3, which every supported distribution has).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use tokio::io::unix::AsyncFd;

/// The signal the kernel sends a worker when its primary dies.
pub(crate) const PARENT_DEATH_SIGNAL: libc::c_int = libc::SIGUSR2;
/// What an orphaned worker's requests in flight get before it exits (under the 1 s alarm).
pub(crate) const GRACE: Duration = Duration::from_millis(500);
const HARD_DEADLINE_SECS: libc::c_uint = 1;

extern "C" fn on_parent_death(_: libc::c_int) {
    // SAFETY: alarm is async-signal-safe.
    unsafe { libc::alarm(HARD_DEADLINE_SECS) };
}

/// Makes PARENT_DEATH_SIGNAL arm the hard deadline. Until this runs the signal's default action
/// (terminate) applies, which is just as right for an orphan.
pub(crate) fn arm_hard_deadline() -> io::Result<()> {
    // SAFETY: a zeroed sigaction with a handler that only calls alarm; installed before any thread.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_parent_death as extern "C" fn(libc::c_int) as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(PARENT_DEATH_SIGNAL, &action, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The primary this worker was started by.
pub(crate) struct Primary(AsyncFd<OwnedFd>);

impl Primary {
    /// Watches the parent process; an error if it is already gone. Must run inside the runtime.
    pub(crate) fn watch() -> io::Result<Primary> {
        // SAFETY: getppid and pidfd_open have no memory-safety preconditions.
        let parent = unsafe { libc::getppid() };
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, parent, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the fd was just opened and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // Reparented meanwhile: the pidfd may name whatever took the pid, and the primary is gone.
        if unsafe { libc::getppid() } != parent {
            return Err(io::Error::other("the cluster primary exited before the worker started"));
        }
        // SAFETY: an OwnedFd's descriptor stays open and the same for as long as the AsyncFd owns it.
        let watched = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) };
        Ok(Primary(watched.map_err(io::Error::from)?))
    }

    /// Resolves once the primary has exited.
    pub(crate) async fn exited(&self) {
        let _ = self.0.readable().await;
    }
}

/// Removes the primary's private directory `dir` (this worker's NOTIFY_SOCKET is in it), which a
/// primary killed with SIGKILL could not remove itself. `dir` is only ever one named as the primary
/// names it (see `crate::process::inherited`).
pub(crate) fn remove_primary_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}
