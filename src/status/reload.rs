//! `app reload`: every running app@PORT instance onto the installed binary, one after another
//! (pm2's `reload all`), each with `systemctl reload`, so the unit's own ExecReload= runs and
//! systemd knows. What app-reload.service runs when app-reload.path sees a new binary.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;

use super::units;

#[derive(Args, Debug, Clone)]
pub struct ReloadArgs {
    /// The systemd template whose running instances are reloaded (`app` for app@PORT.service).
    #[arg(long, default_value = "app")]
    pub template: String,
}

/// How long one instance may stay in systemd's `reloading` state before the next one is reloaded
/// anyway (the instance's own drain timeout bounds it in practice).
const SETTLE: Duration = Duration::from_secs(60);

pub fn main(args: &ReloadArgs) -> ExitCode {
    let units = match units::list(&args.template) {
        Ok(units) => units,
        Err(error) => {
            eprintln!("app reload: {error}");
            return ExitCode::FAILURE;
        }
    };
    // An instance waiting on its socket starts on the new binary anyway: waking it is not needed.
    let running: Vec<&units::Unit> =
        units.iter().filter(|unit| unit.main_pid.is_some() && unit.active_state == "active").collect();
    if running.is_empty() {
        println!("no running {}@ instance to reload", args.template);
    }
    let mut failed = 0;
    for instance in running {
        let unit = &format!("{}@{}.service", args.template, instance.instance);
        if let Some(warning) = instance.stale_environment(&args.template) {
            eprintln!("app reload: warning: {warning}");
        }
        match units::systemctl(&["reload", unit]) {
            Ok(_) => {
                // Reloaded one at a time: the next waits until this one says READY=1 again, so at
                // most one instance of an nginx upstream is between binaries.
                settle(unit);
                println!("reloaded {unit}");
            }
            Err(error) => {
                eprintln!("app reload: {error}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Waits (bounded) while systemd shows the unit `reloading` (RELOADING=1 until READY=1).
fn settle(unit: &str) {
    let deadline = Instant::now() + SETTLE;
    while Instant::now() < deadline {
        match units::systemctl(&["show", "-P", "ActiveState", unit]) {
            Ok(state) if state.trim() == "reloading" => std::thread::sleep(Duration::from_millis(100)),
            _ => return,
        }
    }
}
