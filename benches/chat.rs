//! `cargo bench --bench chat`: chat at scale on this machine. 1,000 clients in one room, connected
//! through nginx to four instances sharing a Redis; a sender posts messages; the delay from send to
//! arrival at every client (target p99 <= 50 ms). Memory per idle socket is benches/capacity.rs's.
//!
//! Bounded: fixed counts, and every wait has a deadline.

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{client_async_with_config, WebSocketStream};

use support::nginx::Nginx;
use support::redis::Redis;
use support::{temp_dir, App, TempDir};

const CLIENTS: usize = 1_000;
const INSTANCES: usize = 4;
const MESSAGES: usize = 50;
const MESSAGE_GAP: Duration = Duration::from_millis(100);

type Socket = WebSocketStream<TcpStream>;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(delivery());
}

fn start(args: &[&str], data: &TempDir) -> App {
    let mut all = vec!["--data-dir", data.path().to_str().unwrap(), "--max-connections", "4096"];
    all.extend_from_slice(args);
    App::activated(&all).ready()
}

async fn connect(addr: SocketAddr, room: &str, name: &str) -> Socket {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    // tungstenite zeroes its whole read buffer (128 KiB by default) on every read: with 1,000
    // clients that memset was most of this bench's CPU, and the bench measured itself.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let url = support::chat::url(addr, room, name);
    let (socket, _) = client_async_with_config(url, stream, Some(config)).await.unwrap();
    socket
}

/// Connects `count` clients, 50 at a time, handing each to `started` at once so that it reads
/// from the start, as a browser does (a client that does not read gets disconnected, by design).
async fn connect_many(addr: SocketAddr, count: usize, room: &str, mut started: impl FnMut(Socket)) {
    for batch in (0..count).collect::<Vec<_>>().chunks(50) {
        let connecting = batch.iter().map(|i| async move { connect(addr, room, &format!("c{i}")).await });
        for socket in futures_util::future::join_all(connecting).await {
            started(socket);
        }
    }
}

/// Reads until MESSAGES bench messages arrived (or the socket ends, or 60 s), recording each delay.
async fn receive(socket: Socket, base: Instant, latencies: Arc<Mutex<Vec<Duration>>>) -> usize {
    let (_sink, mut stream) = socket.split();
    let mut seen = 0;
    let deadline = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(deadline);
    while seen < MESSAGES {
        let frame = tokio::select! {
            frame = stream.next() => frame,
            _ = &mut deadline => break,
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            Some(Ok(_)) => continue,
        };
        let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
        let Some(sent) = frame["text"].as_str().and_then(|t| t.strip_prefix("sent-at ")) else { continue };
        let sent = Duration::from_nanos(sent.parse().unwrap());
        latencies.lock().unwrap().push(base.elapsed().saturating_sub(sent));
        seen += 1;
    }
    seen
}

async fn delivery() {
    let redis = Redis::start();
    let data: Vec<TempDir> = (0..INSTANCES).map(|_| temp_dir()).collect();
    let url = redis.url();
    let apps: Vec<App> = data
        .iter()
        .map(|d| start(&["--redis-url", &url, "--chat-rate", "100", "--chat-burst", "100"], d))
        .collect();
    let nginx = Nginx::start(&apps.iter().map(|a| a.addr).collect::<Vec<_>>());

    let base = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(CLIENTS * MESSAGES)));
    let mut readers = Vec::new();
    let mut start_reader = |socket| readers.push(tokio::spawn(receive(socket, base, latencies.clone())));
    // BENCH_DIRECT=1: the same clients spread straight over the instances, to see nginx's share.
    let direct = std::env::var_os("BENCH_DIRECT").is_some();
    if direct {
        for app in &apps {
            connect_many(app.addr, CLIENTS / INSTANCES, "bench", &mut start_reader).await;
        }
    } else {
        connect_many(nginx.addr, CLIENTS, "bench", &mut start_reader).await;
    }
    // Let the join notices of 1,000 clients settle before measuring.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The sender reads what the room sends it too, as a browser would.
    let (mut sender, mut echoes) = connect(apps[0].addr, "bench", "sender").await.split();
    let drain = tokio::spawn(async move { while echoes.next().await.is_some() {} });
    for _ in 0..MESSAGES {
        let text = format!("sent-at {}", base.elapsed().as_nanos());
        sender.send(Message::text(serde_json::json!({ "text": text }).to_string())).await.unwrap();
        tokio::time::sleep(MESSAGE_GAP).await;
    }
    drain.abort();
    let mut complete = 0;
    for reader in readers {
        if reader.await.unwrap() == MESSAGES {
            complete += 1;
        }
    }
    let mut all = latencies.lock().unwrap().clone();
    all.sort();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)].as_secs_f64() * 1e3;
    println!(
        "chat: {CLIENTS} clients {} over {INSTANCES} instances + Redis, {MESSAGES} messages: \
         {} deliveries of {} expected ({complete} clients got all); delay p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        if direct { "straight to the instances" } else { "through nginx" },
        all.len(),
        CLIENTS * MESSAGES,
        at(0.5),
        at(0.99),
        at(1.0),
    );
    for app in &apps {
        println!("  instance pid {}: rss {} KiB", app.pid(), rss_kib(app.pid()));
    }
}

/// Resident memory of `pid`, in KiB.
fn rss_kib(pid: i32) -> u64 {
    app::infra::procfs::rss_bytes(pid as u32).unwrap() / 1024
}
