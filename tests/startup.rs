//! What the process needs before it serves, and the settings that make it refuse to start: those
//! exit with status 2 and name their flag, so systemd's RestartPreventExitStatus=2 does not restart
//! a process that would only fail again.

mod support;

use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

use support::*;

/// Runs the binary (binding a free port) under an RLIMIT_NOFILE of (soft, hard), as systemd's
/// LimitNOFILE= sets it, and waits for it to end.
fn run_with_nofile(args: &[&str], soft: u64, hard: u64) -> Output {
    let mut command = Command::new(BIN);
    command.args(["--port", "0"]).args(args).env_remove("NOTIFY_SOCKET");
    // SAFETY: set_nofile makes one async-signal-safe call.
    unsafe { command.pre_exec(move || set_nofile(soft, hard)) };
    command.output().unwrap()
}

/// The soft "Max open files" of a process.
fn soft_nofile(pid: i32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|line| line.starts_with("Max open files")).unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

#[test]
fn a_hard_descriptor_limit_too_low_for_max_connections_is_refused_naming_the_flag() {
    let output = run_with_nofile(&["--max-connections", "1024"], 512, 512);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--max-connections 1024 needs 1280 file descriptors"), "{stderr}");
    assert!(stderr.contains("hard limit (RLIMIT_NOFILE) is 512"), "{stderr}");
    assert!(stderr.contains("LimitNOFILE="), "{stderr}");
}

#[test]
fn the_soft_descriptor_limit_is_raised_so_a_client_over_max_connections_gets_the_503() {
    // systemd's default is soft 1024 with the default 1024 connections; the same shape, smaller.
    let app =
        App::activated_with_nofile(&["--max-connections", "100", "--header-timeout", "60s"], (64, 4096))
            .ready();
    assert_eq!(soft_nofile(app.pid()), 356, "--max-connections 100 + 256 for the process");
    let held = hold_connections(app.addr, 100, b"GET /info HTTP/1.1\r\n");
    eventually("the app holds every connection", || accepted_connections(app.pid(), app.addr.port()) == 100);
    let refused = app.get("/info");
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.error().contains("too many open connections"), "{}", refused.body);
    drop(held);
    assert!(!app.logs().contains("Too many open files"), "{}", app.logs());
}

#[test]
fn a_cluster_primary_refuses_too_low_a_limit_once_instead_of_starting_failing_workers() {
    let output =
        run_with_nofile(&["--mode", "cluster", "--workers", "2", "--max-connections", "5000"], 1024, 4096);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--max-connections 5000"), "{stderr}");
}

#[test]
fn bad_settings_from_the_environment_exit_2_naming_their_flag() {
    let cases: &[(&str, &str, &str)] = &[
        ("APP_WORKERS", "two", "--workers"),
        ("APP_MAX_CONNECTIONS", "lots", "--max-connections"),
        ("APP_DRAIN_TIMEOUT", "soon", "--drain-timeout"),
        ("APP_WORKER_MAX_MEMORY", "big", "--worker-max-memory"),
        ("APP_WORKER_READY_TIMEOUT", "0", "--worker-ready-timeout"),
        ("APP_REDIS_URL", "http://not-redis", "--redis-url"),
        ("APP_REDIS_URL_FILE", "/nonexistent/redis-url", "--redis-url-file"),
        ("APP_TODOS_STORE", "redis", "--redis-url"),
    ];
    for (key, value, flag) in cases {
        let output = Command::new(BIN)
            .args(["--port", "0"])
            .env(key, value)
            .env_remove("NOTIFY_SOCKET")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{key}={value}: {stderr}");
        assert!(stderr.contains(flag), "{key}={value} should name {flag}: {stderr}");
    }
}

#[test]
fn a_start_after_a_crash_waits_and_a_start_after_a_clean_stop_does_not() {
    // The unit's RuntimeDirectory=, kept across restarts.
    let runtime = temp_dir();
    let env = [("RUNTIME_DIRECTORY", runtime.path().to_str().unwrap())];
    let mut first = App::activated_with(&[], &env).ready();
    first.signal(libc::SIGKILL);
    first.wait_exit();

    let mut second = App::activated_with(&[], &env);
    let waiting = second.wait_for_notification("STATUS=waiting");
    assert_eq!(waiting, "STATUS=waiting 500ms before starting (restart back-off after a failure)");
    second.wait_for_notification("READY=1");
    second.signal(libc::SIGKILL);
    second.wait_exit();

    let mut third = App::activated_with(&[], &env);
    let waiting = third.wait_for_notification("STATUS=waiting");
    assert!(waiting.starts_with("STATUS=waiting 1s"), "the second crash in a row doubles it: {waiting}");
    third.wait_for_notification("READY=1");
    third.signal(libc::SIGTERM);
    assert!(third.wait_exit().success());

    let mut fourth = App::activated_with(&[], &env).ready();
    assert!(!fourth.seen.iter().any(|line| line.starts_with("STATUS=waiting")), "{:?}", fourth.seen);
    assert!(!fourth.logs().contains("restart back-off"), "{}", fourth.logs());
    fourth.signal(libc::SIGTERM);
    fourth.wait_exit();
}
