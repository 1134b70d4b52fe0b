//! One process's life: where its listening socket comes from, what it tells systemd, its logs, its
//! signals (drain, re-execute on reload), and in cluster mode the primary that supervises workers.
//! What a request does is `http`'s business; this layer only starts, stops and replaces servers.

pub mod backoff;
pub mod cluster;
pub mod descriptors;
mod error;
pub mod inherited;
pub mod lifecycle;
pub mod listener;
pub mod logging;
pub mod orphan;
pub mod reload_waiter;
pub mod signals;
pub mod systemd;
pub mod watcher;

pub use error::Error;
pub use inherited::Inherited;

/// How often a process's memory is compared with --worker-max-memory: a fork-mode process checks
/// its own, a cluster primary each of its workers'.
pub const MEMORY_CHECK_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);
