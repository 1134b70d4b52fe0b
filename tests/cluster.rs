//! Cluster mode against the real binary: N worker processes on one socket, respawn, rolling reload,
//! stop, workers that never outlive their primary, and chat across the workers through the primary
//! (no Redis).

mod support;

use support::chat::ChatClient;
use support::*;

fn cluster(workers: &str) -> App {
    cluster_with(workers, &[])
}

fn cluster_with(workers: &str, extra: &[&str]) -> App {
    let mut args = vec!["--mode", "CLUSTER", "--workers", workers];
    args.extend_from_slice(extra);
    let mut app = App::activated(&args).ready();
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
    signal(victim, libc::SIGKILL);
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
    signal(frozen, libc::SIGSTOP);
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
    let notify_dir = initial_env(workers[0], "NOTIFY_SOCKET")
        .map(std::path::PathBuf::from)
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
    let runtime = temp_dir();
    // As if a primary and its workers had all been killed at once (2^22 - 1: the largest pid Linux
    // can give, at the very end of the largest pid_max, so no process of this test run).
    let stale = runtime.path().join("app-primary-4194303");
    std::fs::create_dir_all(&stale).unwrap();
    let env = [("RUNTIME_DIRECTORY", runtime.path().to_str().unwrap())];
    let mut app = App::activated_with(&["--mode", "cluster", "--workers", "1"], &env).ready();
    assert!(!stale.exists(), "the stale directory is still there");
    let own = runtime.path().join(format!("app-primary-{}", app.pid()));
    assert!(own.is_dir(), "the primary's own directory is in RUNTIME_DIRECTORY");
    app.signal(libc::SIGTERM);
    assert!(app.wait_exit().success());
    assert!(!own.exists(), "removed on a clean stop");
}

/// A chat client in `room` on a worker `wanted` accepts, opening clients until one lands there (the
/// kernel gives each connection to whichever worker accepts first; the others leave again): the
/// client, its worker's pid and its name.
fn client_on(app: &App, room: &str, name: &str, wanted: impl Fn(i32) -> bool) -> (ChatClient, i32, String) {
    for attempt in 0..500 {
        let name = format!("{name}{attempt}");
        let (client, pid) = ChatClient::join_telling_pid(app.addr, room, &name);
        if wanted(pid) {
            return (client, pid, name);
        }
    }
    panic!("no chat connection reached the wanted worker in 500 attempts");
}

/// Two clients of `room` held by different workers.
fn clients_on_two_workers(app: &App, room: &str) -> [(ChatClient, i32, String); 2] {
    let first = client_on(app, room, "a", |_| true);
    let other = first.1;
    let second = client_on(app, room, "b", |pid| pid != other);
    assert!([first.1, second.1].iter().all(|pid| children(app.pid()).contains(pid)), "workers hold them");
    [first, second]
}

/// The (from, text) of the next `count` messages `client` receives.
fn messages(client: &mut ChatClient, count: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|_| {
            let frame = client.expect("a message", |frame| frame.get("text").is_some());
            (frame["from"].as_str().unwrap().to_string(), frame["text"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn chat_crosses_the_workers_of_a_cluster_without_redis_in_one_order() {
    let app = cluster("2");
    let [(mut a, a_pid, _), (mut b, b_pid, b_name)] = clients_on_two_workers(&app, "lobby");
    assert_ne!(a_pid, b_pid);
    a.expect("b's join, from the other worker", |f| f["event"] == "join" && f["name"] == b_name.as_str());

    // Both talk at once, from both workers: each sees every message, and both in the same order.
    for round in 0..5 {
        a.say(&format!("a says {round}"));
        b.say(&format!("b says {round}"));
    }
    let seen_by_a = messages(&mut a, 10);
    let seen_by_b = messages(&mut b, 10);
    assert_eq!(seen_by_a, seen_by_b, "one order for every worker");
    for round in 0..5 {
        for from in ["a says", "b says"] {
            assert!(seen_by_a.iter().any(|(_, text)| *text == format!("{from} {round}")), "{seen_by_a:?}");
        }
    }

    drop(b);
    a.expect("b's leave, from the other worker", |f| f["event"] == "leave" && f["name"] == b_name.as_str());
}

#[test]
fn chat_crosses_the_workers_again_once_a_killed_worker_is_replaced() {
    let mut app = cluster("2");
    let [(_a, victim, _), (mut b, survivor, _)] = clients_on_two_workers(&app, "lobby");
    signal(victim, libc::SIGKILL);
    app.wait_for_notification("STATUS=2/2 workers ready, 1 restart");
    let (mut c, replacement, _) = client_on(&app, "lobby", "c", |pid| pid != victim && pid != survivor);
    assert!(children(app.pid()).contains(&replacement), "the replacement worker holds c");

    b.say("from the survivor");
    c.expect("the survivor's message on the replacement", |f| f["text"] == "from the survivor");
    c.say("from the replacement");
    b.expect("the replacement's message on the survivor", |f| f["text"] == "from the replacement");
}

#[test]
fn the_largest_message_the_flags_allow_crosses_the_bus() {
    let app = cluster_with("2", &["--chat-max-message-bytes", "1048576"]);
    let [(a, ..), (mut b, ..)] = clients_on_two_workers(&app, "lobby");
    // {"text":"..."} of exactly 1 MiB: over the bus as a frame with its room, sender and time.
    let text = "é".repeat((1_048_576 - r#"{"text":""}"#.len()) / 2);
    a.say(&text);
    let got = b.expect("the 1 MiB message on the other worker", |f| f.get("text").is_some());
    assert_eq!(got["text"].as_str().unwrap().len(), text.len());
    assert!(got["text"] == text.as_str());
}

#[test]
fn a_worker_that_stops_reading_the_bus_is_cut_off_and_replaced_while_the_others_chat_on() {
    let app = cluster_with(
        "2",
        &["--chat-rate", "10000", "--chat-burst", "10000", "--chat-queue", "65536", "--drain-timeout", "1s"],
    );
    let [(mut frozen_client, frozen, _), (mut talker, talking, _)] = clients_on_two_workers(&app, "lobby");
    signal(frozen, libc::SIGSTOP);
    // Over the primary's 8 MiB queue for the frozen worker (and its socket buffer): 4 KB messages.
    let text = "x".repeat(4000);
    let sent = 3000;
    for _ in 0..sent {
        talker.say(&text);
    }
    // The talker's worker is not held up: every message comes back to it through the primary.
    for index in 0..sent {
        talker.expect(&format!("the talker's message {index}"), |f| f.get("text").is_some());
    }
    app.wait_for_log("cluster bus: cutting the worker off (it fell more than 8388608 bytes behind)");
    eventually("a replacement worker has started", || children(app.pid()).len() == 3);
    signal(frozen, libc::SIGCONT);
    // Drained once its replacement is ready: its clients are told to reconnect.
    let close = frozen_client.expect_close();
    assert_eq!(close.map(|frame| frame.code), Some(tungstenite::protocol::frame::coding::CloseCode::Away));
    eventually("the frozen worker is gone", || !alive(frozen) && children(app.pid()).len() == 2);
    let (mut fresh, ..) = client_on(&app, "lobby", "c", |pid| pid != frozen && pid != talking);
    talker.say("after the cut");
    fresh.expect("chat crossing again", |f| f["text"] == "after the cut");
    app.wait_for_log("replacement ready; draining the old worker");
}
