//! One process's life: where its listening socket comes from, what it tells systemd, its logs, its
//! signals (drain, re-execute on reload), and in cluster mode the primary that supervises workers.
//! What a request does is `http`'s business; this layer only starts, stops and replaces servers.

pub mod backoff;
pub mod cluster;
pub mod descriptors;
pub mod lifecycle;
pub mod listener;
pub mod logging;
pub mod orphan;
pub mod systemd;
pub mod watcher;
