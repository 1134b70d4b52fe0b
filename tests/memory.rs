//! --worker-max-memory (pm2's max_memory_restart without a dropped request): a process pushed over
//! it is replaced while traffic flows, and no request fails.
//!
//! What pushes a process's memory up here is honest traffic: connections that each send half a
//! request head of 512 KiB (allowed by --max-header-bytes 1M), which the server must buffer.

mod support;

use std::net::TcpStream;

use support::*;

const HEAD: usize = 512 * 1024;
const HELD: usize = 24;

/// Resident memory of the process that answers /info.
fn rss(app: &App) -> u64 {
    app.get("/info").json()["rss_bytes"].as_u64().unwrap()
}

/// Holds `HELD` connections that each sent `HEAD` bytes of an unfinished request head.
fn push_memory(app: &App) -> Vec<TcpStream> {
    let filler = format!("GET /info HTTP/1.1\r\nx-filler: {}", "a".repeat(HEAD));
    hold_connections(app.addr, HELD, filler.as_bytes())
}

/// The limit: what the process uses idle plus half of what the held heads add.
fn limit_above(idle: u64) -> String {
    (idle + (HEAD * HELD / 2) as u64).to_string()
}

const ARGS: &[&str] = &["--max-header-bytes", "1048576", "--header-timeout", "60s", "--drain-timeout", "1s"];

#[test]
fn a_cluster_worker_over_its_memory_limit_is_replaced_with_no_failed_request() {
    let idle = {
        let app = App::activated(&[&["--mode", "cluster", "--workers", "1"], ARGS].concat()).ready();
        rss(&app)
    };
    let limit = limit_above(idle);
    let args = [&["--mode", "cluster", "--workers", "1", "--worker-max-memory", &limit], ARGS].concat();
    let mut app = App::activated(&args).ready();
    let old = children(app.pid());
    let (load, held) = load_while(app.addr, "/healthz", || {
        let held = push_memory(&app);
        app.wait_for_log("worker over --worker-max-memory; replacing it");
        app.wait_for_log("replacement ready; draining the old worker");
        eventually("the old worker is gone", || !alive(old[0]));
        held
    });
    drop(held);
    eprintln!("memory replacement under load: {} requests, {} failed", load.sent, load.failed.len());
    assert!(load.failed.is_empty(), "{:?}", load.failed);
    // Gone is not yet reaped: until the primary waits for the old worker, it is still a child.
    eventually("one worker left, the new one", || {
        let now = children(app.pid());
        now.len() == 1 && now != old
    });
    assert!(rss(&app) < idle + (HEAD * HELD / 2) as u64, "the new worker starts small");
    app.wait_for_notification("STATUS=1/1 workers ready, 0 restarts");
}

#[test]
fn a_fork_mode_process_over_its_memory_limit_reloads_itself_as_on_sighup() {
    let idle = rss(&App::activated(ARGS).ready());
    let limit = limit_above(idle);
    let mut app = App::activated(&[&["--worker-max-memory", &limit], ARGS].concat()).ready();
    let (load, held) = load_while(app.addr, "/healthz", || {
        let held = push_memory(&app);
        app.wait_for_notification("RELOADING=1");
        app.wait_for_notification("READY=1");
        held
    });
    drop(held);
    assert!(load.failed.is_empty(), "{:?}", load.failed);
    app.wait_for_log("over --worker-max-memory: reloading, as on SIGHUP");
    let info = app.get("/info").json();
    assert_eq!(info["pid"], app.pid(), "re-executed in place, as a reload does");
    assert!(info["rss_bytes"].as_u64().unwrap() < idle + (HEAD * HELD / 2) as u64);
}
