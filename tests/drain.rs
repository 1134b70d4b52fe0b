//! Stopping and reloading a fork-mode process: in-flight requests finish, connections accepted just
//! before the signal are answered, SIGHUP re-executes the binary with no failed request.

mod support;

use std::io::Read;
use std::net::TcpStream;

use support::*;

/// Starts a randoms computation of `cant` and returns the thread that reads its answer.
fn start_slow_request(app: &App, cant: u64) -> std::thread::JoinHandle<std::io::Result<Response>> {
    let mut slow = occupy_randoms_slot(app, cant);
    std::thread::spawn(move || read_response(&mut slow))
}

#[test]
fn sigterm_lets_an_in_flight_request_finish() {
    // A drain timeout no computation reaches, however loaded the machine (a debug build on a busy
    // one took over the default 10 s): the stop must wait for the request, not cut it.
    let mut app =
        App::activated(&["--randoms-concurrency", "1", "--randoms-wait", "0", "--drain-timeout", "1h"])
            .ready();
    let slow = start_slow_request(&app, 50_000_000);
    app.signal(libc::SIGTERM);
    app.wait_for_notification("STOPPING=1");
    let response = slow.join().unwrap().unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), Some("close"));
    let total: u64 = response.json().as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(total, 50_000_000);
    assert!(app.wait_exit().success());
    assert!(app.logs().contains("drained"));
}

#[test]
fn a_connection_accepted_just_before_the_stop_is_answered() {
    let mut app = App::activated(&[]).ready();
    let mut early = TcpStream::connect(app.addr).unwrap();
    eventually("the app has accepted the connection", || {
        accepted_connections(app.pid(), app.addr.port()) == 1
    });
    app.signal(libc::SIGTERM);
    app.wait_for_notification("STOPPING=1");
    // The request is sent only now, after the drain began.
    send(&mut early, "GET", "/info", &[], b"").unwrap();
    let response = read_response(&mut early).unwrap();
    assert_eq!(response.status, 200);
    assert!(app.wait_exit().success());
}

#[test]
fn idle_keep_alive_connections_are_closed_soon_after_a_stop() {
    let mut app = App::activated(&["--drain-timeout", "60s"]).ready();
    let mut idle = TcpStream::connect(app.addr).unwrap();
    use std::io::Write;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n").unwrap();
    let mut first = [0u8; 1024];
    let n = idle.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    app.signal(libc::SIGTERM);
    // Closed after a short linger in which a request might still have come, not at the 60 s drain
    // timeout: that would outlast the read's patience (30 s) and fail the read.
    idle.set_read_timeout(Some(PATIENCE)).unwrap();
    assert_eq!(idle.read(&mut first).unwrap(), 0, "the server closed the idle connection");
    assert!(app.wait_exit().success());
    assert!(app.logs().contains("drained") && !app.logs().contains("drain timeout reached"));
}

#[test]
fn a_request_on_a_kept_alive_connection_during_the_drain_is_answered_with_connection_close() {
    use std::io::Write;
    let mut app = App::activated(&["--drain-timeout", "60s"]).ready();
    let mut pooled = TcpStream::connect(app.addr).unwrap();
    pooled.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buffer = [0u8; 4096];
    pooled.write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n").unwrap();
    let n = pooled.read(&mut buffer).unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
    app.signal(libc::SIGTERM);
    app.wait_for_notification("STOPPING=1");
    // What nginx does with a connection from its keepalive pool while the app begins to drain.
    pooled.write_all(b"GET /info HTTP/1.1\r\nhost: t\r\n\r\n").unwrap();
    let response = read_response(&mut pooled).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), Some("close"));
    assert!(app.wait_exit().success());
}

#[test]
fn the_drain_timeout_bounds_the_wait_for_a_slow_request() {
    let mut app = App::activated_with(
        &["--randoms-concurrency", "1", "--randoms-wait", "0", "--drain-timeout", "300ms"],
        &[("APP_RANDOMS_MAX", "4000000000")],
    )
    .ready();
    let slow = start_slow_request(&app, 4_000_000_000);
    app.signal(libc::SIGTERM);
    assert!(app.wait_exit().success());
    assert!(app.logs().contains("drain timeout reached"), "{}", app.logs());
    assert!(slow.join().unwrap().is_err(), "the request still running at the timeout was cut");
}

#[test]
fn sighup_reexecutes_a_new_binary_on_the_same_socket_and_pid_with_no_failed_request() {
    let dir = temp_dir();
    let exe = dir.path().join("app");
    std::fs::copy(BIN, &exe).unwrap();
    let mut app = App::activated_exe(&exe, &[]).ready();
    let pid = app.pid();
    // A new build lands on disk the way installers do it: a new file renamed over the old one.
    std::fs::copy(BIN, dir.path().join("app.new")).unwrap();
    std::fs::rename(dir.path().join("app.new"), &exe).unwrap();
    let running = || std::fs::read_link(format!("/proc/{pid}/exe")).unwrap().to_string_lossy().to_string();
    assert!(running().ends_with("(deleted)"), "{}", running());

    let (load, ()) = load_while(app.addr, "/info", || {
        app.signal(libc::SIGHUP);
        app.wait_for_notification("RELOADING=1");
        app.wait_for_notification("READY=1");
    });
    eprintln!("fork-mode reload under load: {} requests, {} failed", load.sent, load.failed.len());
    assert!(load.failed.is_empty(), "{:?}", load.failed);
    assert_eq!(running(), exe.to_string_lossy(), "the new binary runs");
    let info = app.get("/info").json();
    assert_eq!(info["pid"], pid, "same process, so systemd's MAINPID stays right");
    assert_eq!(info["listener"], "inherited (LISTEN_FDS)");
}
