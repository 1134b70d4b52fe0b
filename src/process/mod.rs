//! One process's life: where its listening socket comes from, what it tells systemd, its logs, its
//! signals (drain, re-execute on reload), and in cluster mode the primary that supervises workers.
//! What a request does is `http`'s business; this layer only starts, stops and replaces servers.

pub(crate) mod backoff;
pub(crate) mod cluster;
pub(crate) mod descriptors;
mod error;
pub(crate) mod inherited;
pub(crate) mod lifecycle;
pub mod listener;
pub(crate) mod logging;
pub(crate) mod orphan;
pub(crate) mod reload_waiter;
pub(crate) mod signals;
pub(crate) mod systemd;
pub(crate) mod watcher;

pub(crate) use error::Error;
pub(crate) use inherited::Inherited;

/// How often a process's memory is compared with --worker-max-memory: a fork-mode process checks
/// its own, a cluster primary each of its workers'.
pub(crate) const MEMORY_CHECK_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);
