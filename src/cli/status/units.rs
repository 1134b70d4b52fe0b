//! The instances systemd runs: `app@PORT.service` units (and their sockets), read with
//! `systemctl`, which works the same on Debian and on NixOS, where the module declares the units
//! under the same names.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::process::Command;

/// One instance as systemd sees it.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Unit {
    pub(crate) instance: String,
    pub(crate) main_pid: Option<u32>,
    pub(crate) active_state: String,
    pub(crate) sub_state: String,
    pub(crate) restarts: u64,
    /// CLOCK_MONOTONIC microseconds of the main process's start.
    pub(crate) started_monotonic_us: Option<u64>,
    pub(crate) control_group: Option<String>,
    /// Whether the instance's socket unit is listening (it starts the service on a connection).
    pub(crate) socket_listening: bool,
    /// The socket unit's `Result=` when it failed (`resources`: its address was taken).
    pub(crate) socket_failure: Option<String>,
    /// The service's `EnvironmentFile=`: read at start only, so a change after it needs a restart.
    pub(crate) environment_file: Option<std::path::PathBuf>,
    /// The socket unit's first `Listen=` address: where the instance answers, also when a drop-in
    /// moved it off 127.0.0.1.
    pub(crate) listen: Option<SocketAddr>,
}

impl Unit {
    /// Whether systemd gave up on the instance: its service or its socket failed.
    pub(crate) fn failed(&self) -> bool {
        self.active_state == "failed" || self.socket_failure.is_some()
    }

    /// A warning when the running instance's environment file changed after it started: a
    /// reload re-executes it with the environment it has, only a restart reads the file again.
    pub(crate) fn stale_environment(&self, template: &str) -> Option<String> {
        let file = self.environment_file.as_ref()?;
        let started = self.started_monotonic_us.filter(|_| self.main_pid.is_some())?;
        // systemd's start time is on CLOCK_MONOTONIC (to the microsecond); the file's on the wall
        // clock: moved onto the monotonic clock by the two clocks' offset now.
        let modified = std::fs::metadata(file).ok()?.modified().ok()?;
        let age_us = std::time::SystemTime::now().duration_since(modified).unwrap_or_default().as_micros();
        let modified = u128::from(monotonic_now_us()).saturating_sub(age_us);
        (modified > u128::from(started)).then(|| {
            format!(
                "{} changed after {template}@{} started: a reload keeps the old settings; \
                 systemctl restart {template}@{} applies them",
                file.display(),
                self.instance,
                self.instance
            )
        })
    }
}

const PROPERTIES: &str =
    "Id,MainPID,ActiveState,SubState,Result,NRestarts,ExecMainStartTimestampMonotonic,ControlGroup,Listen,EnvironmentFiles";

/// Every instance of `template` (`app` for `app@.service`) systemd knows, loaded or running.
pub(crate) fn list(template: &str) -> Result<Vec<Unit>, String> {
    let pattern = format!("{template}@*");
    let listed = systemctl(&["list-units", "--all", "--plain", "--no-legend", "--full", &pattern])?;
    let names = unit_names(&listed);
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut args = vec!["show", "-p", PROPERTIES, "--"];
    args.extend(names.iter().map(String::as_str));
    Ok(units_from_show(&systemctl(&args)?, template))
}

