//! `app status`: every instance on this host, like `pm2 list`. From systemd (the `app@PORT`
//! units: state, main pid, restarts, uptime; the cgroup: the workers) or, with `--ports`, from the
//! instances themselves; either way memory and processor time from /proc, and the mode and the
//! requests served from each instance's `/info` and `/metrics` over loopback.

mod probe;
pub mod reload;
pub mod reload_wait;
mod table;
mod units;

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::procfs;
use serde::Serialize;

pub use units::{units_from_show, Unit};

#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    /// Ask the instances on these ports (comma-separated) instead of systemd: for instances not run
    /// by systemd (development, pm2-style supervisors, containers without systemd).
    #[arg(long, value_delimiter = ',')]
    pub ports: Vec<u16>,

    /// Address the instances listen on, for /info and /metrics.
    #[arg(long = "address", default_value = "127.0.0.1")]
    pub address: IpAddr,

    /// The systemd template whose instances are listed (`app` for app@PORT.service).
    #[arg(long, default_value = "app")]
    pub template: String,

    /// Print JSON (an array of instances) instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// One instance, as the table and `--json` show it.
#[derive(Debug, Serialize, Default)]
pub struct Instance {
    /// The unit (`app@8082`) or, with --ports, the address.
    pub name: String,
    pub port: Option<u16>,
    pub mode: Option<String>,
    /// systemd's `active/running`, `inactive/dead (socket listening)`...; with --ports `online` or
    /// `unreachable`.
    pub state: String,
    pub main_pid: Option<u32>,
    pub worker_pids: Vec<u32>,
    pub uptime_s: Option<u64>,
    /// Restarts of the instance by systemd (`NRestarts`).
    pub restarts: u64,
    /// Cluster workers the primary started again (from /metrics).
    pub worker_restarts: Option<u64>,
    /// Resident memory of the main process and its workers together.
    pub rss_bytes: u64,
    /// Processor use of the main process and its workers, in % of one CPU.
    pub cpu_percent: f64,
    /// Requests answered (from /metrics).
    pub requests: Option<u64>,
    /// Why something could not be read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl Instance {
    fn pids(&self) -> Vec<u32> {
        self.main_pid.into_iter().chain(self.worker_pids.iter().copied()).collect()
    }
}

/// How long processor use is measured over.
const CPU_WINDOW: Duration = Duration::from_millis(250);

pub fn main(args: &StatusArgs) -> ExitCode {
    let listed = if args.ports.is_empty() {
        from_systemd(&args.template, args.address)
    } else {
        Ok(args.ports.iter().map(|&port| from_port(args.address, port)).collect())
    };
    let mut instances = match listed {
        Ok(instances) => instances,
        Err(error) => {
            eprintln!("app status: {error}");
            return ExitCode::FAILURE;
        }
    };
    measure(&mut instances);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&instances).unwrap_or_default());
    } else {
        print!("{}", table::render(&instances));
    }
    ExitCode::SUCCESS
}

/// The instances of the systemd template on this host.
pub fn from_systemd(template: &str, address: IpAddr) -> Result<Vec<Instance>, String> {
    Ok(units::list(template)?.into_iter().map(|unit| from_unit(unit, template, address)).collect())
}

fn from_unit(unit: Unit, template: &str, address: IpAddr) -> Instance {
    let port = unit.instance.parse::<u16>().ok();
    let mut state = format!("{}/{}", unit.active_state, unit.sub_state);
    if unit.main_pid.is_none() && unit.socket_listening {
        state.push_str(" (socket listening)");
    }
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
    let mut instance = Instance {
        name: format!("{template}@{}", unit.instance),
        port,
        state,
        main_pid: unit.main_pid,
        worker_pids,
        uptime_s,
        restarts: unit.restarts,
        ..Instance::default()
    };
    // Asking an idle socket-activated instance would start it: only running ones are asked.
    if let (Some(port), Some(_)) = (port, unit.main_pid) {
        ask(&mut instance, address, port);
    }
    instance
}

/// An instance found only by its port.
pub fn from_port(address: IpAddr, port: u16) -> Instance {
    let mut instance =
        Instance { name: format!("{address}:{port}"), port: Some(port), ..Instance::default() };
    ask(&mut instance, address, port);
    instance.state = if instance.mode.is_some() { "online" } else { "unreachable" }.to_string();
    instance
}

/// Fills in what the instance says about itself. Without systemd, its main pid is the process
/// that answered (fork mode) or that one's parent (a cluster worker answers for its primary).
fn ask(instance: &mut Instance, address: IpAddr, port: u16) {
    match probe::get(address, port, "/info")
        .and_then(|body| serde_json::from_str::<serde_json::Value>(&body).map_err(|e| e.to_string()))
    {
        Ok(info) => {
            let mode = info["mode"].as_str().map(str::to_string);
            if instance.main_pid.is_none() {
                let key = if mode.as_deref() == Some("cluster") { "ppid" } else { "pid" };
                instance.main_pid = info[key].as_u64().and_then(|pid| u32::try_from(pid).ok());
                if let Some(main) = instance.main_pid {
                    if mode.as_deref() == Some("cluster") {
                        instance.worker_pids = procfs::children(main);
                    }
                    instance.uptime_s = procfs::age(main).map(|age| age.as_secs());
                }
            }
            instance.mode = mode;
        }
        Err(error) => return instance.problems.push(error),
    }
    match probe::get(address, port, "/metrics") {
        Ok(text) => {
            instance.requests = probe::metric_sum(&text, "app_http_requests_total").or(Some(0));
            instance.worker_restarts = probe::metric_sum(&text, "app_worker_restarts_total");
        }
        Err(error) => instance.problems.push(error),
    }
}

/// Memory now and processor use over a short window, for every instance at once.
fn measure(instances: &mut [Instance]) {
    let groups: Vec<Vec<u32>> = instances.iter().map(Instance::pids).collect();
    let cpu = procfs::cpu_percent(&groups, CPU_WINDOW);
    for ((instance, pids), cpu) in instances.iter_mut().zip(&groups).zip(cpu) {
        instance.rss_bytes = pids.iter().filter_map(|&pid| procfs::rss_bytes(pid)).sum();
        instance.cpu_percent = cpu;
    }
}
