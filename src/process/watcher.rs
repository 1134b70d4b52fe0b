//! `--watch`: reload when a file changes (by default the binary itself), for development. It does
//! not reload by itself: it sends this process SIGHUP, so a watched change takes exactly the path a
//! `systemctl reload` takes (fork mode re-executes on the same socket, a cluster primary replaces its
//! workers one by one) and gets its guarantee of no failed request.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the file is looked at. Polling a stat is cheap and, unlike an inotify watch on the
/// file, keeps working when the file is replaced by a rename (`install`, `mv`, `cargo build`).
const POLL: Duration = Duration::from_millis(300);

/// What identifies one version of the file.
#[derive(PartialEq, Eq, Clone, Debug)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    let ns = |secs: i64, nanos: i64| i128::from(secs) * 1_000_000_000 + i128::from(nanos);
    Some(Stamp {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.len(),
        mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
        ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
    })
}

/// Watches `path` until the process ends, raising SIGHUP once per change.
pub(crate) async fn run(path: PathBuf) {
    tracing::info!(path = %path.display(), "watching for changes; a change reloads as SIGHUP does");
    let mut current = stamp(&path);
    let mut seen = current.clone();
    let mut ticks = tokio::time::interval(POLL);
    loop {
        ticks.tick().await;
        let now = stamp(&path);
        // Act only once the change has held for a whole poll (a file still being written keeps
        // changing), and never on a missing file (the gap of a delete-then-create swap).
        let settled = now == seen;
        seen = now.clone();
        if now.is_none() || now == current || !settled {
            continue;
        }
        current = now;
        tracing::info!(path = %path.display(), "changed: reloading");
        // SAFETY: kill has no memory-safety preconditions; the SIGHUP handler is installed.
        unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_has_another_stamp() {
        let dir = std::env::temp_dir().join(format!("app-watch-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bin");
        std::fs::write(&file, "one").unwrap();
        let before = stamp(&file);
        let replacement = dir.join("bin.new");
        std::fs::write(&replacement, "two").unwrap();
        std::fs::rename(&replacement, &file).unwrap();
        assert_ne!(stamp(&file), before);
        assert_eq!(stamp(&dir.join("missing")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
