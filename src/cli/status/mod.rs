//! `app status`: every instance on this host, like `pm2 list`. From systemd (the `app@PORT`
//! units: state, main pid, restarts, uptime, the socket's address; the cgroup: the workers) or,
//! with `--ports`, from the instances themselves; either way memory and processor time from
//! /proc, and the mode and the requests served from each instance's `/metrics`. `--watch` redraws
//! it with requests per second, like `pm2 monit`.

pub mod probe;
mod table;
pub(crate) mod units;
mod watch;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::StatusArgs;

use crate::infra::procfs;
use serde::Serialize;

pub(crate) use units::Unit;

/// One instance, as the table and `--json` show it.
#[derive(Debug, Serialize, Default)]
pub(crate) struct Instance {
    /// The unit (`app@8082`) or, with --ports, the address.
    pub(crate) name: String,
    pub(crate) port: Option<u16>,
    pub(crate) mode: Option<String>,
    /// systemd's `active/running`, `inactive/dead (socket listening)`...; with --ports `online` or
    /// `unreachable`.
    pub(crate) state: String,
    pub(crate) main_pid: Option<u32>,
    pub(crate) worker_pids: Vec<u32>,
    pub(crate) uptime_s: Option<u64>,
    /// Where the instance was asked: its socket unit's address, or --address with --ports.
    pub(crate) address: Option<SocketAddr>,
    /// Whether systemd gave up on it (its service or its socket failed): `app status` then exits 3.
    pub(crate) failed: bool,
    /// Restarts of the instance by systemd (`NRestarts`).
    pub(crate) restarts: u64,
    /// Cluster workers the primary started again (from /metrics).
    pub(crate) worker_restarts: Option<u64>,
    /// Resident memory of the main process and its workers together.
    pub(crate) rss_bytes: u64,
    /// Processor use of the main process and its workers, in % of one CPU; none without a process.
    pub(crate) cpu_percent: Option<f64>,
    /// Requests answered (from /metrics), not counting /metrics scrapes (this tool's included).
    pub(crate) requests: Option<u64>,
    /// With --watch: requests answered per second since the previous redraw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) requests_per_second: Option<f64>,
    /// Why something could not be read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) problems: Vec<String>,
}

impl Instance {
    fn pids(&self) -> Vec<u32> {
        self.main_pid.into_iter().chain(self.worker_pids.iter().copied()).collect()
    }
}

/// How long processor use is measured over.
const CPU_WINDOW: Duration = Duration::from_millis(250);

/// Exit status when any instance failed (systemctl's own for a unit that is not active).
const SOME_FAILED: u8 = 3;

