//! Restart back-off across starts, as pm2's `exp_backoff_restart_delay`: after a start that ended
//! in a crash the next one waits 0.5 s, then 1, 2, 4, 8 and at most 15 s, until a process has lived
//! [`STABLE_AFTER`]. systemd only has a constant `RestartSec=` before 254 (Debian 12 runs 252), so
//! a crash loop hit the start limit (10 starts a minute) and the instance stayed down; with these
//! delays at most 8 starts fit in a minute and it keeps trying. systemd 254's `RestartSteps=` is
//! not used, so the unit is the same everywhere and 252's `systemd-analyze verify` stays quiet.
//!
//! The record lives in the unit's `RuntimeDirectory=` (kept across restarts by
//! `RuntimeDirectoryPreserve=restart`): `running N` while a process runs after N failed starts,
//! `clean` once it has drained and exited (or re-executed itself on reload). A start that finds
//! `running` knows the one before it did not end cleanly: killed, crashed, stopped by the watchdog.
//! Without a RuntimeDirectory= (not under the unit) nothing is recorded and nothing waits.

use std::path::PathBuf;
use std::time::Duration;

/// The delays between the service's starts: 0.5 s doubling to 15 s.
const RESTARTS: Doubling = Doubling { first: Duration::from_millis(500), max: Duration::from_secs(15) };
/// A process that lived this long was healthy: the next crash starts the back-off over.
const STABLE_AFTER: Duration = Duration::from_secs(30);
const FILE: &str = "failed-starts";

fn record_path() -> Option<PathBuf> {
    crate::process::systemd::unit_runtime_dir().map(|dir| dir.join(FILE))
}

fn write(state: &str) {
    if let Some(path) = record_path() {
        if let Err(error) = std::fs::write(&path, state) {
            tracing::warn!(path = %path.display(), %error, "cannot keep the restart back-off record");
        }
    }
}

/// Called when a main process starts: how long it should wait first, from how the process before
/// it ended. Records this start.
pub(crate) fn before_start() -> Duration {
    let Some(path) = record_path() else { return Duration::ZERO };
    let before = std::fs::read_to_string(&path).unwrap_or_default();
    let failed: u32 =
        before.strip_prefix("running ").and_then(|n| n.trim().parse().ok()).map_or(0, |n: u32| n + 1);
    write(&format!("running {failed}"));
    delay_after(failed)
}

/// Delays that double from `first` up to `max`: the one formula for every back-off, the service's
/// restarts here and a cluster slot's worker respawns (`cluster::machine`), each with its numbers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Doubling {
    pub(crate) first: Duration,
    pub(crate) max: Duration,
}

impl Doubling {
    /// The wait before a start that follows `failures` failures in a row: none after none, then
    /// `first`, twice that, and so on, never more than `max`.
    pub(crate) fn after(&self, failures: u32) -> Duration {
        match failures {
            0 => Duration::ZERO,
            n => self.first.saturating_mul(1 << (n - 1).min(16)).min(self.max),
        }
    }
}

/// The wait before a start that follows `failed` failed starts in a row.
pub(crate) fn delay_after(failed: u32) -> Duration {
    RESTARTS.after(failed)
}

/// The process ended in order (drained and exited, or re-executes itself now).
pub(crate) fn ended_cleanly() {
    write("clean");
}

/// Records the process as healthy once it has lived [`STABLE_AFTER`] (a crash from then on is a
/// first one); spawn it on the main process's runtime.
pub(crate) async fn record_stable_later() {
    tokio::time::sleep(STABLE_AFTER).await;
    write("running 0");
}

/// Waits `delay` before the start, telling the service manager why and pinging its watchdog
/// meanwhile (a wait is not a hang).
pub(crate) fn wait(delay: Duration) {
    if delay.is_zero() {
        return;
    }
    tracing::warn!(
        ?delay,
        "the previous start ended in a failure: waiting before this one (restart back-off)"
    );
    crate::process::systemd::status(&format!(
        "waiting {delay:?} before starting (restart back-off after a failure)"
    ));
    let until = std::time::Instant::now() + delay;
    let step = crate::process::systemd::watchdog_timeout().map_or(delay, |timeout| timeout / 2);
    while let Some(left) =
        until.checked_duration_since(std::time::Instant::now()).filter(|left| !left.is_zero())
    {
        std::thread::sleep(left.min(step));
        crate::process::systemd::watchdog_ping();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_half_a_second_to_fifteen() {
        let delays: Vec<u64> = (0..8).map(|n| delay_after(n).as_millis() as u64).collect();
        assert_eq!(delays, [0, 500, 1000, 2000, 4000, 8000, 15000, 15000]);
        // So a crash loop never reaches systemd's start limit (StartLimitBurst=10 in 60 s).
        let mut at = Duration::ZERO;
        let starts_in_a_minute = (0..)
            .map_while(|n| {
                at += delay_after(n);
                (at < Duration::from_secs(60)).then_some(())
            })
            .count();
        assert!(starts_in_a_minute < 10, "{starts_in_a_minute} starts in a minute");
    }
}
