//! `cargo bench --bench capacity -- MODE STACK`: how many chat sockets this 2-core machine carries.
//!
//! - `idle ws|socketio|node`: memory per idle chat socket. One fresh process, 10,000 sockets in 100
//!   rooms from several loopback source addresses, each reading as an idle browser tab does: the
//!   process's resident memory with them open, less before, per socket; best of 3 rounds.
//! - `load ws|socketio|node`: 10,000 sockets over four instances sharing a real Redis, in 100
//!   rooms, one sender per room posting so that clients receive 10,000 messages a second for 20 s:
//!   lost messages, delivery delay p50/p99/max, resident memory and CPU per instance.
//!
//! `ws` is our `/ws`, `socketio` our `/socket.io/`, `node` Node's Socket.IO with
//! `@socket.io/redis-adapter` (bench/node-socketio, installed with `npm ci`), the last two driven
//! by the same Socket.IO client. No arguments: `idle ws` then `load ws`. Counts from the
//! environment: CAPACITY_SOCKETS (10000), CAPACITY_ROOMS (100), CAPACITY_SECONDS (20),
//! CAPACITY_DELIVERIES (10000 a second), CAPACITY_ROUNDS (3, idle only); CAPACITY_APP runs another
//! build of `app` (to compare before and after a change).
//!
//! Bounded: fixed counts, and every wait has a deadline. Lines starting `CAPACITY_ROW` are the
//! table rows bench/chat-capacity.sh writes into docs/benchmarks.md.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "capacity/client.rs"]
mod client;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use app::infra::procfs;
use client::{Incoming, Protocol, Socket};
use support::redis::Redis;
use support::{temp_dir, App, TempDir};

/// Loopback source addresses the clients bind before connecting (127.0.0.2 ..= 127.0.0.9).
const SOURCES: u8 = 8;
/// Handshakes in flight at once.
const CONNECTING: usize = 200;
/// Time for the join notices of thousands of clients to settle before measuring.
const SETTLE: Duration = Duration::from_secs(3);
/// How long, after the last send, deliveries may still arrive before the rest count as lost.
const DELIVERY_GRACE: Duration = Duration::from_secs(10);
const INSTANCES: usize = 4;
/// The text of the message that tells when the join notices have all been delivered.
const PROBE: &str = "probe";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stack {
    Ours(Protocol),
    Node,
}

impl Stack {
    fn parse(word: &str) -> Stack {
        match word {
            "node" => Stack::Node,
            other => Stack::Ours(
                Protocol::parse(other)
                    .unwrap_or_else(|| panic!("stack: ws, socketio or node, not {other:?}")),
            ),
        }
    }

    fn protocol(self) -> Protocol {
        match self {
            Stack::Ours(protocol) => protocol,
            Stack::Node => Protocol::SocketIo,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Stack::Ours(Protocol::Ws) => "ours /ws",
            Stack::Ours(Protocol::SocketIo) => "ours /socket.io/",
            Stack::Node => "Node Socket.IO + redis-adapter",
        }
    }
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: a count")))
        .unwrap_or(default)
}

