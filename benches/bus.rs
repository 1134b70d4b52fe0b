//! `cargo bench --bench bus`: messages per second through a cluster's chat fan-out on this machine,
//! the primary's bus (no Redis) against Redis pub/sub, both with two workers. One sender on each
//! worker posts MESSAGES_PER_SENDER small messages as fast as the rate limit lets it (its burst is
//! all of them); the figure is every message delivered to both senders (one on each worker)
//! divided by the time from the first send to the last arrival. Clients, server and Redis share
//! the machine's cores, so the figure is a floor.
//!
//! Bounded: fixed counts, three runs each, and every wait has the tests' deadline.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::chat::ChatClient;
use support::redis::Redis;
use support::{temp_dir, App};

const MESSAGES_PER_SENDER: usize = 10_000;
const RUNS: usize = 3;

fn main() {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average before: {}", load.trim());
    report("primary bus", best(|| run(&[])));
    let redis = Redis::start();
    let url = redis.url();
    report("redis pub/sub", best(|| run(&["--redis-url", &url])));
}

fn best(mut measure: impl FnMut() -> Duration) -> Duration {
    (0..RUNS).map(|_| measure()).min().unwrap()
}

fn report(what: &str, took: Duration) {
    let messages = 2 * MESSAGES_PER_SENDER;
    let rate = messages as f64 / took.as_secs_f64();
    println!(
        "{what}: {messages} messages to both workers in {took:.2?} (best of {RUNS}): {rate:.0} messages/s"
    );
}

/// One run on a fresh two-worker cluster started with `extra`: how long until both senders have
/// every message of both.
fn run(extra: &[&str]) -> Duration {
    let data = temp_dir();
    let burst = MESSAGES_PER_SENDER.to_string();
    let mut args = vec!["--mode", "cluster", "--workers", "2", "--data-dir", data.path().to_str().unwrap()];
    args.extend_from_slice(&["--chat-rate", "10000", "--chat-burst", &burst, "--chat-queue", "65536"]);
    args.extend_from_slice(extra);
    let app = App::activated(&args).ready();
    let mut senders = Vec::new();
    let mut pids = Vec::new();
    for attempt in 0..500 {
        let (client, pid) = ChatClient::join_telling_pid(app.addr, "bench", &format!("s{attempt}"));
        if !pids.contains(&pid) {
            pids.push(pid);
            senders.push(client);
        }
        if senders.len() == 2 {
            break;
        }
    }
    assert_eq!(senders.len(), 2, "no client reached the second worker");
    let started = Instant::now();
    for index in 0..MESSAGES_PER_SENDER {
        for sender in &senders {
            sender.say(&format!("message {index}"));
        }
    }
    let receivers: Vec<_> = senders
        .into_iter()
        .map(|mut client| {
            std::thread::spawn(move || {
                for _ in 0..2 * MESSAGES_PER_SENDER {
                    client.expect("a bench message", |frame| frame.get("text").is_some());
                }
            })
        })
        .collect();
    for receiver in receivers {
        receiver.join().unwrap();
    }
    started.elapsed()
}
