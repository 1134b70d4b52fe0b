//! The routes of the real binary: /info, /healthz, /api/randoms, and the JSON errors.

mod support;

use std::io::Write;
use std::net::TcpStream;

use support::*;

#[test]
fn info_describes_the_process_and_never_its_environment() {
    let app = App::activated_with(&["--instance", "8082"], &[("SECRET_TOKEN", "hunter2")]).ready();
    let response = app.get("/info");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let info = response.json();
    for key in
        ["args", "platform", "version", "rustc", "rss_bytes", "exec_path", "pid", "ppid", "cwd", "cpus"]
    {
        assert!(!info[key].is_null(), "{key} missing from {info}");
    }
    assert_eq!(info["pid"], app.pid());
    assert_eq!(info["instance"], "8082");
    assert_eq!(info["mode"], "fork");
    assert_eq!(info["workers"], 1);
    assert!(info["worker"].is_null());
    assert_eq!(info["port"], app.addr.port());
    assert!(info["rustc"].as_str().unwrap().starts_with("rustc "));
    assert!(info["rss_bytes"].as_u64().unwrap() > 0);
    assert!(info["cpus"].as_u64().unwrap() >= 1);
    assert_eq!(info["platform"]["os"], "linux");
    assert!(info["uptime_s"].as_f64().unwrap() >= 0.0);
    assert!(!response.body.contains("hunter2"), "the environment leaked: {}", response.body);
}

#[test]
fn info_is_a_page_for_a_browser() {
    let app = App::activated(&[]).ready();
    let response = request(app.addr, "GET", "/info", &[("accept", "text/html,application/xhtml+xml")], b"");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(response.body.contains("<table>"));
    assert!(response.body.contains(&format!("<tr><th>pid</th><td>{}</td></tr>", app.pid())));
}

#[test]
fn the_client_address_comes_from_x_forwarded_for_only_through_a_trusted_proxy() {
    let trusting = App::activated(&[]).ready();
    let forwarded = [("x-forwarded-for", "203.0.113.7, 127.0.0.1")];
    let info = request(trusting.addr, "GET", "/info", &forwarded, b"").json();
    assert_eq!(info["client"], "203.0.113.7");

    let distrusting = App::activated(&["--trusted-proxies", "10.0.0.0/8"]).ready();
    let info = request(distrusting.addr, "GET", "/info", &forwarded, b"").json();
    assert_eq!(info["client"], "127.0.0.1", "a client cannot forge its address");
}

#[test]
fn randoms_counts_n_draws_of_1_to_1000() {
    let app = App::activated(&[]).ready();
    let response = app.get("/api/randoms?cant=5000");
    assert_eq!(response.status, 200);
    let counts = response.json();
    let counts = counts.as_object().unwrap();
    assert!(counts.keys().all(|k| (1..=1000).contains(&k.parse::<u32>().unwrap())), "{counts:?}");
    assert_eq!(counts.values().map(|n| n.as_u64().unwrap()).sum::<u64>(), 5000);
}

#[test]
fn randoms_defaults_to_the_seeds_count_capped_by_the_limit() {
    let app = App::activated(&["--randoms-max", "3000"]).ready();
    let counts = app.get("/api/randoms").json();
    assert_eq!(counts.as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum::<u64>(), 3000);
}

#[test]
fn randoms_rejects_a_bad_cant_with_a_json_400() {
    let app = App::activated(&["--randoms-max", "1000000"]).ready();
    for (query, says) in [
        ("cant=0", "at least 1"),
        ("cant=-5", "at least 1"),
        ("cant=abc", "whole number"),
        ("cant=1.5", "whole number"),
        ("cant=", "whole number"),
        ("cant=1000001", "at most 1000000"),
        ("cant=99999999999999999999999999", "at most 1000000"),
    ] {
        let response = app.get(&format!("/api/randoms?{query}"));
        assert_eq!(response.status, 400, "{query}");
        assert!(response.error().contains(says), "{query}: {}", response.body);
    }
}

#[test]
fn the_event_loop_answers_while_a_big_computation_runs_and_a_gone_client_cancels_it() {
    // One thread, one computation slot; 4e9 draws would take minutes if not cancelled.
    let app = App::activated_with(
        &["--threads", "1", "--randoms-concurrency", "1", "--randoms-wait", "0"],
        &[("APP_RANDOMS_MAX", "4000000000")],
    )
    .ready();
    let big = occupy_randoms_slot(&app, 4_000_000_000);

    let busy = app.get("/api/randoms?cant=1");
    assert_eq!(busy.status, 503);
    assert_eq!(busy.header("retry-after"), Some("1"));
    assert!(busy.error().contains("already running"));
    assert_eq!(app.get("/info").status, 200, "the event loop is free while the computation runs");

    drop(big);
    eventually("the cancelled computation frees its slot", || app.get("/api/randoms?cant=1").status == 200);
}