fn main() {
    raise_nofile();
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let runs: Vec<(String, Stack)> = match args.as_slice() {
        [] => vec![("idle".into(), Stack::Ours(Protocol::Ws)), ("load".into(), Stack::Ours(Protocol::Ws))],
        [mode, stack] => vec![(mode.clone(), Stack::parse(stack))],
        _ => panic!("usage: cargo bench --bench capacity -- [idle|load ws|socketio|node]"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    for (mode, stack) in runs {
        match mode.as_str() {
            "idle" => runtime.block_on(idle(stack)),
            "load" => runtime.block_on(load(stack)),
            other => panic!("mode: idle or load, not {other:?}"),
        }
    }
}

/// 10,000 client sockets need 10,000 descriptors: the soft limit up to the hard one.
fn raise_nofile() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes only the struct given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    support::set_nofile(limit.rlim_max, limit.rlim_max).unwrap();
}

/// The processes under test: our instances or Node's, and the Redis they share.
struct Servers {
    addrs: Vec<SocketAddr>,
    pids: Vec<i32>,
    _apps: Vec<App>,
    _data: Vec<TempDir>,
    node: Vec<Child>,
    _redis: Option<Redis>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.node {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start(stack: Stack, instances: usize, redis: Option<Redis>) -> Servers {
    let url = redis.as_ref().map(Redis::url);
    let mut servers =
        Servers { addrs: vec![], pids: vec![], _apps: vec![], _data: vec![], node: vec![], _redis: None };
    for _ in 0..instances {
        match stack {
            Stack::Ours(_) => {
                let data = temp_dir();
                let mut args =
                    vec!["--data-dir", data.path().to_str().unwrap(), "--max-connections", "15000"];
                if let Some(url) = &url {
                    args.extend_from_slice(&["--redis-url", url]);
                }
                // The descriptor limit is this process's, raised to its hard limit.
                let app = App::activated_exe(&app_binary(), &args).ready();
                servers.addrs.push(app.addr);
                servers.pids.push(app.pid());
                servers._apps.push(app);
                servers._data.push(data);
            }
            Stack::Node => {
                let port = support::server_port();
                let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/node-socketio");
                let mut command = Command::new("node");
                command.arg(format!("{dir}/server.js")).env("PORT", port.to_string()).stdout(Stdio::null());
                if let Some(url) = &url {
                    command.env("REDIS_URL", url);
                }
                let child = command.spawn().expect("node (and `npm ci` in bench/node-socketio)");
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                servers.pids.push(child.id() as i32);
                servers.node.push(child);
                servers.addrs.push(addr);
                support::wait_listening(addr, || format!("node listens on {addr}"));
            }
        }
    }
    servers._redis = redis;
    servers
}

/// The binary under test: this build's, or CAPACITY_APP (another build, to compare).
fn app_binary() -> std::path::PathBuf {
    std::env::var_os("CAPACITY_APP").map_or_else(|| support::BIN.into(), Into::into)
}

/// Who connects where: member `i` is in room `i % rooms`, on server `(i / rooms) % servers` (so
/// every room spans every server), from source address `i % SOURCES`.
struct Plan {
    rooms: usize,
    addrs: Vec<SocketAddr>,
}

impl Plan {
    fn room(&self, i: usize) -> String {
        format!("room{}", i % self.rooms)
    }

    fn server(&self, i: usize) -> SocketAddr {
        self.addrs[(i / self.rooms) % self.addrs.len()]
    }

    fn source(i: usize) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % SOURCES as usize) as u8))
    }
}

/// Connects members `range`, `CONNECTING` at a time, handing each socket to `started` as soon as its
/// batch is in, so it reads from the start (a client that does not read is disconnected, by design).
async fn connect_all(
    protocol: Protocol,
    plan: &Plan,
    range: std::ops::Range<usize>,
    mut started: impl FnMut(usize, Socket),
) {
    let all: Vec<usize> = range.collect();
    for batch in all.chunks(CONNECTING) {
        let joining = batch.iter().map(|&i| async move {
            let socket =
                client::join(protocol, plan.server(i), Plan::source(i), &plan.room(i), &format!("u{i}"))
                    .await
                    .unwrap_or_else(|e| panic!("member {i}: {e}"));
            (i, socket)
        });
        for (i, socket) in futures_util::future::join_all(joining).await {
            started(i, socket);
        }
    }
}

/// Reads everything, answers pings, drops the rest: an idle browser tab.
async fn idle_reader(protocol: Protocol, socket: Socket) {
    let (mut sink, mut stream) = socket.split();
    while let Some(Ok(frame)) = stream.next().await {
        if let Message::Text(text) = frame {
            if let Incoming::Reply(reply) = client::read(protocol, &text) {
                let _ = sink.send(Message::text(reply)).await;
            }
        }
    }
}

