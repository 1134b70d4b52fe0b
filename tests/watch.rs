//! `--watch` with the real binary: replacing the file under a request loop reloads the server onto
//! the new binary, as SIGHUP does, with no failed request.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use support::*;

/// Installs a fresh copy of the binary at `target` the way a build or `install` does: written
/// beside it, then renamed over it (writing into a running binary fails with ETXTBSY). Returns
/// the new file's inode.
fn replace_binary(target: &Path) -> u64 {
    let next = target.with_extension("next");
    std::fs::copy(BIN, &next).unwrap();
    std::fs::rename(&next, target).unwrap();
    std::fs::metadata(target).unwrap().ino()
}

/// The inode of the file process `pid` runs (the deleted old one until it re-executes).
fn running_inode(pid: i32) -> u64 {
    std::fs::metadata(format!("/proc/{pid}/exe")).unwrap().ino()
}

/// Replaces the binary while a request loop runs, and waits for the reload it causes.
fn replace_under_load(app: &mut App, exe: &Path) -> u64 {
    let (load, new) = load_while(app.addr, "/info", || {
        let new = replace_binary(exe);
        app.wait_for_notification("RELOADING=1");
        app.wait_for_notification("READY=1");
        new
    });
    eprintln!("--watch reload under load: {} requests, {} failed", load.sent, load.failed.len());
    assert!(load.failed.is_empty(), "{:?}", load.failed);
    new
}

fn copy_of_binary(dir: &TempDir) -> std::path::PathBuf {
    let exe = dir.path().join("app");
    std::fs::copy(BIN, &exe).unwrap();
    exe
}

#[test]
fn fork_mode_reexecutes_a_replaced_binary_with_no_failed_request() {
    let dir = temp_dir();
    let exe = copy_of_binary(&dir);
    let mut app = App::activated_exe(&exe, &["--watch"]).ready();
    let old = running_inode(app.pid());

    let new = replace_under_load(&mut app, &exe);
    assert_ne!(old, new);
    assert_eq!(running_inode(app.pid()), new, "the same pid now runs the new file");
    app.wait_for_log("changed: reloading");
    assert_eq!(app.get("/info").json()["pid"], app.pid());
}

#[test]
fn a_cluster_primary_moves_every_worker_to_a_replaced_binary() {
    let dir = temp_dir();
    let exe = copy_of_binary(&dir);
    let mut app = App::activated_exe(&exe, &["--watch", "--mode", "cluster", "--workers", "2"]).ready();
    let before = children(app.pid());

    let new = replace_under_load(&mut app, &exe);
    eventually("the old workers have exited", || before.iter().all(|pid| !alive(*pid)));
    let workers = children(app.pid());
    assert_eq!(workers.len(), 2);
    for worker in workers {
        assert_eq!(running_inode(worker), new, "worker {worker} runs the new file");
    }
}

#[test]
fn without_watch_a_replaced_binary_changes_nothing() {
    let (plain_dir, watched_dir) = (temp_dir(), temp_dir());
    let (plain_exe, watched_exe) = (copy_of_binary(&plain_dir), copy_of_binary(&watched_dir));
    let plain = App::activated_exe(&plain_exe, &[]).ready();
    let mut watched = App::activated_exe(&watched_exe, &["--watch"]).ready();
    let old = running_inode(plain.pid());
    replace_binary(&plain_exe);
    replace_binary(&watched_exe);
    // The watching twin, changed at the same moment, marks when a watcher would have acted.
    watched.wait_for_notification("RELOADING=1");
    watched.wait_for_notification("READY=1");
    assert_eq!(running_inode(plain.pid()), old, "without --watch the old binary keeps running");
    assert_eq!(plain.get("/healthz").status, 200);
}
