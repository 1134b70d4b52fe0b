//! The Prometheus text exposition format of an instance's summed block: the request families
//! (counts by route and status, the latency histogram by route), then the families of one series
//! each.

use std::fmt::{Display, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use super::block::{gauge, Block, RouteLabel, OTHER_STATUS, STATUSES};

pub(crate) fn text(total: &Block, worker_restarts: u64) -> String {
    let mut out = String::with_capacity(4096);
    requests(&mut out, total);
    request_durations(&mut out, total);
    for (name, kind, help, value) in SINGLES {
        single(&mut out, name, kind, help, value(total));
    }
    single(
        &mut out,
        "app_worker_restarts_total",
        "counter",
        "Cluster workers started again after dying (systemd counts the instance's own restarts).",
        worker_restarts as i64,
    );
    out
}

/// Where in the block a family's value is.
type Value = fn(&Block) -> i64;

/// The families of one series without labels: name, type, help, and the value.
const SINGLES: [(&str, &str, &str, Value); 9] = [
    ("app_http_requests_in_flight", "gauge", "Requests being handled now.", |b| gauge(&b.in_flight)),
    (
        "app_connections_refused_total",
        "counter",
        "Connections answered 503 for being over --max-connections.",
        |b| count(&b.connections_refused),
    ),
    ("app_randoms_computations_total", "counter", "/api/randoms computations completed.", |b| {
        count(&b.randoms_computations)
    }),
    ("app_randoms_numbers_total", "counter", "Random numbers drawn by completed computations.", |b| {
        count(&b.randoms_numbers)
    }),
    (
        "app_todo_commits_total",
        "counter",
        "SQLite commits of todo writes, one fsync of the write-ahead log each.",
        |b| count(&b.todo_commits),
    ),
    (
        "app_todo_committed_writes_total",
        "counter",
        "Todo writes carried by those commits (divided by the commits: the batch size).",
        |b| count(&b.todo_committed_writes),
    ),
    ("app_chat_connections_open", "gauge", "Chat connections open now.", |b| gauge(&b.chat_open)),
    ("app_chat_connections_total", "counter", "Chat connections opened.", |b| count(&b.chat_connections)),
    ("app_chat_messages_total", "counter", "Chat messages received.", |b| count(&b.chat_messages)),
];

/// `app_http_requests_total` by route and status: only the series that happened, since a
/// route x status matrix of zeroes is noise.
fn requests(out: &mut String, total: &Block) {
    family(out, "app_http_requests_total", "counter", "Requests answered, by route and status.");
    for route in RouteLabel::ALL {
        for (slot, count) in total.requests[route as usize].iter().map(load).enumerate() {
            if count > 0 {
                let status =
                    if slot == OTHER_STATUS { "other".to_string() } else { STATUSES[slot].to_string() };
                let _ = writeln!(
                    out,
                    "app_http_requests_total{{route=\"{}\",status=\"{status}\"}} {count}",
                    route.as_str()
                );
            }
        }
    }
}

/// `app_http_request_duration_seconds`, the histogram by route (routes with no request left out).
fn request_durations(out: &mut String, total: &Block) {
    family(
        out,
        "app_http_request_duration_seconds",
        "histogram",
        "Time from a request's head to its answer, by route.",
    );
    for route in RouteLabel::ALL {
        let buckets: Vec<u64> = total.latency[route as usize].iter().map(load).collect();
        let count: u64 = buckets.iter().sum();
        if count == 0 {
            continue;
        }
        let name = route.as_str();
        let mut cumulative = 0;
        for (bound, in_bucket) in super::bucket_bounds_seconds().zip(&buckets) {
            cumulative += in_bucket;
            let _ = writeln!(
                out,
                "app_http_request_duration_seconds_bucket{{route=\"{name}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let sum = load(&total.latency_sum_us[route as usize]) as f64 / 1e6;
        let _ =
            writeln!(out, "app_http_request_duration_seconds_bucket{{route=\"{name}\",le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "app_http_request_duration_seconds_sum{{route=\"{name}\"}} {sum}");
        let _ = writeln!(out, "app_http_request_duration_seconds_count{{route=\"{name}\"}} {count}");
    }
}

/// A family of one series without labels.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl Display) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

pub(super) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn load(slot: &AtomicU64) -> u64 {
    slot.load(Ordering::Relaxed)
}

/// A counter's value, as the exposition's signed numbers.
fn count(slot: &AtomicU64) -> i64 {
    load(slot) as i64
}