async fn idle(stack: Stack) {
    let sockets = setting("CAPACITY_SOCKETS", 10_000);
    let rooms = setting("CAPACITY_ROOMS", 100);
    let protocol = stack.protocol();
    let mut best = f64::MAX;
    for round in 1..=setting("CAPACITY_ROUNDS", 3) {
        let servers = start(stack, 1, None);
        let pid = servers.pids[0];
        let plan = Plan { rooms, addrs: servers.addrs.clone() };
        // Warm-up: the first sockets' one-off allocations (tables, timers) are not per socket.
        let mut warm = Vec::new();
        connect_all(protocol, &plan, 0..100, |_, socket| warm.push(socket)).await;
        for mut socket in warm {
            let _ = socket.close(None).await;
        }
        tokio::time::sleep(SETTLE).await;
        let before = rss_kib(pid);
        let mut readers = Vec::new();
        connect_all(protocol, &plan, 0..sockets, |_, socket| {
            readers.push(tokio::spawn(idle_reader(protocol, socket)))
        })
        .await;
        tokio::time::sleep(SETTLE).await;
        let after = rss_kib(pid);
        let per_socket = (after - before) as f64 * 1024.0 / sockets as f64;
        best = best.min(per_socket);
        println!(
            "idle {} round {round}: rss {before} KiB before, {after} KiB with {sockets} sockets = {per_socket:.0} bytes per socket",
            stack.label()
        );
        for reader in readers {
            reader.abort();
        }
    }
    let load = load_average();
    println!(
        "idle {}: best {:.0} bytes ({:.1} KiB) per socket; load average {load}",
        stack.label(),
        best,
        best / 1024.0
    );
    println!("CAPACITY_ROW idle | {} | {sockets} | {:.1} KiB | {load} |", stack.label(), best / 1024.0);
}

/// What one member saw during the load.
struct Seen {
    delays_us: Vec<u32>,
}

