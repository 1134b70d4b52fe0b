//! `app status --watch`: the list redrawn every `--interval`, with each instance's requests per
//! second since the previous redraw (pm2 monit's live view). On a terminal the screen is cleared
//! before each redraw; into a pipe or a file each table follows the last, so a script (or a test)
//! reads them one after another. `--count` bounds the redraws.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Instant;

use super::{collect, exit_status, table, Instance, StatusArgs};

/// Home the cursor and clear the screen (ECMA-48 CUP + ED), as `watch(1)` does.
const CLEAR: &str = "\x1b[H\x1b[2J";

pub(crate) fn run(args: &StatusArgs) -> ExitCode {
    let terminal = std::io::stdout().is_terminal();
    let colors = table::colors_on_stdout();
    // The previous redraw's request count of each instance, and when it was read.
    let mut previous: HashMap<String, (u64, Instant)> = HashMap::new();
    let mut drawn = 0u64;
    loop {
        let started = Instant::now();
        let status;
        let frame = match collect(args) {
            Ok(mut instances) => {
                rates(&mut instances, &mut previous);
                status = exit_status(&instances);
                if args.json {
                    serde_json::to_string(&instances).unwrap_or_default() + "\n"
                } else {
                    table::render(&instances, true, colors)
                }
            }
            Err(error) => {
                status = ExitCode::FAILURE;
                format!("app status: {error}\n")
            }
        };
        let mut out = std::io::stdout().lock();
        let written = match (args.json, terminal) {
            (true, _) => write!(out, "{frame}"),
            (false, true) => write!(out, "{CLEAR}{frame}"),
            // Tables one after another, a blank line between.
            (false, false) => writeln!(out, "{frame}"),
        };
        // A reader that went away (`| head`) ends the watch.
        if written.and_then(|()| out.flush()).is_err() {
            return status;
        }
        drop(out);
        drawn += 1;
        if args.count.is_some_and(|count| drawn >= count) {
            return status;
        }
        std::thread::sleep(args.interval.saturating_sub(started.elapsed()));
    }
}

/// Sets each instance's requests per second from the previous redraw's count, and keeps this
/// one's. A count that went down (a fork-mode reload starts from zero) has no rate this time.
fn rates(instances: &mut [Instance], previous: &mut HashMap<String, (u64, Instant)>) {
    let now = Instant::now();
    for instance in instances {
        let Some(requests) = instance.requests else {
            previous.remove(&instance.name);
            continue;
        };
        if let Some(&(before, then)) = previous.get(&instance.name) {
            let seconds = now.duration_since(then).as_secs_f64();
            if requests >= before && seconds > 0.0 {
                instance.requests_per_second = Some((requests - before) as f64 / seconds);
            }
        }
        previous.insert(instance.name.clone(), (requests, now));
    }
}