pub(crate) fn main(args: &StatusArgs) -> ExitCode {
    if args.watch {
        return watch::run(args);
    }
    match collect(args) {
        Ok(instances) => {
            let out = if args.json {
                serde_json::to_string_pretty(&instances).unwrap_or_default() + "\n"
            } else {
                table::render(&instances, false, table::colors_on_stdout())
            };
            print!("{out}");
            exit_status(&instances)
        }
        Err(error) => {
            eprintln!("app status: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Every instance, asked and measured.
fn collect(args: &StatusArgs) -> Result<Vec<Instance>, String> {
    let mut instances = if args.ports.is_empty() {
        from_systemd(&args.template)?
    } else {
        args.ports.iter().map(|&port| from_port(SocketAddr::new(args.address, port))).collect()
    };
    measure(&mut instances);
    Ok(instances)
}

/// 0, or 3 when any instance failed: a script or a monitor can act on `app status` alone.
fn exit_status(instances: &[Instance]) -> ExitCode {
    if instances.iter().any(|instance| instance.failed) {
        ExitCode::from(SOME_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

/// The instances of the systemd template on this host.
pub(crate) fn from_systemd(template: &str) -> Result<Vec<Instance>, String> {
    Ok(units::list(template)?.into_iter().map(|unit| from_unit(unit, template)).collect())
}

fn from_unit(unit: Unit, template: &str) -> Instance {
    let port = unit.instance.parse::<u16>().ok();
    let name = format!("{template}@{}", unit.instance);
    let mut state = if unit.active_state.is_empty() {
        "-".to_string()
    } else {
        format!("{}/{}", unit.active_state, unit.sub_state)
    };
    let mut problems = Vec::new();
    if let Some(result) = &unit.socket_failure {
        state.push_str(" (socket failed)");
        problems.push(socket_problem(&name, result, unit.listen));
    } else if unit.main_pid.is_none() && unit.socket_listening {
        state.push_str(" (socket listening)");
    }
    problems.extend(unit.stale_environment(template));
    // The cgroup holds every process of the unit; where it cannot be read (another hierarchy, a
    // container's view), the main process's children are the workers.
    let worker_pids = match unit.main_pid {
        Some(main) => {
            let in_cgroup = unit.control_group.as_deref().map(units::cgroup_pids).unwrap_or_default();
            if in_cgroup.is_empty() {
                procfs::children(main)
            } else {
                in_cgroup.into_iter().filter(|&pid| pid != main).collect()
            }
        }
        None => Vec::new(),
    };
    let uptime_s = unit
        .started_monotonic_us
        .filter(|_| unit.main_pid.is_some())
        .map(|started| units::monotonic_now_us().saturating_sub(started) / 1_000_000);
    let address = unit.listen.or_else(|| port.map(|port| SocketAddr::from(([127, 0, 0, 1], port))));
    let mut instance = Instance {
        name,
        port,
        state,
        main_pid: unit.main_pid,
        worker_pids,
        uptime_s,
        address,
        failed: unit.failed(),
        restarts: unit.restarts,
        problems,
        ..Instance::default()
    };
    // Asking an idle socket-activated instance would start it: only running ones are asked.
    if let (Some(address), Some(_)) = (address, unit.main_pid) {
        ask(&mut instance, address);
    }
    instance
}

/// Why a socket unit failed, in words an operator can act on. `resources` is what systemd says
/// when it could not bind: if something answers on the address, another process holds it (a
/// development server left running, say), and nginx may be talking to that process instead.
fn socket_problem(name: &str, result: &str, listen: Option<SocketAddr>) -> String {
    let taken = listen.filter(|address| {
        result == "resources"
            && std::net::TcpStream::connect_timeout(address, Duration::from_millis(500)).is_ok()
    });
    match taken {
        Some(address) => format!(
            "{name}.socket failed: another process listens on {address} (ss -ltnp 'sport = :{}'); \
             stop it, then systemctl restart {name}.socket",
            address.port()
        ),
        None => format!("{name}.socket failed ({result}): journalctl -u {name}.socket"),
    }
}

/// An instance found only by its address.
pub(crate) fn from_port(address: SocketAddr) -> Instance {
    let mut instance = Instance {
        name: address.to_string(),
        port: Some(address.port()),
        address: Some(address),
        ..Instance::default()
    };
    ask(&mut instance, address);
    instance.state = if instance.mode.is_some() { "online" } else { "unreachable" }.to_string();
    instance
}

/// Fills in what the instance says about itself, from one `/metrics` page (so this tool's asking
/// is never counted as a request it reports). Without systemd, the main pid is the one the
/// instance reports (a cluster worker answers for its primary).
fn ask(instance: &mut Instance, address: SocketAddr) {
    let text = match probe::get(address, "/metrics") {
        Ok(text) => text,
        Err(error) => return instance.problems.push(error),
    };
    let about = probe::labels(&text, "app_instance_info");
    instance.mode = about.get("mode").cloned();
    if instance.main_pid.is_none() {
        instance.main_pid = about.get("main_pid").and_then(|pid| pid.parse().ok());
        if let Some(main) = instance.main_pid {
            if instance.mode.as_deref() == Some("cluster") {
                instance.worker_pids = procfs::children(main);
            }
            instance.uptime_s = procfs::age(main).map(|age| age.as_secs());
        }
    }
    instance.requests = Some(probe::requests_served(&text));
    instance.worker_restarts = probe::metric_sum(&text, "app_worker_restarts_total");
}

/// Memory now and processor use over a short window, for every instance at once.
fn measure(instances: &mut [Instance]) {
    let groups: Vec<Vec<u32>> = instances.iter().map(Instance::pids).collect();
    let cpu = procfs::cpu_percent(&groups, CPU_WINDOW);
    for ((instance, pids), cpu) in instances.iter_mut().zip(&groups).zip(cpu) {
        instance.rss_bytes = pids.iter().filter_map(|&pid| procfs::rss_bytes(pid)).sum();
        // No process, no processor use to speak of: "-", not a reassuring 0%.
        instance.cpu_percent = (!pids.is_empty()).then_some(cpu);
    }
}
