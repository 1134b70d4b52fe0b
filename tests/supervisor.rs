//! The cluster supervisor's transitions that only a slow replacement reaches, with real processes:
//! a real redis-server frozen (SIGSTOP) keeps a new worker from being ready for two seconds (its
//! chat relay cannot subscribe), and the test freezes that worker outright when it must never be.

mod support;

use std::time::{Duration, Instant};

use support::redis::Redis;
use support::*;

/// A ready cluster of two workers using `redis`, and its workers by slot.
fn cluster(redis: &Redis, extra: &[&str]) -> (App, [i32; 2]) {
    let url = redis.url();
    let mut args = vec!["--mode", "cluster", "--workers", "2", "--redis-url", &url, "--drain-timeout", "1s"];
    args.extend_from_slice(extra);
    let mut app = App::activated(&args).ready();
    app.wait_for_notification("STATUS=2/2 workers ready");
    let workers = children(app.pid());
    let slot = |index: &str| *workers.iter().find(|pid| worker_index(**pid) == index).unwrap();
    (app, [slot("0"), slot("1")])
}

/// The slot a primary gave a worker (`APP_CLUSTER_WORKER` in its initial environment).
fn worker_index(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_default()
        .split(|byte| *byte == 0)
        .find_map(|entry| entry.strip_prefix(b"APP_CLUSTER_WORKER="))
        .map(|index| String::from_utf8_lossy(index).to_string())
        .unwrap_or_default()
}

/// Sends SIGHUP and returns the replacement worker the primary starts (not ready: Redis is frozen).
fn reload_into_a_slow_replacement(app: &mut App, old: &[i32; 2]) -> i32 {
    app.signal(libc::SIGHUP);
    app.wait_for_notification("RELOADING=1");
    let mut new = None;
    // Executed, not only forked: a child stopped between fork and exec would hold the primary in
    // its spawn call (the worker's environment is there only after the exec).
    eventually("the replacement worker is started", || {
        new = children(app.pid()).into_iter().find(|pid| !old.contains(pid) && worker_index(*pid) == "0");
        new.is_some()
    });
    new.unwrap()
}

fn signal(pid: i32, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

#[test]
fn an_old_worker_that_dies_during_a_reload_held_up_by_redis_is_replaced_by_the_new_one() {
    let redis = Redis::start();
    let (mut app, old) = cluster(&redis, &[]);
    redis.freeze();
    let new = reload_into_a_slow_replacement(&mut app, &old);
    let cpu_before = app::procfs::cpu_ticks(app.pid() as u32).unwrap();
    signal(old[0], libc::SIGKILL);
    app.wait_for_log("while being replaced; its replacement takes over");
    redis.thaw();
    app.wait_for_notification("READY=1");
    let status = app.wait_for_notification("STATUS=");
    assert!(status.starts_with("STATUS=2/2 workers ready, 1 restart"), "{status}");
    // The primary waited for the new worker instead of spinning on the dead one.
    let cpu = app::procfs::cpu_ticks(app.pid() as u32).unwrap() - cpu_before;
    assert!(cpu < 50, "the primary used {cpu} ticks of processor time while it waited");
    eventually("both old workers are gone", || old.iter().all(|pid| !alive(*pid)));
    let now = children(app.pid());
    assert!(now.contains(&new), "{new} serves slot 0: {now:?}");
    assert_eq!(app.get("/healthz").status, 200);
}

#[test]
fn a_stop_during_a_reload_held_up_by_redis_does_not_wait_for_the_new_worker() {
    let redis = Redis::start();
    let (mut app, old) = cluster(&redis, &[]);
    redis.freeze();
    let new = reload_into_a_slow_replacement(&mut app, &old);
    // The replacement will never be ready (the default ready timeout is 60 s).
    signal(new, libc::SIGSTOP);
    let stopped = Instant::now();
    app.signal(libc::SIGTERM);
    app.wait_for_notification("STOPPING=1");
    assert!(app.wait_exit().success());
    // Within the workers' drain (1 s) and the grace before a kill (5 s), not the 60 s of a reload.
    let took = stopped.elapsed();
    assert!(took < Duration::from_secs(15), "the stop took {took:?}");
    assert!(old.iter().chain([&new]).all(|pid| !alive(*pid)), "a worker outlived the primary");
    redis.thaw();
}

#[test]
fn a_new_worker_held_up_by_redis_that_never_gets_ready_fails_the_reload_and_the_old_serve_on() {
    let redis = Redis::start();
    let (mut app, old) = cluster(&redis, &["--worker-ready-timeout", "1s"]);
    redis.freeze();
    let before_reload = app.seen.len();
    let new = reload_into_a_slow_replacement(&mut app, &old);
    let status = app.wait_for_notification("STATUS=2/2 workers ready, 0 restarts; reload failed");
    assert!(status.ends_with("reload failed: worker 0: the replacement was not ready in 1s"), "{status}");
    assert!(
        app.seen[before_reload..].iter().any(|line| line == "READY=1"),
        "a failed reload ends with READY=1 too"
    );
    eventually("the replacement was killed", || !alive(new));
    redis.thaw();
    // Killed is not yet reaped: until the primary waits for it, it is still listed as a child.
    let mut expected = old.to_vec();
    expected.sort_unstable();
    eventually("only the old workers are left, serving on", || {
        let mut now = children(app.pid());
        now.sort_unstable();
        now == expected
    });
    assert_eq!(app.get("/healthz").status, 200);
}
