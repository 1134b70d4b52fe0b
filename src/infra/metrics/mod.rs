//! The process's counters and what `/metrics` shows of them. Handlers call the small API here
//! (`request_started`, `randoms_computed`, `chat_connected`, `chat_message`); the counting itself is
//! a relaxed atomic add in this process's block, so it costs nothing measurable on the hot path.
//!
//! In cluster mode every worker's block sits in one file shared with its siblings (see `region`),
//! and a scrape answered by any worker sums them: Prometheus sees one instance, not one random
//! worker, and needs no per-worker target.

mod block;
pub(crate) mod process;
mod region;
mod render;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

pub(crate) use block::RouteLabel;
use block::{Block, BUCKETS_US};
use region::Region;
pub(crate) use region::{Lease, Shared};

/// Set by a cluster primary for each worker: the shared file and the block leased to it.
pub(crate) const FILE_ENV: &str = "APP_METRICS_FILE";
pub(crate) const BLOCK_ENV: &str = "APP_METRICS_BLOCK";

/// A worker's share of its instance's counters: the file its primary shares with every worker and
/// the block in it leased to this one (read from [`FILE_ENV`] and [`BLOCK_ENV`] once, at start-up:
/// the process layer's `process/inherited.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Share {
    pub(crate) file: PathBuf,
    pub(crate) block: usize,
}

#[derive(Clone)]
pub(crate) struct Metrics {
    region: Arc<Region>,
    block: usize,
}

impl Metrics {
    /// The block a cluster primary leased to this worker, else a private one. A worker that cannot
    /// map the shared file still counts, privately, and says so.
    pub(crate) fn from_share(share: Option<&Share>) -> Metrics {
        if let Some(Share { file, block }) = share {
            let block = *block;
            match Region::open(file) {
                Ok(region) if block < region.blocks() => {
                    return Metrics { region: Arc::new(region), block };
                }
                Ok(_) => tracing::warn!(block, "metrics block out of range; counting for this process only"),
                Err(error) => tracing::warn!(%error, file = %file.display(),
                    "cannot map the cluster's metrics; counting for this process only"),
            }
        }
        Metrics::private()
    }

    pub(crate) fn private() -> Metrics {
        let region = Region::private().expect("an anonymous mapping of a few kilobytes");
        Metrics { region: Arc::new(region), block: 1 }
    }

    fn own(&self) -> &Block {
        self.region.block(self.block)
    }

    /// Call when a request arrives; the returned timer is finished with the route and status. A
    /// request whose client went away before the answer only leaves the in-flight gauge.
    pub(crate) fn request_started(&self) -> RequestTimer {
        self.own().in_flight.fetch_add(1, Ordering::Relaxed);
        RequestTimer { metrics: self.clone(), started: Instant::now() }
    }

    pub(crate) fn randoms_computed(&self, numbers: u64) {
        self.own().randoms_computations.fetch_add(1, Ordering::Relaxed);
        self.own().randoms_numbers.fetch_add(numbers, Ordering::Relaxed);
    }

    /// For the SQLite store: one commit (one fsync) carrying `writes` todo writes.
    pub(crate) fn todos_committed(&self, writes: usize) {
        self.own().todo_commits.fetch_add(1, Ordering::Relaxed);
        self.own().todo_committed_writes.fetch_add(writes as u64, Ordering::Relaxed);
    }

    pub(crate) fn connection_refused(&self) {
        self.own().connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// For the chat: counts the connection and holds the open-connections gauge until dropped.
    pub(crate) fn chat_connected(&self) -> ChatConnection {
        self.own().chat_connections.fetch_add(1, Ordering::Relaxed);
        self.own().chat_open.fetch_add(1, Ordering::Relaxed);
        ChatConnection(self.clone())
    }

    /// For the chat: one message received from a client.
    pub(crate) fn chat_message(&self) {
        self.own().chat_messages.fetch_add(1, Ordering::Relaxed);
    }

    /// The whole instance in Prometheus' text format (version 0.0.4).
    pub(crate) fn render(&self) -> String {
        let (total, restarts) = self.region.total();
        render::text(&total, restarts)
    }
}

pub(crate) struct RequestTimer {
    metrics: Metrics,
    started: Instant,
}

impl RequestTimer {
    pub(crate) fn finish(self, route: RouteLabel, status: u16) {
        let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let block = self.metrics.own();
        let route = route as usize;
        block.requests[route][Block::status_slot(status)].fetch_add(1, Ordering::Relaxed);
        block.latency[route][Block::bucket_slot(micros)].fetch_add(1, Ordering::Relaxed);
        block.latency_sum_us[route].fetch_add(micros, Ordering::Relaxed);
    }
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        self.metrics.own().in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(crate) struct ChatConnection(Metrics);

impl Drop for ChatConnection {
    fn drop(&mut self) {
        self.0.own().chat_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Histogram bounds in seconds, for the renderer and for tests.
pub(crate) fn bucket_bounds_seconds() -> impl Iterator<Item = f64> {
    BUCKETS_US.iter().map(|&us| us as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_request_is_counted_and_leaves_in_flight() {
        let metrics = Metrics::private();
        let timer = metrics.request_started();
        assert!(metrics.render().contains("app_http_requests_in_flight 1\n"));
        timer.finish(RouteLabel::Info, 200);
        let text = metrics.render();
        assert!(text.contains("app_http_requests_in_flight 0\n"), "{text}");
        assert!(text.contains("app_http_requests_total{route=\"/info\",status=\"200\"} 1\n"), "{text}");
        assert!(text.contains("app_http_request_duration_seconds_count{route=\"/info\"} 1\n"), "{text}");
        assert!(text.contains("app_http_request_duration_seconds_bucket{route=\"/info\",le=\"+Inf\"} 1\n"));
    }

    #[test]
    fn chat_connections_are_a_counter_and_a_gauge() {
        let metrics = Metrics::private();
        let connection = metrics.chat_connected();
        metrics.chat_message();
        assert!(metrics.render().contains("app_chat_connections_open 1\n"));
        drop(connection);
        let text = metrics.render();
        assert!(text.contains("app_chat_connections_open 0\n"));
        assert!(text.contains("app_chat_connections_total 1\n"));
        assert!(text.contains("app_chat_messages_total 1\n"));
    }
}
