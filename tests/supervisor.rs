//! The cluster supervisor's transitions that only a slow replacement reaches, with real processes:
//! a real redis-server frozen (SIGSTOP) keeps a new worker from being ready for two seconds (its
//! chat relay cannot subscribe), and the test freezes that worker outright when it must never be.

mod support;

use support::redis::{cluster_on, Redis};
use support::*;

/// A ready cluster of two workers using `redis`, and its workers by slot.
fn cluster(redis: &Redis, extra: &[&str]) -> (App, [i32; 2]) {
    let app = cluster_on(redis, 2, &[&["--drain-timeout", "1s"], extra].concat());
    let workers = children(app.pid());
    let slot = |index: &str| *workers.iter().find(|pid| worker_index(**pid) == index).unwrap();
    (app, [slot("0"), slot("1")])
}

/// The slot a primary gave a worker (`APP_CLUSTER_WORKER` in its initial environment).
fn worker_index(pid: i32) -> String {
    initial_env(pid, "APP_CLUSTER_WORKER").unwrap_or_default()
}

/// Sends SIGHUP and returns the replacement worker the primary starts (not ready: Redis is frozen).
/// Its pid is read from the primary's log, not looked for among the children: with a short ready
/// timeout on a loaded machine the replacement may be started and killed between two looks. The
/// line is written once the spawn returned, so the worker has been executed, not only forked (a
/// child stopped between the two would hold the primary in its spawn call).
fn reload_into_a_slow_replacement(app: &mut App) -> i32 {
    app.signal(libc::SIGHUP);
    app.wait_for_notification("RELOADING=1");
    app.wait_for_log("replacement started");
    let logs = app.logs();
    let line = logs.lines().find(|line| line.contains("replacement started")).unwrap();
    let pid = line.split_whitespace().find_map(|field| field.strip_prefix("pid="));
    assert!(line.contains("worker=0"), "the reload replaces slot 0 first: {line}");
    pid.and_then(|pid| pid.parse().ok()).unwrap_or_else(|| panic!("no pid in {line}"))
}

#[test]
fn an_old_worker_that_dies_during_a_reload_held_up_by_redis_is_replaced_by_the_new_one() {
    let redis = Redis::start();
    let (mut app, old) = cluster(&redis, &[]);
    redis.freeze();
    let new = reload_into_a_slow_replacement(&mut app);
    let cpu_before = app::infra::procfs::cpu_ticks(app.pid() as u32).unwrap();
    signal(old[0], libc::SIGKILL);
    app.wait_for_log("while being replaced; its replacement takes over");
    redis.thaw();
    app.wait_for_notification("READY=1");
    let status = app.wait_for_notification("STATUS=");
    assert!(status.starts_with("STATUS=2/2 workers ready, 1 restart"), "{status}");
    // The primary waited for the new worker instead of spinning on the dead one.
    let cpu = app::infra::procfs::cpu_ticks(app.pid() as u32).unwrap() - cpu_before;
    assert!(cpu < 50, "the primary used {cpu} ticks of processor time while it waited");
    eventually("both old workers are gone", || old.iter().all(|pid| !alive(*pid)));
    let now = children(app.pid());
    assert!(now.contains(&new), "{new} serves slot 0: {now:?}");
    assert_eq!(app.get("/healthz").status, 200);
}

#[test]
fn a_stop_during_a_reload_held_up_by_redis_does_not_wait_for_the_new_worker() {
    let redis = Redis::start();
    // A ready timeout far beyond the test's patience: a stop that waited for the replacement
    // would never end within wait_exit's patience (the workers' drain is 1 s, and a worker that
    // outlives it gets 5 s before it is killed).
    let (mut app, old) = cluster(&redis, &["--worker-ready-timeout", "1h"]);
    redis.freeze();
    let new = reload_into_a_slow_replacement(&mut app);
    // The replacement will never be ready.
    signal(new, libc::SIGSTOP);
    app.signal(libc::SIGTERM);
    app.wait_for_notification("STOPPING=1");
    assert!(app.wait_exit().success());
    assert!(old.iter().chain([&new]).all(|pid| !alive(*pid)), "a worker outlived the primary");
    redis.thaw();
}

#[test]
fn a_new_worker_held_up_by_redis_that_never_gets_ready_fails_the_reload_and_the_old_serve_on() {
    let redis = Redis::start();
    let (mut app, old) = cluster(&redis, &["--worker-ready-timeout", "1s"]);
    redis.freeze();
    let before_reload = app.seen.len();
    let new = reload_into_a_slow_replacement(&mut app);
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
