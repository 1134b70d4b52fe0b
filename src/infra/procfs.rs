//! What the kernel says about a process: its memory, its processor time, its age, its children.

use std::time::Duration;

/// Clock ticks per second of /proc's times.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as f64
}

/// Fields of /proc/PID/stat after the command name (which may hold spaces and parentheses).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    Some(after_name.split_whitespace().map(str::to_string).collect())
}

/// User plus system processor time, in ticks (fields 14 and 15 of stat; 12 and 13 after the name).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let fields = stat_fields(pid)?;
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Processor time of the process's children that have been waited for (cutime + cstime, fields 16
/// and 17), in ticks: a cluster primary keeps its dead workers' time there.
pub(crate) fn reaped_children_ticks(pid: u32) -> Option<u64> {
    let fields = stat_fields(pid)?;
    Some(fields.get(13)?.parse::<u64>().ok()? + fields.get(14)?.parse::<u64>().ok()?)
}

/// Ticks in seconds.
pub fn ticks_to_seconds(ticks: u64) -> f64 {
    ticks as f64 / ticks_per_second()
}

/// Open file descriptors (entries of /proc/PID/fd; readable for processes of the same user).
pub(crate) fn open_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// When the process started, in seconds since the Unix epoch (boot time plus field 22 of stat).
pub(crate) fn start_time_unix(pid: u32) -> Option<f64> {
    let started = stat_fields(pid)?.get(19)?.parse::<f64>().ok()? / ticks_per_second();
    Some(boot_time_unix() + started)
}

/// When the machine booted, in seconds since the Unix epoch: the real-time clock less the time
/// since boot. Not /proc/stat's btime: the unit's ProcSubset=pid hides /proc/stat.
fn boot_time_unix() -> f64 {
    let clock = |id| {
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes one timespec, which `now` is.
        unsafe { libc::clock_gettime(id, &mut now) };
        now.tv_sec as f64 + now.tv_nsec as f64 / 1e9
    };
    clock(libc::CLOCK_REALTIME) - clock(libc::CLOCK_BOOTTIME)
}

/// The memory limit of this process's cgroup (systemd's `MemoryMax=`), if it has one: cgroup v2's
/// `memory.max`, or v1's `memory.limit_in_bytes` (where "no limit" reads as a huge number).
pub(crate) fn memory_limit_bytes() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = |controllers: &str| {
        cgroups.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
            (names == controllers || names.split(',').any(|name| name == controllers)).then_some(path)
        })
    };
    let read = |file: String| std::fs::read_to_string(file).ok()?.trim().parse::<u64>().ok();
    let limit =
        path("").and_then(|unified| read(format!("/sys/fs/cgroup{unified}/memory.max"))).or_else(|| {
            path("memory").and_then(|v1| read(format!("/sys/fs/cgroup/memory{v1}/memory.limit_in_bytes")))
        })?;
    (limit < 1 << 62).then_some(limit)
}

/// Resident memory in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    statm_rss(&std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?)
}

/// This process's resident memory with one system call: /proc/self/statm is opened once and read
/// again from offset 0, which makes procfs write it anew (/info reports it on every request).
pub(crate) fn own_rss_bytes() -> Option<u64> {
    use std::os::unix::fs::FileExt;
    static STATM: std::sync::OnceLock<Option<std::fs::File>> = std::sync::OnceLock::new();
    let file = STATM.get_or_init(|| std::fs::File::open("/proc/self/statm").ok()).as_ref()?;
    let mut text = [0u8; 128];
    let length = file.read_at(&mut text, 0).ok()?;
    statm_rss(std::str::from_utf8(&text[..length]).ok()?)
}

/// Resident bytes from the text of a statm file (its second field, in pages).
fn statm_rss(statm: &str) -> Option<u64> {
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// How long ago the process started (field 22 of stat, in ticks since boot, against /proc/uptime).
pub(crate) fn age(pid: u32) -> Option<Duration> {
    let started = stat_fields(pid)?.get(19)?.parse::<f64>().ok()? / ticks_per_second();
    let uptime: f64 =
        std::fs::read_to_string("/proc/uptime").ok()?.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_secs_f64((uptime - started).max(0.0)))
}

/// The direct children of a process.
pub fn children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        found.extend(list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
    }
    found.sort_unstable();
    found
}

/// Processor use of each group of pids as a percentage of one CPU (pm2's `cpu`), measured over
/// `window` for all groups at once.
pub(crate) fn cpu_percent(groups: &[Vec<u32>], window: Duration) -> Vec<f64> {
    let total = |pids: &Vec<u32>| pids.iter().filter_map(|&pid| cpu_ticks(pid)).sum::<u64>();
    let before: Vec<u64> = groups.iter().map(total).collect();
    std::thread::sleep(window);
    groups
        .iter()
        .zip(before)
        .map(|(pids, before)| {
            let used = total(pids).saturating_sub(before) as f64 / ticks_per_second();
            (used / window.as_secs_f64() * 100.0 * 10.0).round() / 10.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_an_age_and_times() {
        let me = std::process::id();
        assert!(rss_bytes(me).unwrap() > 0);
        let (first, again) = (own_rss_bytes().unwrap(), own_rss_bytes().unwrap());
        assert!(first > 0 && again > 0, "read again from the same open file");
        assert!(age(me).unwrap() < Duration::from_secs(24 * 3600 * 365));
        assert!(cpu_ticks(me).is_some() && reaped_children_ticks(me).is_some());
        assert!(open_fds(me).unwrap() >= 3);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        let started = start_time_unix(me).unwrap();
        assert!(started <= now.as_secs_f64() + 1.0 && started > now.as_secs_f64() - 86400.0 * 365.0);
        assert_eq!(rss_bytes(u32::MAX), None);
    }
}
