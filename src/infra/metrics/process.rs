//! The standard `process_*` families (what Prometheus client libraries export, so stock
//! dashboards and alerts work) and the info families, for `/metrics`.
//!
//! A cluster instance is one target, so its numbers cover all its processes, whichever worker
//! answers: the primary (the answering worker's parent) and every live worker, and for processor
//! time also the workers that died (the kernel adds a waited-for child's time to its parent's
//! cutime/cstime, so the counter never goes back when a worker is replaced).

use std::fmt::Write;

use super::render::family;
use crate::config::Mode;
use crate::infra::procfs;

/// What the info family says of the instance, and whose processes the `process_*` families sum.
pub(crate) struct Instance<'a> {
    /// Whether this process is a cluster worker: then the instance is its parent, the primary,
    /// with the primary's children.
    pub(crate) is_worker: bool,
    /// The systemd instance name, if any.
    pub(crate) name: Option<&'a str>,
    pub(crate) mode: Mode,
    pub(crate) workers: u16,
}

pub(crate) fn text(instance: &Instance) -> String {
    let own = std::process::id();
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() } as u32;
    let main = if instance.is_worker { parent } else { own };
    let processes: Vec<u32> = if instance.is_worker {
        std::iter::once(main).chain(procfs::children(main)).collect()
    } else {
        vec![own]
    };
    let sum = |read: fn(u32) -> Option<u64>| processes.iter().filter_map(|&pid| read(pid)).sum::<u64>();
    let mut cpu_ticks = sum(procfs::cpu_ticks);
    if instance.is_worker {
        cpu_ticks += procfs::reaped_children_ticks(main).unwrap_or(0);
    }

    let mut out = String::with_capacity(1024);
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        family(&mut out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    };
    metric(
        "process_cpu_seconds_total",
        "counter",
        "User and system processor time of the instance's processes, in seconds.",
        procfs::ticks_to_seconds(cpu_ticks).to_string(),
    );
    metric(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory of the instance's processes, in bytes.",
        sum(procfs::rss_bytes).to_string(),
    );
    metric(
        "process_open_fds",
        "gauge",
        "Open file descriptors of the instance's processes.",
        sum(procfs::open_fds).to_string(),
    );
    if let Some(started) = procfs::start_time_unix(main) {
        metric(
            "process_start_time_seconds",
            "gauge",
            "Start of the instance's main process, in seconds since the Unix epoch.",
            started.to_string(),
        );
    }
    if let Some(limit) = procfs::memory_limit_bytes() {
        metric(
            "app_memory_limit_bytes",
            "gauge",
            "The memory limit of the instance's cgroup (systemd's MemoryMax=), in bytes.",
            limit.to_string(),
        );
    }

    family(
        &mut out,
        "app_build_info",
        "gauge",
        "The running binary: its version and the compiler that built it.",
    );
    let _ = writeln!(
        out,
        "app_build_info{{version=\"{}\",rustc=\"{}\"}} 1",
        escape(env!("CARGO_PKG_VERSION")),
        escape(env!("APP_RUSTC_VERSION"))
    );
    family(&mut out, "app_instance_info", "gauge", "The instance: its systemd instance name (the label instance is the scrape target), its mode, main process and workers.");
    let _ = writeln!(
        out,
        "app_instance_info{{name=\"{}\",mode=\"{}\",main_pid=\"{main}\",workers=\"{}\"}} 1",
        escape(instance.name.unwrap_or("")),
        instance.mode.as_str(),
        instance.workers
    );
    out
}

/// A label value in the text format: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
