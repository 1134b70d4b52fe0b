//! The command line of the real binary: every flag documented, every bad value named, exit 2.

mod support;

use std::process::Command;

use support::BIN;

const FLAGS: &[&str] = &[
    "--port",
    "--host",
    "--mode",
    "--workers",
    "--threads",
    "--instance",
    "--drain-timeout",
    "--header-timeout",
    "--max-header-bytes",
    "--max-body-bytes",
    "--body-timeout",
    "--body-min-rate",
    "--max-connections",
    "--keep-alive",
    "--backlog",
    "--randoms-max",
    "--randoms-concurrency",
    "--randoms-wait",
    "--trusted-proxies",
    "--metrics-allow",
    "--watch",
    "--watch-path",
    "status",
    "reload",
    "completions",
    "man",
    "--data-dir",
    "--redis-url",
    "--todos-store",
    "--todos-max-limit",
    "--todos-max-body-bytes",
    "--sqlite-busy-timeout",
    "--idempotency-retention",
    "--idempotency-keys",
    "--chat-max-message-bytes",
    "--chat-rate",
    "--chat-burst",
    "--chat-queue",
    "--chat-ping-interval",
    "--worker-max-memory",
    "--worker-ready-timeout",
    "--redis-url-file",
    "CREDENTIALS_DIRECTORY",
    "redis+sentinel://",
    "--todos-wait-replicas",
    "--todos-wait-timeout",
];

#[test]
fn help_explains_every_flag_and_its_environment_variable() {
    let output = Command::new(BIN).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in FLAGS {
        assert!(help.contains(flag), "--help does not mention {flag}");
    }
    for env in [
        "PORT",
        "APP_MODE",
        "APP_WORKERS",
        "APP_THREADS",
        "APP_DRAIN_TIMEOUT",
        "LISTEN_FDS",
        "SIGHUP",
        "APP_DATA_DIR",
        "STATE_DIRECTORY",
        "APP_REDIS_URL",
        "APP_TODOS_STORE",
        "APP_CHAT_RATE",
        "APP_BODY_TIMEOUT",
        "APP_BODY_MIN_RATE",
        "APP_IDEMPOTENCY_RETENTION",
        "APP_IDEMPOTENCY_KEYS",
    ] {
        assert!(help.contains(env), "--help does not mention {env}");
    }
    assert!(help.contains("one event loop"), "--help says what --threads 1 means");
}

#[test]
fn a_bad_value_names_its_flag_and_exits_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["--port", "http"], "--port"),
        (&["--port", "70000"], "--port"),
        (&["--host", "localhost:80"], "--host"),
        (&["--mode", "forks"], "--mode"),
        (&["--workers", "0"], "--workers"),
        (&["--workers", "many"], "--workers"),
        (&["--threads", "0"], "--threads"),
        (&["--drain-timeout", "0"], "--drain-timeout"),
        (&["--drain-timeout", "5h"], "--drain-timeout"),
        (&["--header-timeout", "soon"], "--header-timeout"),
        (&["--max-header-bytes", "10"], "--max-header-bytes"),
        (&["--max-body-bytes", "0"], "--max-body-bytes"),
        (&["--body-timeout", "0"], "--body-timeout"),
        (&["--body-min-rate", "fast"], "--body-min-rate"),
        (&["--max-connections", "0"], "--max-connections"),
        (&["--keep-alive", "maybe"], "--keep-alive"),
        (&["--backlog", "0"], "--backlog"),
        (&["--randoms-max", "0"], "--randoms-max"),
        (&["--randoms-concurrency", "0"], "--randoms-concurrency"),
        (&["--randoms-wait", "later"], "--randoms-wait"),
        (&["--trusted-proxies", "10.0.0.0/8,nope"], "--trusted-proxies"),
        (&["--todos-store", "postgres"], "--todos-store"),
        (&["--todos-store", "redis"], "--redis-url"),
        (&["--todos-max-limit", "0"], "--todos-max-limit"),
        (&["--todos-max-body-bytes", "1"], "--todos-max-body-bytes"),
        (&["--sqlite-busy-timeout", "0"], "--sqlite-busy-timeout"),
        (&["--idempotency-retention", "forever"], "--idempotency-retention"),
        (&["--idempotency-keys", "0"], "--idempotency-keys"),
        (&["--chat-max-message-bytes", "1"], "--chat-max-message-bytes"),
        (&["--chat-rate", "0"], "--chat-rate"),
        (&["--chat-burst", "0"], "--chat-burst"),
        (&["--chat-queue", "0"], "--chat-queue"),
        (&["--chat-ping-interval", "never"], "--chat-ping-interval"),
        (&["--worker-max-memory", "1X"], "--worker-max-memory"),
        (&["--worker-ready-timeout", "0"], "--worker-ready-timeout"),
        (&["--redis-url-file", "/nonexistent"], "--redis-url-file"),
        (&["--redis-url", "redis://h", "--redis-url-file", "/f"], "--redis-url-file"),
        (&["--redis-url", "redis+sentinel://h1,h2"], "--redis-url"),
        (&["--todos-wait-replicas", "17"], "--todos-wait-replicas"),
        (&["--todos-wait-timeout", "2s"], "--todos-wait-timeout"),
        (&["--todos-wait-replicas", "1"], "--todos-wait-replicas"),
        (&["--no-such-flag"], "--no-such-flag"),
    ];
    for (args, flag) in cases {
        let output = Command::new(BIN).args(*args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?} should name {flag}: {stderr}");
    }
}

#[test]
fn a_bad_value_from_the_environment_names_the_flag_too() {
    let output = Command::new(BIN).env("APP_MODE", "bogus").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--mode"));
}

#[test]
fn the_mode_is_case_insensitive_as_the_seeds_write_it() {
    for mode in ["FORK", "fork", "Cluster", "CLUSTER"] {
        let output = Command::new(BIN).args(["--mode", mode, "--port", "http"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        // Only the port is wrong: the mode was accepted.
        assert!(stderr.contains("--port") && !stderr.contains("--mode"), "{mode}: {stderr}");
    }
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = Command::new(BIN).args(["--port", &port]).env_remove("NOTIFY_SOCKET").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{stderr}");
}

#[test]
fn a_store_that_cannot_open_is_a_clear_error() {
    let output = Command::new(BIN)
        .args(["--port", "0", "--data-dir", "/proc/no-such-dir"])
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot open the todo store in /proc/no-such-dir"), "{stderr}");
}

#[test]
fn the_data_dir_defaults_to_systemds_state_directory() {
    let state = support::temp_dir();
    let mut app =
        support::App::activated_with(&[], &[("STATE_DIRECTORY", state.path().to_str().unwrap())]).ready();
    assert!(state.path().join("todos.sqlite3").exists());
    app.signal(libc::SIGTERM);
    assert!(app.wait_exit().success());
}
