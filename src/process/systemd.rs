//! What the process tells the service manager (sd_notify) and what it learns from it (watchdog,
//! instance name, whether stderr is the journal).
//!
//! In cluster mode the service manager of a worker is the primary: it hands each worker a
//! `NOTIFY_SOCKET` of its own, so workers use this same module whatever is above them.

use std::os::fd::AsRawFd;
use std::time::Duration;

use sd_notify::NotifyState;

use crate::process::reload_waiter;

/// Sends states to `NOTIFY_SOCKET`; does nothing when there is none (not under a service manager).
/// A failed send is logged, not fatal: serving matters more than reporting.
pub(crate) fn notify(states: &[NotifyState]) {
    if let Err(error) = sd_notify::notify(false, states) {
        tracing::warn!(%error, "could not notify the service manager");
    }
}

/// The states that start and end a reload also go to a waiting `app reload --pid` (the unit's
/// ExecReload=), which so learns when the reload is done and how it went.
fn notify_with_waiter(states: &[NotifyState]) {
    notify(states);
    reload_waiter::tell(states);
}

pub(crate) fn ready(status: &str) {
    notify_with_waiter(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// READY=1 at the end of a reload, saying how it went: a failed one (`reload_failed` says why; the
/// old workers still serve) adds `X_APP_RELOAD=failed ...`, which systemd ignores and
/// `app reload --pid` reports.
pub(crate) fn ready_after(status: &str, reload_failed: Option<impl std::fmt::Display>) {
    match reload_failed {
        Some(error) => {
            let failed = format!("{}failed {error}", reload_waiter::RESULT_PREFIX);
            let status = format!("{status}; reload failed: {error}");
            notify_with_waiter(&[
                NotifyState::Ready,
                NotifyState::Status(&status),
                NotifyState::Custom(&failed),
            ]);
        }
        None => ready(status),
    }
}

pub(crate) fn status(status: &str) {
    notify(&[NotifyState::Status(status)]);
}

/// RELOADING=1 with the time, as Type=notify-reload (systemd 253+) requires.
pub(crate) fn reloading(status: &str) {
    let now = NotifyState::monotonic_usec_now().unwrap_or(NotifyState::MonotonicUsec(0));
    notify_with_waiter(&[NotifyState::Reloading, now, NotifyState::Status(status)]);
}

pub(crate) fn stopping(status: &str) {
    notify_with_waiter(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// The directory for this process's private sockets: systemd's RuntimeDirectory= when the unit has
/// one, else the temporary directory (private to the unit under PrivateTmp=, which ExecReload=
/// shares with the main process).
pub(crate) fn runtime_dir() -> std::path::PathBuf {
    unit_runtime_dir().unwrap_or_else(std::env::temp_dir)
}

/// The unit's RuntimeDirectory= (the first, when it names several), if the process runs under one:
/// kept across the unit's restarts (the unit has RuntimeDirectoryPreserve=restart), private to it.
pub(crate) fn unit_runtime_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("RUNTIME_DIRECTORY").and_then(|dirs| std::env::split_paths(&dirs).next())
}

pub(crate) fn watchdog_ping() {
    notify(&[NotifyState::Watchdog]);
}

/// The watchdog timeout the service manager expects pings within, as libsystemd's
/// `sd_watchdog_enabled` reads it: `WATCHDOG_USEC`, for this process when `WATCHDOG_PID` names it or
/// is absent. (sd-notify's own reader demands `WATCHDOG_PID`, which a supervisor cannot know before
/// the fork.) The variables stay set so that a re-executed process finds them again.
pub(crate) fn watchdog_timeout() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// The instance of a templated unit this process runs in (`8082` for `app@8082.service`), from the
/// process's own cgroup path.
pub(crate) fn instance_from_cgroup() -> Option<String> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    instance_from_cgroup_text(&cgroups)
}

fn instance_from_cgroup_text(cgroups: &str) -> Option<String> {
    cgroups
        .lines()
        .flat_map(|line| line.split('/'))
        .filter_map(|segment| segment.strip_suffix(".service"))
        .filter_map(|unit| unit.split_once('@'))
        .map(|(_, instance)| instance.to_string())
        .find(|instance| !instance.is_empty())
}

/// True when stderr is the journal's stream (`JOURNAL_STREAM` names stderr's device and inode), as
/// systemd documents for deciding to log natively.
pub(crate) fn stderr_is_journal() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.split_once(':') else {
        return false;
    };
    // SAFETY: fstat writes into the zeroed struct we own; fd 2 may be closed, which fstat reports.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(std::io::stderr().as_raw_fd(), &mut stat) } != 0 {
        return false;
    }
    dev.parse::<u64>().ok() == Some(stat.st_dev) && ino.parse::<u64>().ok() == Some(stat.st_ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_comes_from_a_template_unit_in_the_cgroup_path() {
        let v2 = "0::/system.slice/system-app.slice/app@8082.service\n";
        assert_eq!(instance_from_cgroup_text(v2).as_deref(), Some("8082"));
        let v1 = "12:pids:/system.slice/app@8085.service\n1:name=systemd:/system.slice/app@8085.service\n";
        assert_eq!(instance_from_cgroup_text(v1).as_deref(), Some("8085"));
        assert_eq!(instance_from_cgroup_text("0::/user.slice/session-2.scope\n"), None);
    }
}
