//! The `pm2 list`-style table.

use super::Instance;

const HEADINGS: [&str; 11] =
    ["name", "port", "mode", "state", "pid", "workers", "uptime", "↺", "cpu", "mem", "requests"];

pub fn render(instances: &[Instance]) -> String {
    if instances.is_empty() {
        return "no app instances (systemd has no app@* unit; try --ports)\n".to_string();
    }
    let rows: Vec<[String; 11]> = instances.iter().map(row).collect();
    let mut widths = HEADINGS.map(|heading| heading.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let rule = |left: &str, middle: &str, right: &str| {
        let bars: Vec<String> = widths.iter().map(|&width| "─".repeat(width + 2)).collect();
        format!("{left}{}{right}\n", bars.join(middle))
    };
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!(" {cell}{} ", " ".repeat(width - cell.chars().count())))
            .collect();
        format!("│{}│\n", padded.join("│"))
    };
    let mut out = rule("┌", "┬", "┐");
    out += &line(&HEADINGS.map(str::to_string));
    out += &rule("├", "┼", "┤");
    for row in &rows {
        out += &line(row);
    }
    out += &rule("└", "┴", "┘");
    for instance in instances {
        for problem in &instance.problems {
            out += &format!("{}: {problem}\n", instance.name);
        }
    }
    out
}

fn row(instance: &Instance) -> [String; 11] {
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
        format!("{}%", instance.cpu_percent),
        if instance.rss_bytes == 0 {
            "-".into()
        } else {
            format!("{:.1}mb", instance.rss_bytes as f64 / 1048576.0)
        },
        or_dash(instance.requests.map(|r| r.to_string())),
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
            cpu_percent: 0.5,
            requests: Some(42),
            problems: vec![],
        }];
        let table = render(&instances);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert!(
            lines[3]
                .contains("│ app@8082 │ 8082 │ cluster │ active/running │ 10  │ 2 (11,12) │ 2m     │ 3 │"),
            "{table}"
        );
        assert!(lines[3].contains("3.0mb") && lines[3].contains("42"), "{table}");
        assert_eq!(uptime(3 * 86400), "3D");
    }
}
