//! The counters of one process, laid out as plain `u64` atomics so that a block can live in memory
//! shared between processes (see `region`) and blocks can be summed or folded slot by slot.

use std::sync::atomic::{AtomicU64, Ordering};

/// The routes requests are counted under. Fixed, so the shared layout is the same in every worker
/// and an unknown path cannot grow the label set (`Unmatched` takes every 404 for a path we lack).
/// Routes of issue 5 (/v1/todos, /ws, /) have their places already.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum RouteLabel {
    Info,
    Health,
    Randoms,
    Metrics,
    Todos,
    Ws,
    SocketIo,
    Root,
    Unmatched,
}

impl RouteLabel {
    pub(crate) const ALL: [RouteLabel; 9] = [
        RouteLabel::Info,
        RouteLabel::Health,
        RouteLabel::Randoms,
        RouteLabel::Metrics,
        RouteLabel::Todos,
        RouteLabel::Ws,
        RouteLabel::SocketIo,
        RouteLabel::Root,
        RouteLabel::Unmatched,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RouteLabel::Info => "/info",
            RouteLabel::Health => "/healthz",
            RouteLabel::Randoms => "/api/randoms",
            RouteLabel::Metrics => "/metrics",
            RouteLabel::Todos => "/v1/todos",
            RouteLabel::Ws => "/ws",
            RouteLabel::SocketIo => "/socket.io/",
            RouteLabel::Root => "/",
            RouteLabel::Unmatched => "unmatched",
        }
    }
}

const ROUTES: usize = RouteLabel::ALL.len();

/// Status codes counted by name; any other lands in the last slot, shown as `status="other"`.
pub(crate) const STATUSES: [u16; 18] =
    [101, 200, 201, 204, 304, 400, 401, 403, 404, 405, 408, 409, 413, 422, 429, 500, 502, 503];
pub(crate) const OTHER_STATUS: usize = STATUSES.len();

/// Upper bounds of the latency histogram in microseconds (Prometheus' `le`, shown in seconds).
pub(crate) const BUCKETS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];

/// Every field is an `AtomicU64` (gauges wrap: their sum over blocks is read as `i64`), so a block
/// is also a flat slice of counters. Zeroed memory is a valid, empty block.
#[repr(C)]
pub(crate) struct Block {
    pub(crate) requests: [[AtomicU64; STATUSES.len() + 1]; ROUTES],
    /// Per route, requests in each bucket (not cumulative); the last slot is above the last bound.
    pub(crate) latency: [[AtomicU64; BUCKETS_US.len() + 1]; ROUTES],
    pub(crate) latency_sum_us: [AtomicU64; ROUTES],
    pub(crate) randoms_computations: AtomicU64,
    pub(crate) randoms_numbers: AtomicU64,
    pub(crate) chat_connections: AtomicU64,
    pub(crate) chat_messages: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    /// SQLite commits of todo writes: one WAL fsync each.
    pub(crate) todo_commits: AtomicU64,
    /// Todo writes those commits carried (their sum over commits: the mean batch size).
    pub(crate) todo_committed_writes: AtomicU64,
    /// Gauge: requests being handled now.
    pub(crate) in_flight: AtomicU64,
    /// Gauge: chat WebSocket connections open now.
    pub(crate) chat_open: AtomicU64,
}

/// Slots of the gauges: a process that has exited holds no request and no connection, so its gauges
/// are dropped, not folded, when its block is retired.
const GAUGES: [usize; 2] =
    [std::mem::offset_of!(Block, in_flight) / 8, std::mem::offset_of!(Block, chat_open) / 8];

pub(crate) const SLOTS: usize = std::mem::size_of::<Block>() / 8;

impl Block {
    pub(crate) fn zeroed() -> Box<Block> {
        // SAFETY: a Block is only AtomicU64s, for which all-zero bytes are a valid value.
        unsafe { Box::new(std::mem::zeroed()) }
    }

    pub(crate) fn slots(&self) -> &[AtomicU64] {
        // SAFETY: repr(C) of AtomicU64 fields and arrays only: no padding, SLOTS of them in a row.
        unsafe { std::slice::from_raw_parts((self as *const Block).cast::<AtomicU64>(), SLOTS) }
    }

    /// Adds every counter and gauge of `other` to this block.
    pub(crate) fn add(&self, other: &Block) {
        for (mine, theirs) in self.slots().iter().zip(other.slots()) {
            mine.fetch_add(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// Moves the counters of `retiring` (a block whose process has exited) into this one and
    /// empties it for the next process. A scrape during the move may count a few requests twice
    /// for the nanoseconds between the add and the clear of one slot, never lose them.
    pub(crate) fn absorb(&self, retiring: &Block) {
        for (slot, (mine, theirs)) in self.slots().iter().zip(retiring.slots()).enumerate() {
            let value = theirs.load(Ordering::Relaxed);
            if !GAUGES.contains(&slot) {
                mine.fetch_add(value, Ordering::Relaxed);
            }
            theirs.fetch_sub(value, Ordering::Relaxed);
        }
    }

    pub(crate) fn status_slot(status: u16) -> usize {
        STATUSES.iter().position(|&known| known == status).unwrap_or(OTHER_STATUS)
    }

    pub(crate) fn bucket_slot(micros: u64) -> usize {
        BUCKETS_US.iter().position(|&bound| micros <= bound).unwrap_or(BUCKETS_US.len())
    }
}

/// A gauge's value from its wrapping `u64` sum.
pub(crate) fn gauge(slot: &AtomicU64) -> i64 {
    slot.load(Ordering::Relaxed) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absorbing_keeps_counters_and_drops_gauges() {
        let (retired, worker) = (Block::zeroed(), Block::zeroed());
        worker.requests[0][1].fetch_add(5, Ordering::Relaxed);
        worker.in_flight.fetch_add(2, Ordering::Relaxed);
        retired.absorb(&worker);
        assert_eq!(retired.requests[0][1].load(Ordering::Relaxed), 5);
        assert_eq!(gauge(&retired.in_flight), 0);
        assert!(worker.slots().iter().all(|slot| slot.load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn gauges_sum_through_wrapping() {
        let (a, b) = (Block::zeroed(), Block::zeroed());
        a.in_flight.fetch_sub(1, Ordering::Relaxed);
        b.in_flight.fetch_add(3, Ordering::Relaxed);
        let total = Block::zeroed();
        total.add(&a);
        total.add(&b);
        assert_eq!(gauge(&total.in_flight), 2);
    }

    #[test]
    fn statuses_and_latencies_find_their_slots() {
        assert_eq!(Block::status_slot(200), 1);
        assert_eq!(Block::status_slot(418), OTHER_STATUS);
        assert_eq!(Block::bucket_slot(0), 0);
        assert_eq!(Block::bucket_slot(500), 0);
        assert_eq!(Block::bucket_slot(501), 1);
        assert_eq!(Block::bucket_slot(u64::MAX), BUCKETS_US.len());
    }
}
