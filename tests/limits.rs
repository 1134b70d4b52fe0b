//! Every HTTP limit of the real binary, each set by its flag.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;

use support::*;

#[test]
fn a_request_head_over_the_limit_gets_431() {
    let app = App::activated(&["--max-header-bytes", "1024"]).ready();
    let long = "x".repeat(2000);
    let response = request(app.addr, "GET", "/info", &[("x-long", &long)], b"");
    assert_eq!(response.status, 431);
    let fits = "x".repeat(500);
    assert_eq!(request(app.addr, "GET", "/info", &[("x-long", &fits)], b"").status, 200);
}

#[test]
fn a_body_over_the_limit_gets_a_json_413() {
    let app = App::activated(&["--max-body-bytes", "10"]).ready();
    let response = request(app.addr, "POST", "/healthz", &[], b"0123456789X");
    assert_eq!(response.status, 413);
    assert!(response.error().contains("limit of 10 bytes"), "{}", response.body);
}

#[test]
fn a_client_that_never_finishes_its_head_is_disconnected() {
    let app = App::activated(&["--header-timeout", "300ms"]).ready();
    let mut slow = TcpStream::connect(app.addr).unwrap();
    slow.write_all(b"GET /info HTTP/1.1\r\nhost: t\r\n").unwrap();
    slow.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut answer = Vec::new();
    slow.read_to_end(&mut answer).expect("closed by the server, not left hanging");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(app.get("/healthz").status, 200, "the server is unharmed");
}

#[test]
fn connections_over_the_limit_are_refused_with_a_503_at_once() {
    let app = App::activated(&["--max-connections", "2"]).ready();
    let held = hold_connections(app.addr, 2, b"");
    eventually("both connections are accepted", || accepted_connections(app.pid(), app.addr.port()) == 2);

    let refused = app.get("/healthz");
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(refused.error().contains("too many open connections"), "{}", refused.body);

    drop(held);
    eventually("a freed slot serves again", || app.get("/healthz").status == 200);
}

#[test]
fn keep_alive_can_be_turned_off() {
    let app = App::activated(&["--keep-alive", "false"]).ready();
    let mut stream = TcpStream::connect(app.addr).unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n").unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let response = parse_response(&raw).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), Some("close"));
}

#[test]
fn a_socket_it_binds_itself_gets_the_backlog_asked_for() {
    let app = App::bound(&["--backlog", "7"]);
    // For a listening socket, ss reports the accept queue's limit as Send-Q.
    let output = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{}", app.addr.port())])
        .output()
        .expect("ss (Debian package iproute2) is installed by the test command");
    let line = String::from_utf8_lossy(&output.stdout).to_string();
    let send_q = line.split_whitespace().nth(2);
    assert_eq!(send_q, Some("7"), "{line}");
}

/// Sends the head of a todo POST with `framing` (a content-length or chunked), then trickles
/// `piece` until the server closes; returns what it answered.
fn trickle_todo(app: &App, framing: &str, piece: &'static [u8]) -> Response {
    let head =
        format!("POST /v1/todos HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n{framing}\r\n\r\n");
    trickle(app.addr, head.as_bytes(), piece).expect("answered and closed, not left hanging")
}

#[test]
fn a_body_that_trickles_gets_408_and_its_connection_slot_back() {
    // 500 ms, plus a second per 1000 bytes: 50 bytes a second is far too slow.
    let args = ["--body-timeout", "500ms", "--body-min-rate", "1000", "--max-connections", "1"];
    let app = App::activated(&args).ready();
    let answer = trickle_todo(&app, "content-length: 1000", b"{");
    assert_eq!(answer.status, 408, "{}", answer.body);
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(answer.error().contains("too slow"), "{}", answer.body);
    assert_eq!(app.get("/healthz").status, 200, "the only connection slot is free again");
}

#[test]
fn a_chunked_body_that_never_ends_gets_408() {
    let app = App::activated(&["--body-timeout", "500ms", "--max-connections", "1"]).ready();
    let answer = trickle_todo(&app, "transfer-encoding: chunked", b"1\r\n \r\n");
    assert_eq!(answer.status, 408, "{}", answer.body);
    assert_eq!(app.get("/healthz").status, 200);
}

#[test]
fn a_body_that_stops_gets_408() {
    let app = App::activated(&["--body-timeout", "300ms", "--body-min-rate", "0"]).ready();
    let mut stream = TcpStream::connect(app.addr).unwrap();
    let head = "POST /v1/todos HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n{\"ti";
    stream.write_all(head.as_bytes()).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let answer = read_response(&mut stream).unwrap();
    assert_eq!(answer.status, 408);
    assert!(answer.error().contains("too slow: 4 bytes"), "{}", answer.body);
}

#[test]
fn a_refused_upload_still_being_sent_gets_its_413_not_a_reset() {
    let app = App::activated(&[]).ready();
    // 16 MiB, over the 16 KiB todo limit, chunked (so the size is known only while reading), sent
    // whole before the answer is read, as curl does: a server that closes with that input unread
    // resets the connection, the client's next write fails, and it never reads the 413.
    let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
    for attempt in 0..3 {
        let mut stream = TcpStream::connect(app.addr).unwrap();
        let head = "POST /v1/todos HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n\
                    transfer-encoding: chunked\r\n\r\n";
        stream.write_all(head.as_bytes()).unwrap();
        for _ in 0..256 {
            let sent = stream.write_all(chunk.as_bytes());
            sent.unwrap_or_else(|e| panic!("attempt {attempt}: the upload was cut off: {e}"));
        }
        stream.write_all(b"0\r\n\r\n").unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let answer = read_response(&mut stream).unwrap_or_else(|e| panic!("attempt {attempt}: {e}"));
        assert_eq!(answer.status, 413, "attempt {attempt}: {}", answer.body);
    }
}
