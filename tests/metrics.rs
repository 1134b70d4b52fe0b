//! `/metrics` of the real binary: exact counts in fork mode and, summed over every worker, in
//! cluster mode; only for allowed clients.

mod support;

use std::net::IpAddr;

use app::infra::procfs;
use support::*;

fn scrape(app: &App) -> String {
    let response = app.get("/metrics");
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    response.body
}

#[test]
fn fork_mode_counts_every_request_by_route_and_status() {
    let app = App::activated(&[]).ready();
    for _ in 0..25 {
        assert_eq!(app.get("/info").status, 200);
    }
    for _ in 0..3 {
        assert_eq!(app.get("/api/randoms?cant=10").status, 200);
    }
    assert_eq!(app.get("/api/randoms?cant=0").status, 400);
    assert_eq!(app.get("/nope").status, 404);
    assert_eq!(app.get("/also-nope").status, 404);

    let page = scrape(&app);
    let count = |series: &str| metric(&page, series).unwrap_or_else(|| panic!("no {series} in\n{page}"));
    assert_eq!(count(r#"app_http_requests_total{route="/info",status="200"}"#), 25.0);
    assert_eq!(count(r#"app_http_requests_total{route="/api/randoms",status="200"}"#), 3.0);
    assert_eq!(count(r#"app_http_requests_total{route="/api/randoms",status="400"}"#), 1.0);
    assert_eq!(count(r#"app_http_requests_total{route="unmatched",status="404"}"#), 2.0);
    assert_eq!(count(r#"app_http_request_duration_seconds_count{route="/info"}"#), 25.0);
    assert_eq!(count(r#"app_http_request_duration_seconds_bucket{route="/info",le="+Inf"}"#), 25.0);
    assert_eq!(count("app_randoms_computations_total"), 3.0);
    assert_eq!(count("app_randoms_numbers_total"), 30.0);
    // The scrape being answered is the one request in flight.
    assert_eq!(count("app_http_requests_in_flight"), 1.0);
    assert_eq!(count("app_worker_restarts_total"), 0.0);
    for family in ["app_chat_connections_open", "app_chat_connections_total", "app_chat_messages_total"] {
        assert_eq!(count(family), 0.0, "issue 5's counters are there, at zero");
    }
    // The scrape itself is counted once it is answered.
    assert_eq!(metric(&scrape(&app), r#"app_http_requests_total{route="/metrics",status="200"}"#), Some(1.0));
}

#[test]
fn a_cluster_scrape_from_any_worker_sums_every_worker() {
    let mut app = App::activated(&["--mode", "cluster", "--workers", "3"]).ready();
    app.wait_for_notification("STATUS=3/3 workers ready");
    // New connections each: the kernel spreads them over the workers.
    let mut answered = std::collections::BTreeSet::new();
    let mut sent = 0;
    while sent < 60 || (answered.len() < 2 && sent < 1000) {
        answered.insert(app.get("/info").json()["pid"].as_i64().unwrap());
        sent += 1;
    }
    assert!(answered.len() >= 2, "requests reached one worker only: {answered:?}");
    let sent = Some(f64::from(sent));
    // Every scrape, whichever worker answers it, sees them all.
    for _ in 0..10 {
        assert_eq!(metric(&scrape(&app), r#"app_http_requests_total{route="/info",status="200"}"#), sent);
    }

    // A worker dies: what it counted stays, and the primary's restart shows.
    let victim = children(app.pid())[0];
    signal(victim, libc::SIGKILL);
    app.wait_for_notification("STATUS=3/3 workers ready, 1 restart");
    let page = scrape(&app);
    assert_eq!(metric(&page, r#"app_http_requests_total{route="/info",status="200"}"#), sent, "{page}");
    assert_eq!(metric(&page, "app_worker_restarts_total"), Some(1.0));
    assert_eq!(metric(&page, "app_http_requests_in_flight"), Some(1.0), "the dead worker's gauge is gone");
}

#[test]
fn a_cluster_reload_keeps_the_counts() {
    let mut app = App::activated(&["--mode", "cluster", "--workers", "2"]).ready();
    for _ in 0..20 {
        app.get("/healthz");
    }
    app.signal(libc::SIGHUP);
    app.wait_for_notification("RELOADING=1");
    app.wait_for_notification("READY=1");
    eventually("the replaced workers have exited", || children(app.pid()).len() == 2);
    let page = scrape(&app);
    assert_eq!(
        metric(&page, r#"app_http_requests_total{route="/healthz",status="200"}"#),
        Some(20.0),
        "{page}"
    );
    assert_eq!(metric(&page, "app_worker_restarts_total"), Some(0.0), "a reload is not a restart");
}

#[test]
fn only_allowed_clients_may_read_metrics() {
    let app = App::activated(&["--metrics-allow", "127.0.0.1/32"]).ready();
    let local: IpAddr = "127.0.0.1".parse().unwrap();
    let other: IpAddr = "127.0.0.2".parse().unwrap();
    assert_eq!(request_from(local, app.addr, "/metrics", &[]).status, 200);

    let refused = request_from(other, app.addr, "/metrics", &[]);
    assert_eq!(refused.status, 403);
    assert_eq!(refused.header("content-type"), Some("application/json"));
    assert!(refused.error().contains("127.0.0.2 may not read /metrics"), "{}", refused.body);

    // Relayed by a trusted proxy on loopback: judged by the client the proxy names, not the proxy.
    let relayed = request_from(local, app.addr, "/metrics", &[("x-forwarded-for", "203.0.113.9")]);
    assert_eq!(relayed.status, 403, "{}", relayed.body);
    // The rest of the server does not care.
    assert_eq!(request_from(other, app.addr, "/healthz", &[]).status, 200);
}

#[test]
fn a_client_on_the_instances_own_address_may_read_metrics_whatever_the_allow_list() {
    // An allow list without loopback: as for an instance moved to 10.0.0.5, which `app status`
    // on the same host reaches from 10.0.0.5 itself.
    let app = App::activated(&["--metrics-allow", "192.0.2.0/24"]).ready();
    let own = app.addr.ip();
    let other: IpAddr = "127.0.0.2".parse().unwrap();
    assert_eq!(request_from(own, app.addr, "/metrics", &[]).status, 200);
    assert_eq!(request_from(other, app.addr, "/metrics", &[]).status, 403);
}

/// Resident bytes of a process, from /proc (what the test compares the app's sum with).
fn rss(pid: i32) -> f64 {
    procfs::rss_bytes(pid as u32).unwrap() as f64
}

/// Processor time (user + system) a process has used so far, in seconds, from /proc/PID/stat.
fn cpu_seconds(pid: i32) -> f64 {
    procfs::ticks_to_seconds(procfs::cpu_ticks(pid as u32).unwrap())
}

#[test]
fn process_metrics_cover_every_process_of_a_cluster_and_survive_a_worker_dying() {
    let mut app = App::activated(&["--mode", "cluster", "--workers", "3", "--instance", "8089"]).ready();
    app.wait_for_notification("STATUS=3/3 workers ready");
    let page = scrape(&app);
    let value =
        |page: &str, series: &str| metric(page, series).unwrap_or_else(|| panic!("no {series} in\n{page}"));

    let processes: Vec<i32> = std::iter::once(app.pid()).chain(children(app.pid())).collect();
    assert_eq!(processes.len(), 4);
    let expected: f64 = processes.iter().map(|&pid| rss(pid)).sum();
    let reported = value(&page, "process_resident_memory_bytes");
    // Four processes, not the one worker that answered; memory moves a little between readings.
    assert!((reported - expected).abs() < expected * 0.2, "reported {reported}, /proc says {expected}");
    assert!(value(&page, "process_open_fds") >= 4.0 * 3.0, "every process's fds (at least 0, 1, 2 each)");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let started = value(&page, "process_start_time_seconds");
    assert!(started <= now && started > now - 120.0, "the primary's start: {started} (now {now})");
    let info =
        format!(r#"app_instance_info{{name="8089",mode="cluster",main_pid="{}",workers="3"}}"#, app.pid());
    assert_eq!(value(&page, &info), 1.0, "{page}");
    let build = format!(r#"app_build_info{{version="{}",rustc=""#, env!("CARGO_PKG_VERSION"));
    assert!(page.lines().any(|line| line.starts_with(&build) && line.ends_with("} 1")), "{page}");

    // Busy workers, then one of them killed: its processor time stays counted.
    // Until the kernel's tick-granular (10 ms) counters show it: a fixed number of draws can
    // take less than one tick on a fast machine with a release build.
    let busy = wait_for(
        || "the instance's processor time to show the draws".to_string(),
        || {
            app.get("/api/randoms?cant=1000000");
            Some(value(&scrape(&app), "process_cpu_seconds_total")).filter(|&seconds| seconds > 0.0)
        },
    );
    let victim = children(app.pid())[0];
    signal(victim, libc::SIGKILL);
    eventually("the worker replaced", || {
        let now = children(app.pid());
        now.len() == 3 && !now.contains(&victim)
    });
    let after = value(&scrape(&app), "process_cpu_seconds_total");
    assert!(after >= busy, "processor time went back from {busy} to {after} when a worker died");
}

#[test]
fn fork_mode_reports_its_own_process() {
    let app = App::activated(&[]).ready();
    for _ in 0..20 {
        app.get("/api/randoms?cant=200000");
    }
    let used_before = cpu_seconds(app.pid());
    let page = scrape(&app);
    let used_after = cpu_seconds(app.pid());
    let value = |series: &str| metric(&page, series).unwrap_or_else(|| panic!("no {series} in\n{page}"));
    let own = rss(app.pid());
    assert!((value("process_resident_memory_bytes") - own).abs() < own * 0.2);
    assert!(value("process_open_fds") >= 3.0);
    // The process's own processor time, as /proc counts it on either side of the scrape.
    let reported = value("process_cpu_seconds_total");
    assert!(
        used_before <= reported && reported <= used_after,
        "process_cpu_seconds_total {reported}, /proc says {used_before} before and {used_after} after"
    );
    let info = format!(r#"app_instance_info{{name="",mode="fork",main_pid="{}",workers="1"}}"#, app.pid());
    assert_eq!(value(&info), 1.0, "{page}");
}
