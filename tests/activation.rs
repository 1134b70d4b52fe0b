//! Socket activation and sd_notify, done the way systemd does them, against the real binary.

mod support;

use support::*;

#[test]
fn serves_the_socket_handed_over_as_fd_3_and_notifies_readiness() {
    let mut app = App::activated(&["--port", "1"]); // a passed socket takes precedence over --port
    app.wait_for_notification("READY=1");
    let status = app.wait_for_notification("STATUS=");
    assert!(status.contains(&app.addr.to_string()) && status.contains("fork mode"), "{status}");

    let info = app.get("/info").json();
    assert_eq!(info["port"], app.addr.port());
    assert_eq!(info["listener"], "inherited (LISTEN_FDS)");
    assert_eq!(info["mode"], "fork");
    app.wait_for_log("inherited (LISTEN_FDS)"); // the start-up log says which listener was used
}

#[test]
fn binds_its_own_port_without_a_passed_socket() {
    let app = App::bound(&[]);
    let info = app.get("/info").json();
    assert_eq!(info["listener"], "bound by this process");
    assert_eq!(info["port"], app.addr.port());
    app.wait_for_log("bound by this process");
}

#[test]
fn a_socket_for_another_process_is_not_taken() {
    // LISTEN_PID names someone else: the socket is not ours, so the app binds --port itself.
    let (mut child, line, _state) =
        start_plain(&["--port", "0"], &[("LISTEN_FDS", "1"), ("LISTEN_PID", "1")]);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(line.contains("bound by this process"), "{line}");
}

#[test]
fn the_watchdog_is_pinged_at_half_its_timeout_when_systemd_asks() {
    // WATCHDOG_PID absent means "this process", as in libsystemd.
    let mut app = App::activated_with(&[], &[("WATCHDOG_USEC", "200000")]).ready();
    for _ in 0..3 {
        app.wait_for_notification("WATCHDOG=1");
    }
}

#[test]
fn no_watchdog_pings_for_another_process() {
    let mut app = App::activated_with(&[], &[("WATCHDOG_USEC", "100000"), ("WATCHDOG_PID", "1")]).ready();
    // The drain's STOPPING=1 comes after any ping that would have been sent in between.
    let served = app.get("/healthz");
    assert_eq!(served.status, 200);
    app.signal(libc::SIGTERM);
    app.wait_for_notification("STOPPING=1");
    assert!(!app.seen.iter().any(|line| line == "WATCHDOG=1"), "{:?}", app.seen);
}

#[test]
fn works_without_a_notify_socket() {
    let (mut child, line, _state) = start_plain(&["--port", "0"], &[]);
    assert!(line.contains("serving (fork mode)"), "{line}");
    signal(child.id() as i32, libc::SIGTERM);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn systemd_socket_activate_starts_it() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    // The todo store in a directory of the test's, as StateDirectory= would give (not ./data).
    let state = temp_dir();
    let mut activator = std::process::Command::new("systemd-socket-activate")
        .args(["-l", &format!("127.0.0.1:{port}")])
        .arg(format!("--setenv=STATE_DIRECTORY={}", state.path().display()))
        .arg(BIN)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("systemd-socket-activate (Debian package systemd) is installed by the test command");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut info = None;
    eventually("systemd-socket-activate listens and the app answers", || {
        info = try_request(addr, "GET", "/info", &[], b"").ok();
        info.is_some()
    });
    let info = info.unwrap().json();
    assert_eq!(info["listener"], "inherited (LISTEN_FDS)");
    activator.kill().unwrap();
    activator.wait().unwrap();
}