#[test]
fn health_unknown_paths_and_wrong_methods() {
    let app = App::activated(&[]).ready();
    assert_eq!(app.get("/healthz").status, 200);
    let missing = app.get("/nope");
    assert_eq!(missing.status, 404);
    assert!(missing.error().contains("/nope"));
    let wrong = request(app.addr, "DELETE", "/info", &[], b"");
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.header("allow"), Some("GET, HEAD"));
    assert!(wrong.error().contains("DELETE"));
    let head = request(app.addr, "HEAD", "/healthz", &[], b"");
    assert_eq!((head.status, head.body.as_str()), (200, ""));
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let app = App::activated(&[]).ready();
    let mut stream = TcpStream::connect(app.addr).unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\nGET /info HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    std::io::Read::read_to_string(&mut stream, &mut raw).unwrap();
    assert_eq!(raw.matches("HTTP/1.1 200 OK").count(), 2, "{raw}");
}

#[test]
fn several_runtime_threads_serve_too() {
    let app = App::activated(&["--threads", "3"]).ready();
    let info = app.get("/info").json();
    assert_eq!(info["threads"], 3);
    assert_eq!(app.get("/api/randoms?cant=10").status, 200);
}

#[test]
fn a_randoms_request_waits_for_a_busy_slot_instead_of_failing() {
    let app = App::activated_with(
        &["--randoms-concurrency", "1", "--randoms-wait", "30s"],
        &[("APP_RANDOMS_MAX", "4000000000")],
    )
    .ready();
    let in_flight = || metric(&app.get("/metrics").body, "app_http_requests_in_flight").unwrap_or(-1.0);
    let mut big = TcpStream::connect(app.addr).unwrap();
    send(&mut big, "GET", "/api/randoms?cant=4000000000", &[], b"").unwrap();
    // The scrape counts itself: 2 means the big computation is running.
    eventually("the big computation is running", || in_flight() == 2.0);

    let addr = app.addr;
    let waiting = std::thread::spawn(move || request(addr, "GET", "/api/randoms?cant=10", &[], b""));
    eventually("the small request waits for the slot", || in_flight() == 3.0);
    drop(big); // cancelled, so the slot frees
    let answer = waiting.join().unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[test]
fn a_randoms_request_is_refused_when_no_slot_frees_in_time() {
    let app = App::activated_with(
        &["--randoms-concurrency", "1", "--randoms-wait", "200ms"],
        &[("APP_RANDOMS_MAX", "4000000000")],
    )
    .ready();
    let mut big = TcpStream::connect(app.addr).unwrap();
    send(&mut big, "GET", "/api/randoms?cant=4000000000", &[], b"").unwrap();
    eventually("a request is refused after waiting", || app.get("/api/randoms?cant=1").status == 503);
    let refused = app.get("/api/randoms?cant=1");
    assert_eq!(refused.status, 503);
    assert!(refused.error().contains("none ended within 200ms"), "{}", refused.body);
}

#[test]
fn a_query_value_that_is_not_utf8_is_a_400_naming_its_parameter() {
    let app = App::activated(&[]).ready();
    for path in
        ["/api/randoms?cant=%FF", "/v1/todos?limit=%C3%28", "/ws?room=%FE&name=a", "/info?x=1&cant=%FF"]
    {
        let response = app.get(path);
        assert_eq!(response.status, 400, "{path}: {}", response.body);
        assert!(response.error().contains("not percent-encoded UTF-8"), "{path}: {}", response.body);
    }
    assert!(app.get("/api/randoms?cant=%FF").error().contains("`cant`"));
    // Every route decodes its query the same way.
    let counts = app.get("/api/randoms?cant=%35").json();
    assert_eq!(counts.as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum::<u64>(), 5);
    assert_eq!(app.get("/v1/todos?limit=%35").json()["limit"], 5);
}

#[test]
fn an_http_1_1_request_needs_exactly_one_host() {
    let app = App::activated(&[]).ready();
    let no_host = raw_request(app.addr, b"GET /healthz HTTP/1.1\r\nconnection: close\r\n\r\n").unwrap();
    assert_eq!(no_host.status, 400);
    assert!(no_host.error().contains("needs a Host header"), "{}", no_host.body);
    let two = b"GET /healthz HTTP/1.1\r\nhost: a\r\nhost: b\r\nconnection: close\r\n\r\n";
    let two_hosts = raw_request(app.addr, two).unwrap();
    assert_eq!(two_hosts.status, 400);
    assert!(two_hosts.error().contains("more than one Host"), "{}", two_hosts.body);
    let bad =
        raw_request(app.addr, b"GET /healthz HTTP/1.1\r\nhost: a@b\r\nconnection: close\r\n\r\n").unwrap();
    assert_eq!(bad.status, 400);
    // HTTP/1.0 had no Host header: its absence there is fine.
    assert_eq!(raw_request(app.addr, b"GET /healthz HTTP/1.0\r\n\r\n").unwrap().status, 200);
    assert_eq!(app.get("/healthz").status, 200);
}
