//! The Prometheus text exposition format of an instance's summed block.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::block::{gauge, Block, RouteLabel, OTHER_STATUS, STATUSES};

pub fn text(total: &Block, worker_restarts: u64) -> String {
    let mut out = String::with_capacity(4096);
    let load = |slot: &std::sync::atomic::AtomicU64| slot.load(Ordering::Relaxed);

    family(&mut out, "app_http_requests_total", "counter", "Requests answered, by route and status.");
    for route in RouteLabel::ALL {
        for (slot, count) in total.requests[route as usize].iter().map(load).enumerate() {
            // Only series that happened: a route x status matrix of zeroes is noise.
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

    family(
        &mut out,
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

    let single = [
        ("app_http_requests_in_flight", "gauge", "Requests being handled now.", gauge(&total.in_flight)),
        (
            "app_connections_refused_total",
            "counter",
            "Connections answered 503 for being over --max-connections.",
            load(&total.connections_refused) as i64,
        ),
        (
            "app_randoms_computations_total",
            "counter",
            "/api/randoms computations completed.",
            load(&total.randoms_computations) as i64,
        ),
        (
            "app_randoms_numbers_total",
            "counter",
            "Random numbers drawn by completed computations.",
            load(&total.randoms_numbers) as i64,
        ),
        (
            "app_todo_commits_total",
            "counter",
            "SQLite commits of todo writes, one fsync of the write-ahead log each.",
            load(&total.todo_commits) as i64,
        ),
        (
            "app_todo_committed_writes_total",
            "counter",
            "Todo writes carried by those commits (divided by the commits: the batch size).",
            load(&total.todo_committed_writes) as i64,
        ),
        ("app_chat_connections_open", "gauge", "Chat connections open now.", gauge(&total.chat_open)),
        (
            "app_chat_connections_total",
            "counter",
            "Chat connections opened.",
            load(&total.chat_connections) as i64,
        ),
        ("app_chat_messages_total", "counter", "Chat messages received.", load(&total.chat_messages) as i64),
        (
            "app_worker_restarts_total",
            "counter",
            "Cluster workers started again after dying (systemd counts the instance's own restarts).",
            worker_restarts as i64,
        ),
    ];
    for (name, kind, help, value) in single {
        family(&mut out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
    out
}

pub(super) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}
