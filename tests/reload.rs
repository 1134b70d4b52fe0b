//! `app reload --pid PID`, the unit's ExecReload=: it returns once the reload is done (the new
//! processes ready), and fails when the reload fails, so `systemctl reload` does too on systemd
//! 252, which has no Type=notify-reload.

mod support;

use std::process::{Command, Output};
use std::time::Instant;

use support::redis::{cluster_on, Redis};
use support::*;

fn reload(pid: i32) -> Output {
    Command::new(BIN).args(["reload", "--pid", &pid.to_string(), "--timeout", "30s"]).output().unwrap()
}

#[test]
fn a_fork_mode_reload_returns_once_the_re_executed_process_is_ready() {
    let mut app = App::activated(&[]).ready();
    let asked = Instant::now();
    let output = reload(app.pid());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // Answered at once by the new program, with the same pid, younger than the reload.
    let info = app.get("/info").json();
    assert_eq!(info["pid"], app.pid());
    assert!(info["uptime_s"].as_f64().unwrap() < asked.elapsed().as_secs_f64(), "{info}");
    app.wait_for_notification("RELOADING=1");
    app.wait_for_notification("READY=1");
}

#[test]
fn a_cluster_reload_returns_once_every_new_worker_is_ready() {
    let mut app = App::activated(&["--mode", "cluster", "--workers", "2"]).ready();
    app.wait_for_notification("STATUS=2/2 workers ready");
    let before = children(app.pid());
    let output = reload(app.pid());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // Both slots already have their new worker (the old ones may still be draining).
    let new: Vec<i32> = children(app.pid()).into_iter().filter(|pid| !before.contains(pid)).collect();
    assert_eq!(new.len(), 2, "new workers {new:?}, before {before:?}");
    app.wait_for_log("reload done: every worker replaced");
}

#[test]
fn a_cluster_reload_held_up_by_a_frozen_redis_is_reported_failed() {
    let redis = Redis::start();
    let app = cluster_on(&redis, 1, &["--worker-ready-timeout", "1s"]);
    let before = children(app.pid());
    // The replacement cannot subscribe to a frozen Redis within its second.
    redis.freeze();
    let output = reload(app.pid());
    redis.thaw();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("reload failed worker 0: the replacement was not ready in 1s"), "{stderr}");
    // The replacement, killed, goes; the old worker serves on.
    eventually("only the old worker is left", || children(app.pid()) == before);
    assert_eq!(app.get("/healthz").status, 200);
}

#[test]
fn a_process_that_dies_during_its_reload_fails_the_reload() {
    let dir = temp_dir();
    let exe = dir.path().join("app");
    std::fs::copy(BIN, &exe).unwrap();
    let app = App::activated_exe(&exe, &[]).ready();
    // The program it re-executes fails at once.
    let broken = dir.path().join("broken");
    std::fs::write(&broken, "#!/bin/sh\nexit 3\n").unwrap();
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::rename(&broken, &exe).unwrap();
    let output = reload(app.pid());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("exited during the reload"), "{stderr}");
}
