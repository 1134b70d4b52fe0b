//! Why a serving process or a cluster primary could not start or keep running: what `lib::main`
//! logs before it exits with a failure (and systemd restarts it). The texts are those of the
//! underlying errors, as the journal has always shown them.

use std::io;

use crate::process::listener;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// No listening socket: neither an inherited one nor `--host:--port`.
    #[error(transparent)]
    Listener(#[from] listener::Error),
    /// A worker could not arm the deadline that ends it when its primary dies (see `orphan`).
    #[error(transparent)]
    HardDeadline(io::Error),
    /// What serving needs could not be set up: the runtime, the signal handlers, the listener's
    /// registration with the runtime, the watch on the primary, a primary's private directory.
    #[error(transparent)]
    Start(io::Error),
    /// The application could not be put together (the todo store, the Redis link).
    #[error("{0}")]
    App(String),
    /// The accept loop ended on its own, which it only does when it fails.
    #[error("the accept loop ended unexpectedly: {0}")]
    AcceptLoopEnded(String),
    /// A fork-mode process could not re-execute itself on reload (it has drained by then).
    #[error(transparent)]
    Reexec(io::Error),
}
