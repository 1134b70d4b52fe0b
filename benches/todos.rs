//! `cargo bench --bench todos`: durable `POST /v1/todos` per second through nginx, against a
//! 2-worker cluster on one SQLite file (synchronous=FULL: every 201 is on disk). Keep-alive
//! clients, as nginx's upstream keepalive and a browser would use. Target: 2,000/s on 2 cores.
//! Bounded: WRITES_PER_CLIENT requests per client and DURATION at most.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::nginx::Nginx;
use support::{read_framed_response, temp_dir, App};

const CLIENTS: usize = 64;
const WRITES_PER_CLIENT: usize = 2_000;
const DURATION: Duration = Duration::from_secs(10);

fn main() {
    let data = temp_dir();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).to_string();
    let app = App::activated(&[
        "--mode",
        "cluster",
        "--workers",
        &workers,
        "--data-dir",
        data.path().to_str().unwrap(),
        "--max-connections",
        "4096",
    ])
    .ready();
    let nginx = Nginx::start(&[app.addr]);
    // Warm-up: connections, the SQLite file and its WAL.
    run(nginx.addr, 8, 50, Duration::from_secs(5));

    let started = Instant::now();
    let (written, failed, mut latencies) = run(nginx.addr, CLIENTS, WRITES_PER_CLIENT, DURATION);
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "POST /v1/todos through nginx, {workers}-worker cluster, SQLite synchronous=FULL, {CLIENTS} keep-alive clients: \
         {written} durable writes in {:.2} s = {:.0}/s ({failed} failed); latency p50 {:.1} ms, p99 {:.1} ms",
        elapsed.as_secs_f64(),
        written as f64 / elapsed.as_secs_f64(),
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
    );
    let stored =
        support::request(nginx.addr, "GET", "/v1/todos?limit=1", &[], b"").json()["total"].as_u64().unwrap();
    println!("todos stored: {stored}");
}

/// `clients` threads, each POSTing on one keep-alive connection until `per_client` writes or
/// `duration`; returns 201s, failures and every latency.
fn run(
    addr: SocketAddr,
    clients: usize,
    per_client: usize,
    duration: Duration,
) -> (usize, usize, Vec<Duration>) {
    let deadline = Instant::now() + duration;
    let threads: Vec<_> = (0..clients)
        .map(|client| {
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.set_nodelay(true).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let (mut ok, mut failed, mut latencies) = (0, 0, Vec::with_capacity(per_client));
                for i in 0..per_client {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let body = format!(r#"{{"title":"client {client} write {i}"}}"#);
                    let head = format!(
                        "POST /v1/todos HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    let sent = Instant::now();
                    stream.set_nodelay(true).unwrap();
                    stream.write_all(format!("{head}{body}").as_bytes()).unwrap();
                    match read_framed_response(&mut stream) {
                        Ok(response) if response.status == 201 => {
                            ok += 1;
                            latencies.push(sent.elapsed());
                            // nginx ends a client connection after keepalive_requests (1000).
                            if response.header("connection") == Some("close") {
                                stream = TcpStream::connect(addr).unwrap();
                            }
                        }
                        Ok(response) => {
                            failed += 1;
                            eprintln!("refused: {} {}", response.status, response.body);
                        }
                        Err(error) => {
                            failed += 1;
                            eprintln!("failed: {error}");
                            stream = TcpStream::connect(addr).unwrap();
                        }
                    }
                }
                (ok, failed, latencies)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).fold(
        (0, 0, Vec::new()),
        |(a, b, mut all), (ok, failed, l)| {
            all.extend(l);
            (a + ok, b + failed, all)
        },
    )
}