/// A member: reads and times every bench message; a room's sender also sends what `outbox` gives.
async fn member(
    protocol: Protocol,
    socket: Socket,
    base: Instant,
    mut outbox: Option<mpsc::Receiver<Message>>,
    received: Arc<AtomicU64>,
    probed: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> Seen {
    let (mut sink, mut stream) = socket.split();
    let mut seen = Seen { delays_us: Vec::new() };
    loop {
        let outgoing = async {
            match outbox.as_mut() {
                Some(outbox) => outbox.recv().await,
                None => std::future::pending().await,
            }
        };
        // (The guard `wait_for` returns is not `Send`: dropped inside.)
        let stopped = async {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        tokio::select! {
            _ = stopped => break,
            Some(message) = outgoing => {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
            frame = stream.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => break,
                };
                match client::read(protocol, &text) {
                    Incoming::Message(text) if text == PROBE => {
                        probed.fetch_add(1, Ordering::Relaxed);
                    }
                    Incoming::Message(text) => {
                        let Some(sent) = text.strip_prefix("sent-at ").and_then(|t| t.parse().ok()) else { continue };
                        let delay = base.elapsed().saturating_sub(Duration::from_nanos(sent));
                        seen.delays_us.push(delay.as_micros().min(u32::MAX as u128) as u32);
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                    Incoming::Reply(reply) => {
                        let _ = sink.send(Message::text(reply)).await;
                    }
                    Incoming::Other => {}
                }
            }
        }
    }
    seen
}

async fn load(stack: Stack) {
    let sockets = setting("CAPACITY_SOCKETS", 10_000);
    let rooms = setting("CAPACITY_ROOMS", 100);
    let seconds = setting("CAPACITY_SECONDS", 20);
    let deliveries = setting("CAPACITY_DELIVERIES", 10_000);
    let members = sockets / rooms;
    // Each message reaches every member of its room (the sender too): messages a second overall.
    let messages_per_second = (deliveries as f64 / members as f64).max(1.0);
    let protocol = stack.protocol();
    let load_before = load_average();

    let servers = start(stack, INSTANCES, Some(Redis::start()));
    let plan = Plan { rooms, addrs: servers.addrs.clone() };
    let rss_empty: Vec<i64> = servers.pids.iter().map(|&pid| rss_kib(pid)).collect();
    let base = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let probed = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop) = watch::channel(false);
    let mut outboxes = Vec::new();
    let mut tasks = Vec::new();
    let connecting = Instant::now();
    connect_all(protocol, &plan, 0..rooms * members, |i, socket| {
        // Member i < rooms is its room's sender.
        let outbox = (i < rooms).then(|| {
            let (tx, rx) = mpsc::channel(64);
            outboxes.push(tx);
            rx
        });
        tasks.push(tokio::spawn(member(
            protocol,
            socket,
            base,
            outbox,
            received.clone(),
            probed.clone(),
            stop.clone(),
        )));
    })
    .await;
    let connected_in = connecting.elapsed();
    // The join notices of 10,000 clients queue ahead of any message: measure from when a probe in
    // every room has reached every member, not from a guess.
    for (room, outbox) in outboxes.iter().enumerate() {
        let _ = outbox.try_send(client::message(protocol, &plan.room(room), PROBE));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while probed.load(Ordering::Relaxed) < (rooms * members) as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let settled_in = connecting.elapsed() - connected_in;
    let rss_connected: Vec<i64> = servers.pids.iter().map(|&pid| rss_kib(pid)).collect();

    let cpu_before: Vec<u64> = servers.pids.iter().map(|&pid| cpu_ticks(pid)).collect();
    let client_before = cpu_ticks(std::process::id() as i32);
    let started = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / messages_per_second);
    let total = (messages_per_second * seconds as f64) as usize;
    let mut sent = 0u64;
    let mut ticks = tokio::time::interval(gap);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for n in 0..total {
        ticks.tick().await;
        let room = n % rooms;
        let text = format!("sent-at {}", base.elapsed().as_nanos());
        if outboxes[room].try_send(client::message(protocol, &plan.room(room), &text)).is_ok() {
            sent += 1;
        }
    }
    let sending = started.elapsed();
    let expected = sent * members as u64;
    let deadline = Instant::now() + DELIVERY_GRACE;
    while received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu: Vec<f64> = servers
        .pids
        .iter()
        .zip(&cpu_before)
        .map(|(&pid, before)| procfs::ticks_to_seconds(cpu_ticks(pid) - before) / elapsed * 100.0)
        .collect();
    let client_cpu =
        procfs::ticks_to_seconds(cpu_ticks(std::process::id() as i32) - client_before) / elapsed * 100.0;
    let rss_loaded: Vec<i64> = servers.pids.iter().map(|&pid| rss_kib(pid)).collect();
    let _ = stop_tx.send(true);
    let mut delays = Vec::with_capacity(expected as usize);
    for task in tasks {
        if let Ok(seen) = task.await {
            delays.extend(seen.delays_us);
        }
    }
    delays.sort_unstable();
    let at = |q: f64| {
        delays
            .get(((delays.len() as f64 * q) as usize).min(delays.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1e3
    };
    let got = delays.len() as u64;
    let lost = expected.saturating_sub(got);
    let per_instance = sockets as f64 / INSTANCES as f64;
    let per_socket: Vec<f64> =
        rss_connected.iter().zip(&rss_empty).map(|(c, e)| (c - e) as f64 * 1024.0 / per_instance).collect();
    let load_after = load_average();
    let label = stack.label();
    println!(
        "load {label}: {sockets} sockets over {INSTANCES} instances + Redis (connected in {:.1} s, join notices delivered {:.1} s later), {rooms} rooms, \
         {total} messages in {:.1} s ({:.0} deliveries/s): {got} delivered of {expected}, {lost} lost; \
         delay p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        connected_in.as_secs_f64(),
        settled_in.as_secs_f64(),
        sending.as_secs_f64(),
        expected as f64 / sending.as_secs_f64(),
        at(0.5),
        at(0.99),
        at(1.0),
    );
    for (i, pid) in servers.pids.iter().enumerate() {
        println!(
            "  instance {pid}: rss {} KiB empty, {} KiB connected ({:.1} KiB per socket), {} KiB after the load; cpu {:.0}%",
            rss_empty[i],
            rss_connected[i],
            per_socket[i] / 1024.0,
            rss_loaded[i],
            cpu[i]
        );
    }
    println!("  load client cpu {client_cpu:.0}%; load average {load_before} before, {load_after} after");
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "CAPACITY_ROW load | {label} | {sockets} | {:.0}/s | {lost} of {expected} | {:.1} ms | {:.1} ms | {:.0} MB | {:.1} KiB | {:.0}% | {load_before} → {load_after} |",
        expected as f64 / sending.as_secs_f64(),
        at(0.5),
        at(0.99),
        mean(&rss_loaded.iter().map(|&k| k as f64 / 1024.0).collect::<Vec<_>>()),
        mean(&per_socket) / 1024.0,
        mean(&cpu),
    );
}

fn rss_kib(pid: i32) -> i64 {
    (procfs::rss_bytes(pid as u32).unwrap() / 1024) as i64
}

/// User plus system CPU time of `pid`, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    procfs::cpu_ticks(pid as u32).unwrap()
}

fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap();
    load.split(' ').take(3).collect::<Vec<_>>().join(" ")
}