pub(crate) fn systemctl(args: &[&str]) -> Result<String, String> {
    let output = Command::new("systemctl")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run systemctl ({e}); use --ports on a host without systemd"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("systemctl {}: {}", args.join(" "), stderr.trim()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The unit names (first column) of `systemctl list-units --plain --no-legend`; a leading `●`
/// marks failed units.
fn unit_names(listed: &str) -> Vec<String> {
    listed
        .lines()
        .filter_map(|line| line.split_whitespace().find(|word| word.contains('@')))
        .filter(|name| name.ends_with(".service") || name.ends_with(".socket"))
        .map(str::to_string)
        .collect()
}

/// Instances from `systemctl show`'s blank-line-separated blocks of `Key=value`, one per unit: the
/// service gives the process, the socket only whether it listens.
pub(crate) fn units_from_show(shown: &str, template: &str) -> Vec<Unit> {
    let mut instances: BTreeMap<String, Unit> = BTreeMap::new();
    for block in shown.split("\n\n") {
        let fields: HashMap<&str, &str> = block.lines().filter_map(|line| line.split_once('=')).collect();
        let Some(id) = fields.get("Id") else { continue };
        let Some((instance, kind)) = id
            .strip_prefix(template)
            .and_then(|rest| rest.strip_prefix('@'))
            .and_then(|rest| rest.rsplit_once('.'))
        else {
            continue;
        };
        let unit = instances
            .entry(instance.to_string())
            .or_insert_with(|| Unit { instance: instance.to_string(), ..Unit::default() });
        let active = fields.get("ActiveState").copied().unwrap_or("");
        match kind {
            "socket" => {
                unit.socket_listening = active == "active";
                if active == "failed" {
                    unit.socket_failure = Some(fields.get("Result").copied().unwrap_or("failed").to_string());
                }
                unit.listen = fields.get("Listen").and_then(|listen| listen_address(listen));
            }
            "service" => {
                unit.active_state = active.to_string();
                unit.sub_state = fields.get("SubState").copied().unwrap_or("").to_string();
                unit.main_pid = fields.get("MainPID").and_then(|p| p.parse().ok()).filter(|&p| p != 0);
                unit.restarts = fields.get("NRestarts").and_then(|n| n.parse().ok()).unwrap_or(0);
                unit.started_monotonic_us = fields
                    .get("ExecMainStartTimestampMonotonic")
                    .and_then(|t| t.parse().ok())
                    .filter(|&t| t != 0);
                unit.control_group =
                    fields.get("ControlGroup").filter(|cg| !cg.is_empty()).map(|cg| cg.to_string());
                // `/etc/app/8081.env (ignore_errors=yes)`
                unit.environment_file = fields
                    .get("EnvironmentFiles")
                    .and_then(|files| files.split(" (").next())
                    .filter(|path| !path.is_empty())
                    .map(std::path::PathBuf::from);
            }
            _ => {}
        }
    }
    instances.into_values().collect()
}

/// The address of a `Listen=` value such as `127.0.0.1:8082 (Stream)` or `[::]:8082 (Stream)`;
/// an any-address socket is asked on loopback.
fn listen_address(listen: &str) -> Option<SocketAddr> {
    let mut address: SocketAddr = listen.split_whitespace().next()?.parse().ok()?;
    if address.ip().is_unspecified() {
        address.set_ip(match address {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Some(address)
}

/// Every process in the unit's cgroup (v2, or v1's systemd hierarchy).
pub(crate) fn cgroup_pids(control_group: &str) -> Vec<u32> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"]
        .iter()
        .map(|root| format!("{root}{control_group}/cgroup.procs"))
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|procs| procs.lines().filter_map(|pid| pid.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// CLOCK_MONOTONIC now, in microseconds: what systemd's `...Monotonic` timestamps count.
pub(crate) fn monotonic_now_us() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_the_names_of_plain_list_units() {
        let listed = "app@8082.service loaded active running app server on port 8082\n\
                      ● app@8083.service loaded failed failed app server on port 8083\n\
                      app@8084.socket  loaded active listening app listener on 127.0.0.1:8084\n";
        assert_eq!(unit_names(listed), ["app@8082.service", "app@8083.service", "app@8084.socket"]);
    }

    #[test]
    fn reads_services_and_sockets_from_show() {
        let shown = "Id=app@8082.service\nMainPID=1234\nActiveState=active\nSubState=running\nNRestarts=2\n\
                     ExecMainStartTimestampMonotonic=5000000\nControlGroup=/app.slice/app@8082.service\n\
                     EnvironmentFiles=/etc/app/8082.env (ignore_errors=yes)\n\n\
                     Id=app@8082.socket\nMainPID=0\nActiveState=active\nSubState=running\n\
                     Listen=10.0.0.5:8082 (Stream)\n\n\
                     Id=app@8084.socket\nActiveState=active\nSubState=listening\nListen=[::]:8084 (Stream)\n\n\
                     Id=app@8084.service\nMainPID=0\nActiveState=inactive\nSubState=dead\nNRestarts=0\n\
                     ExecMainStartTimestampMonotonic=0\nControlGroup=\n";
        let units = units_from_show(shown, "app");
        assert_eq!(units.len(), 2);
        assert_eq!(
            units[0],
            Unit {
                instance: "8082".into(),
                main_pid: Some(1234),
                active_state: "active".into(),
                sub_state: "running".into(),
                restarts: 2,
                started_monotonic_us: Some(5_000_000),
                control_group: Some("/app.slice/app@8082.service".into()),
                socket_listening: true,
                socket_failure: None,
                environment_file: Some("/etc/app/8082.env".into()),
                listen: Some("10.0.0.5:8082".parse().unwrap()),
            }
        );
        assert_eq!((units[1].main_pid, units[1].socket_listening), (None, true));
        assert_eq!(units[1].active_state, "inactive");
        assert_eq!(units[1].listen, Some("[::1]:8084".parse().unwrap()));
        assert!(!units[0].failed() && !units[1].failed());
    }

    #[test]
    fn a_failed_socket_fails_its_instance() {
        let shown = "Id=app@8080.socket\nActiveState=failed\nSubState=failed\nResult=resources\n\
                     Listen=127.0.0.1:8080 (Stream)\n\n\
                     Id=app@8081.service\nMainPID=0\nActiveState=failed\nSubState=failed\nResult=exit-code\n";
        let units = units_from_show(shown, "app");
        assert_eq!(units[0].socket_failure.as_deref(), Some("resources"));
        assert!(units[0].failed() && !units[0].socket_listening);
        assert!(units[1].failed() && units[1].socket_failure.is_none());
    }
}
