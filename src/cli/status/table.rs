//! The `pm2 list`-style table (and, with --watch, `pm2 monit`'s requests per second).

use std::io::IsTerminal;

use super::Instance;
use crate::cli::color;

const HEADINGS: [&str; 12] =
    ["name", "port", "mode", "state", "pid", "workers", "uptime", "↺", "cpu", "mem", "requests", "req/s"];

/// The column whose cells are coloured: the state.
const STATE: usize = 3;

/// Whether the table on stdout gets colours (NO_COLOR, CLICOLOR_FORCE, a terminal).
pub(crate) fn colors_on_stdout() -> bool {
    color::wanted(std::io::stdout().is_terminal())
}

/// The table; `watch` adds the requests-per-second column, `colors` colours the states.
pub(crate) fn render(instances: &[Instance], watch: bool, colors: bool) -> String {
    if instances.is_empty() {
        return "no app instances (systemd has no app@* unit; try --ports)\n".to_string();
    }
    let columns = if watch { HEADINGS.len() } else { HEADINGS.len() - 1 };
    let headings: Vec<String> = HEADINGS[..columns].iter().map(|h| h.to_string()).collect();
    let rows: Vec<Vec<String>> = instances.iter().map(|instance| row(instance)[..columns].to_vec()).collect();
    let mut widths: Vec<usize> = headings.iter().map(|heading| heading.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let rule = |left: &str, middle: &str, right: &str| {
        let bars: Vec<String> = widths.iter().map(|&width| "─".repeat(width + 2)).collect();
        format!("{left}{}{right}\n", bars.join(middle))
    };
    // Padded on the plain text, coloured after: escape codes take no room on screen.
    let line = |cells: &[String], sgr: Option<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(column, (cell, &width))| {
                let text = match sgr {
                    Some(sgr) if column == STATE => color::paint(cell, sgr, colors),
                    _ => cell.clone(),
                };
                format!(" {text}{} ", " ".repeat(width - cell.chars().count()))
            })
            .collect();
        format!("│{}│\n", padded.join("│"))
    };
    let mut out = rule("┌", "┬", "┐");
    out += &line(&headings, None);
    out += &rule("├", "┼", "┤");
    for (instance, row) in instances.iter().zip(&rows) {
        out += &line(row, Some(state_color(instance)));
    }
    out += &rule("└", "┴", "┘");
    for instance in instances {
        for problem in &instance.problems {
            out += &format!("{}: {problem}\n", instance.name);
        }
    }
    out
}

/// Green for serving, red for failed, yellow for anything between (idle, starting, reloading).
fn state_color(instance: &Instance) -> &'static str {
    if instance.failed {
        "31"
    } else if instance.state.starts_with("active/running") || instance.state == "online" {
        "32"
    } else {
        "33"
    }
}

fn row(instance: &Instance) -> [String; 12] {
    let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".into());
    let restarts = instance.restarts + instance.worker_restarts.unwrap_or(0);
    [
        instance.name.clone(),
        or_dash(instance.port.map(|p| p.to_string())),
        or_dash(instance.mode.clone()),
        instance.state.clone(),
        or_dash(instance.main_pid.map(|p| p.to_string())),
        if instance.worker_pids.is_empty() {
            "-".into()
        } else {
            let pids: Vec<String> = instance.worker_pids.iter().map(u32::to_string).collect();
            format!("{} ({})", pids.len(), pids.join(","))
        },
        or_dash(instance.uptime_s.map(uptime)),
        restarts.to_string(),
        or_dash(instance.cpu_percent.map(|cpu| format!("{cpu}%"))),
        if instance.rss_bytes == 0 {
            "-".into()
        } else {
            format!("{:.1}mb", instance.rss_bytes as f64 / 1048576.0)
        },
        or_dash(instance.requests.map(|r| r.to_string())),
        or_dash(instance.requests_per_second.map(|rate| format!("{rate:.1}"))),
    ]
}

/// pm2's short uptime: 48s, 12m, 5h, 3D.
fn uptime(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}D", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_per_instance_in_a_box() {
        let instances = [Instance {
            name: "app@8082".into(),
            port: Some(8082),
            mode: Some("cluster".into()),
            state: "active/running".into(),
            main_pid: Some(10),
            worker_pids: vec![11, 12],
            uptime_s: Some(125),
            restarts: 1,
            worker_restarts: Some(2),
            rss_bytes: 3 * 1048576,
            cpu_percent: Some(0.5),
            requests: Some(42),
            ..Instance::default()
        }];
        let table = render(&instances, false, false);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert!(
            lines[3]
                .contains("│ app@8082 │ 8082 │ cluster │ active/running │ 10  │ 2 (11,12) │ 2m     │ 3 │"),
            "{table}"
        );
        assert!(lines[3].contains("3.0mb") && lines[3].contains("42"), "{table}");
        assert!(!table.contains("req/s") && !table.contains('\x1b'), "{table}");
        assert_eq!(uptime(3 * 86400), "3D");
    }

    #[test]
    fn watching_adds_the_rate_and_colours_only_the_state() {
        let instances = [
            Instance {
                name: "app@8082".into(),
                state: "active/running".into(),
                requests_per_second: Some(12.34),
                ..Instance::default()
            },
            Instance {
                name: "app@8080".into(),
                state: "failed/failed".into(),
                failed: true,
                ..Instance::default()
            },
        ];
        let table = render(&instances, true, true);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[1].ends_with("│ req/s │"), "{table}");
        assert!(
            lines[3].contains("│ \x1b[32mactive/running\x1b[0m │") && lines[3].contains("│ 12.3 "),
            "{table}"
        );
        assert!(lines[4].contains("\x1b[31mfailed/failed\x1b[0m") && lines[4].contains("│ -   │"), "{table}");
    }
}
