//! `app reload`: every running app@PORT instance onto the installed binary, one after another
//! (pm2's `reload all`), each with `systemctl reload`, so the unit's own ExecReload= runs and
//! systemd knows. What app-reload.service runs when app-reload.path sees a new binary.
//! `app reload --pid PID` reloads one process and waits for it: the unit's ExecReload=.

use std::process::ExitCode;

use crate::config::ReloadArgs;

pub(crate) mod wait;

use super::status::units;

pub(crate) fn main(args: &ReloadArgs) -> ExitCode {
    if let Some(pid) = args.pid {
        return match wait::reload_and_wait(pid, args.timeout) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("app reload: {error}");
                ExitCode::FAILURE
            }
        };
    }
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
        // One at a time: `systemctl reload` returns once the instance is ready again (the unit's
        // ExecReload= waits for it), so at most one instance of an nginx upstream is between binaries.
        match units::systemctl(&["reload", unit]) {
            Ok(_) => println!("reloaded {unit}"),
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
