//! `app status --ports` against real instances on this host: what each one is, its processes, and
//! what it has served. (The systemd side, `app status` with app@PORT units, runs in the system
//! tests on a real systemd, as is `app reload`: tests/system/scenarios/90-operate.sh.)

mod support;

use std::process::Command;

use support::*;

fn status(args: &[&str]) -> (bool, String) {
    let output = Command::new(BIN).arg("status").args(args).output().unwrap();
    (output.status.success(), String::from_utf8(output.stdout).unwrap())
}

#[test]
fn lists_fork_and_cluster_instances_with_their_processes_and_requests() {
    let fork = App::activated(&[]).ready();
    let mut cluster = App::activated(&["--mode", "cluster", "--workers", "2"]).ready();
    cluster.wait_for_notification("STATUS=2/2 workers ready");
    for _ in 0..7 {
        fork.get("/info");
    }
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let ports = format!("{},{},{gone}", fork.addr.port(), cluster.addr.port());

    let (ok, json) = status(&["--ports", &ports, "--json"]);
    assert!(ok);
    let listed: serde_json::Value = serde_json::from_str(&json).unwrap();
    let [fork_row, cluster_row, gone_row] = listed.as_array().unwrap().as_slice() else {
        panic!("three instances: {json}")
    };

    assert_eq!(fork_row["port"], fork.addr.port());
    assert_eq!(fork_row["mode"], "fork");
    assert_eq!(fork_row["state"], "online");
    assert_eq!(fork_row["main_pid"], fork.pid());
    assert_eq!(fork_row["worker_pids"], serde_json::json!([]));
    // The 7 above; status's own /info is counted too once answered.
    assert!(fork_row["requests"].as_u64().unwrap() >= 7, "{fork_row}");
    assert!(fork_row["rss_bytes"].as_u64().unwrap() > 1_000_000, "{fork_row}");
    assert!(fork_row["uptime_s"].as_u64().unwrap() < 600);
    assert!(fork_row["cpu_percent"].as_f64().is_some());

    assert_eq!(cluster_row["mode"], "cluster");
    assert_eq!(cluster_row["main_pid"], cluster.pid(), "the primary, not the worker that answered");
    let workers: Vec<i32> =
        cluster_row["worker_pids"].as_array().unwrap().iter().map(|p| p.as_i64().unwrap() as i32).collect();
    assert_eq!(workers, children(cluster.pid()));
    assert_eq!(cluster_row["worker_restarts"], 0);

    assert_eq!(gone_row["state"], "unreachable");
    assert!(gone_row["main_pid"].is_null());
    assert!(gone_row["cpu_percent"].is_null(), "no process, no cpu: {gone_row}");

    let (ok, table) = status(&["--ports", &ports]);
    assert!(ok);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[1].contains("│ name") && lines[1].contains("│ requests │"), "{table}");
    assert!(lines[3].contains("│ fork    │ online"), "{table}");
    assert!(lines[4].contains(&format!("{} (", 2)), "worker count and pids: {table}");
    assert!(lines[5].contains("unreachable"), "{table}");
    let cells: Vec<&str> = lines[5].split('│').map(str::trim).collect();
    assert_eq!(cells[9], "-", "cpu of an instance with no process: {table}");
}

#[test]
fn asking_does_not_count_as_requests_served() {
    let app = App::activated(&[]).ready();
    for _ in 0..5 {
        app.get("/healthz");
    }
    let port = app.addr.port().to_string();
    let requests = || {
        let (ok, json) = status(&["--ports", &port, "--json"]);
        assert!(ok);
        serde_json::from_str::<serde_json::Value>(&json).unwrap()[0]["requests"].as_u64().unwrap()
    };
    assert_eq!(requests(), 5);
    assert_eq!(requests(), 5, "the first status run did not count");
    app.get("/info");
    assert_eq!(requests(), 6);
}

#[test]
fn watch_redraws_with_requests_per_second() {
    let app = App::activated(&["--mode", "cluster", "--workers", "2"]).ready();
    let port = app.addr.port().to_string();
    let mut watch = Command::new(BIN)
        .args(["status", "--ports", &port, "--json", "--watch", "--interval", "500ms", "--count", "4"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(watch.stdout.take().unwrap()));
    let mut frame = || -> serde_json::Value {
        let line = lines.next().expect("a frame").unwrap();
        serde_json::from_str::<serde_json::Value>(&line).unwrap()[0].clone()
    };
    let first = frame();
    assert_eq!(first["mode"], "cluster");
    assert!(first.get("requests_per_second").is_none(), "nothing to compare with yet: {first}");
    for _ in 0..30 {
        app.get("/api/randoms?cant=1");
    }
    let later = [frame(), frame(), frame()];
    let requests = |frame: &serde_json::Value| frame["requests"].as_u64().unwrap();
    assert_eq!(requests(&later[2]) - requests(&first), 30, "the 30, and none of its own asking");
    let mut before = &first;
    for now in &later {
        let rate = now["requests_per_second"].as_f64().unwrap();
        // Whichever redraws the 30 fell between, each shows them as a rate, and only them.
        assert_eq!(rate > 0.0, requests(now) > requests(before), "{before} then {now}");
        before = now;
    }
    assert!(lines.next().is_none(), "--count 4 stops after four");
    assert!(watch.wait().unwrap().success());

    // A table per redraw, with the rate column.
    let output = Command::new(BIN)
        .args(["status", "--ports", &port, "--watch", "--interval", "100ms", "--count", "2"])
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(text.matches("│ req/s │").count(), 2, "{text}");
    assert!(!text.contains('\x1b'), "no screen control into a pipe: {text}");

    // On a terminal (script(1) gives it one) each redraw clears the screen first, and the
    // states are coloured.
    let command = format!("{BIN} status --ports {port} --watch --interval 100ms --count 2");
    let output =
        Command::new("script").args(["-qec", &command, "/dev/null"]).env_remove("NO_COLOR").output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(text.matches("\x1b[H\x1b[2J").count(), 2, "{text}");
    assert!(text.contains("\x1b[32monline\x1b[0m"), "{text}");
}

#[test]
fn without_systemd_or_ports_it_says_what_to_do() {
    // This test host has no systemd as PID 1 (a container); on one that has, the list is real.
    if std::fs::read_to_string("/proc/1/comm").unwrap_or_default().trim() == "systemd" {
        return;
    }
    for command in ["status", "reload"] {
        let output = Command::new(BIN).arg(command).output().unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains(&format!("app {command}: ")) && stderr.contains("systemctl"), "{stderr}");
    }
}
