//! Cluster mode against the real binary: N worker processes on one socket, respawn, rolling reload,
//! stop, and workers that never outlive their primary.

mod support;

use support::*;

fn cluster(workers: &str) -> App {
    let mut app = App::activated(&["--mode", "CLUSTER", "--workers", workers]).ready();
    let status = app.wait_for_notification("STATUS=");
    assert_eq!(status, format!("STATUS={workers}/{workers} workers ready, 0 restarts"));
    app
}

#[test]
fn the_primary_runs_n_workers_that_share_its_socket() {
    let app = cluster("3");
    let workers = children(app.pid());
    assert_eq!(workers.len(), 3, "{workers:?}");

    let mut answered = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let info = app.get("/info").json();
        assert_eq!(info["mode"], "cluster");
        assert_eq!(info["workers"], 3);
        assert_eq!(info["ppid"], app.pid(), "only workers answer, never the primary");
        assert_eq!(info["listener"], "inherited (LISTEN_FDS)");
        answered.insert(info["pid"].as_i64().unwrap() as i32);
        if answered.len() == 3 {
            break;
        }
    }
    assert!(answered.iter().all(|pid| workers.contains(pid)), "{answered:?} not all in {workers:?}");
    assert!(answered.len() >= 2, "the kernel spreads connections over the workers: {answered:?}");
}

#[test]
fn a_killed_worker_is_respawned_while_the_others_keep_answering() {
    let mut app = cluster("2");
    let before = children(app.pid());
    let victim = before[0];
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    // From the kill until the replacement is ready, every request is answered by the other worker.
    let mut served = 0;
    let status = loop {
        assert_eq!(app.get("/healthz").status, 200);
        served += 1;
        let now = children(app.pid());
        if now.len() == 2 && !now.contains(&victim) {
            break app.wait_for_notification("STATUS=2/2 workers ready, 1 restart");
        }
        assert!(served < 100_000, "no replacement worker appeared");
    };
    assert_eq!(status, "STATUS=2/2 workers ready, 1 restart");
    app.wait_for_log("killed by signal 9 (SIGKILL)"); // the log says why the worker went
    assert_eq!(app.get("/info").json()["mode"], "cluster");
}

#[test]
fn sighup_replaces_every_worker_with_no_failed_request() {
    let mut app = cluster("2");
    let before = children(app.pid());
    let (load, ()) = load_while(app.addr, "/info", || {
        app.signal(libc::SIGHUP);
        app.wait_for_notification("RELOADING=1");
        app.wait_for_notification("READY=1");
    });
    eprintln!("reload under load: {} requests, {} failed", load.sent, load.failed.len());
    assert!(load.failed.is_empty(), "{:?}", load.failed);
    // Gone from the primary's children too (reaped, not only dead).
    eventually("the old workers have exited", || {
        before.iter().all(|pid| !alive(*pid)) && children(app.pid()).len() == 2
    });
    let after = children(app.pid());
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|pid| !before.contains(pid)), "{before:?} -> {after:?}");
}

#[test]
fn sigterm_drains_the_workers_then_the_primary_exits() {
    let mut app = cluster("2");
    let workers = children(app.pid());
    app.signal(libc::SIGTERM);
    app.wait_for_notification("STOPPING=1");
    assert!(app.wait_exit().success());
    assert!(workers.iter().all(|pid| !alive(*pid)), "workers outlived the primary");
}

#[test]
fn workers_do_not_outlive_a_killed_primary() {
    let app = cluster("2");
    let workers = children(app.pid());
    app.signal(libc::SIGKILL);
    eventually("every worker has exited", || workers.iter().all(|pid| !alive(*pid)));
}

#[test]
fn a_worker_that_stops_answering_is_killed_by_the_primarys_watchdog() {
    // No WATCHDOG_PID: the timeout is for this process; the primary holds its workers to it.
    let mut app =
        App::activated_with(&["--mode", "cluster", "--workers", "2"], &[("WATCHDOG_USEC", "1000000")]);
    app.wait_for_notification("READY=1");
    app.wait_for_notification("WATCHDOG=1");
    let frozen = children(app.pid())[0];
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(frozen, libc::SIGSTOP) };
    app.wait_for_notification("STATUS=2/2 workers ready, 1 restart");
    assert!(!alive(frozen));
    app.wait_for_log("missed its watchdog deadline"); // the log says why
}

#[test]
fn workers_stop_accepting_and_exit_at_once_when_the_primary_is_killed_whatever_their_connections_do() {
    // Timeouts far beyond the test's patience: a worker that drained its held connections as on a
    // stop, or waited for their heads, would outlast `eventually` below.
    let mut app = App::activated(&[
        "--mode",
        "cluster",
        "--workers",
        "2",
        "--header-timeout",
        "10min",
        "--drain-timeout",
        "10min",
    ])
    .ready();
    let workers = children(app.pid());
    let notify_dir = std::fs::read(format!("/proc/{}/environ", workers[0]))
        .unwrap()
        .split(|byte| *byte == 0)
        .find_map(|entry| entry.strip_prefix(b"NOTIFY_SOCKET="))
        .map(|path| std::path::PathBuf::from(String::from_utf8_lossy(path).to_string()))
        .and_then(|path| path.parent().map(|dir| dir.to_path_buf()))
        .expect("a worker's NOTIFY_SOCKET");
    assert!(notify_dir.is_dir());
    // Connections that hold the workers: half a request head each, spread by the kernel.
    let held = hold_connections(app.addr, 8, b"GET /info HTTP/1.1\r\nhost: t");
    eventually("the workers have accepted them all", || {
        workers.iter().map(|pid| accepted_connections(*pid, app.addr.port())).sum::<usize>() == held.len()
    });
    // Only the app holds the listening socket now.
    drop(app.socket.take());

    app.signal(libc::SIGKILL);
    eventually("every worker has exited", || workers.iter().all(|pid| !alive(*pid)));
    let refused = std::net::TcpStream::connect(app.addr).map(drop).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused, "nobody may hold the socket");
    assert!(!notify_dir.exists(), "{} was left behind", notify_dir.display());
    drop(held);
}

#[test]
fn a_primary_removes_what_a_killed_primary_left_in_its_runtime_directory() {
    let runtime = TempDir::new();
    // As if a primary and its workers had all been killed at once (2^22 - 1: the largest pid Linux
    // can give, at the very end of the largest pid_max, so no process of this test run).
    let stale = runtime.0.join("app-primary-4194303");
    std::fs::create_dir_all(&stale).unwrap();
    let env = [("RUNTIME_DIRECTORY", runtime.0.to_str().unwrap())];
    let mut app = App::activated_with(&["--mode", "cluster", "--workers", "1"], &env).ready();
    assert!(!stale.exists(), "the stale directory is still there");
    let own = runtime.0.join(format!("app-primary-{}", app.pid()));
    assert!(own.is_dir(), "the primary's own directory is in RUNTIME_DIRECTORY");
    app.signal(libc::SIGTERM);
    assert!(app.wait_exit().success());
    assert!(!own.exists(), "removed on a clean stop");
}
