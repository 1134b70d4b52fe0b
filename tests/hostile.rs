//! A battery of hostile inputs against the real binary, in groups (heads, bodies, queries and ids,
//! WebSocket frames): each case is a raw request or frame and the answer it must get; after each
//! group the process must still be alive and serving. What another test file already checks (each
//! limit in limits.rs, chat's rate limit in chat.rs, Redis faults in todos.rs, query decoding in
//! routes.rs) is not repeated here. It runs without the test
//! harness (Cargo.toml: harness = false) so that the tally is printed on every run, captured or
//! not: `hostile: N passed, 0 failed`, and the binary fails if any case did.

mod support;

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};

use support::chat::{self, raw_frame, server_close, ChatClient};
use support::*;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

/// The tally, and what failed.
#[derive(Default)]
struct Battery {
    passed: usize,
    failed: Vec<String>,
}

impl Battery {
    /// Runs one case: it passes if `check` returns Ok (a panic inside fails it too).
    fn case(&mut self, group: &str, name: &str, check: impl FnOnce() -> Result<(), String>) {
        let outcome = catch_unwind(AssertUnwindSafe(check))
            .unwrap_or_else(|panic| Err(format!("panicked: {}", panic_text(&panic))));
        match outcome {
            Ok(()) => {
                self.passed += 1;
                println!("hostile {group}: {name}: ok");
            }
            Err(problem) => {
                println!("hostile {group}: {name}: FAILED: {problem}");
                self.failed.push(format!("{group}: {name}: {problem}"));
            }
        }
    }

    /// The case every group ends with: the process survived it and serves.
    fn still_serving(&mut self, group: &str, app: &App) {
        self.case(group, "the process is alive and serving afterwards", || {
            check(alive(app.pid()), "the process is gone")?;
            let health = try_request(app.addr, "GET", "/healthz", &[], b"").map_err(|e| e.to_string())?;
            expect(health.status, 200, &health.body)
        });
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

fn check(condition: bool, problem: &str) -> Result<(), String> {
    condition.then_some(()).ok_or_else(|| problem.to_string())
}

fn expect<T: PartialEq + std::fmt::Debug>(got: T, wanted: T, context: &str) -> Result<(), String> {
    check(got == wanted, &format!("got {got:?}, wanted {wanted:?}: {context}"))
}

/// `raw` sent as it is, answered with `status` and (if a JSON error is wanted) an error saying `says`.
fn answered(app: &App, raw: &[u8], status: u16, says: &str) -> Result<(), String> {
    let response = raw_request(app.addr, raw).map_err(|e| format!("no answer: {e}"))?;
    expect(response.status, status, &response.body)?;
    if says.is_empty() {
        return Ok(());
    }
    let error = serde_json::from_str::<serde_json::Value>(&response.body)
        .ok()
        .and_then(|body| body["error"].as_str().map(str::to_string))
        .ok_or_else(|| format!("not a JSON error: {}", response.body))?;
    check(error.contains(says), &format!("the error does not say `{says}`: {error}"))
}

/// A GET of `path` answered `status` with an error saying `says`.
fn got(app: &App, path: &str, status: u16, says: &str) -> Result<(), String> {
    let raw = format!("GET {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n");
    answered(app, raw.as_bytes(), status, says)
}

/// A todo POST head with `framing`, followed by `body` (written as it is).
fn todo_post(framing: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /v1/todos HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\nconnection: close\r\n\
         {framing}\r\n\r\n{body}"
    )
    .into_bytes()
}

fn heads(battery: &mut Battery) {
    let group = "heads";
    let app = App::activated(&["--header-timeout", "500ms"]).ready();
    let cases: &[(&str, &[u8], u16, &str)] = &[
        ("HTTP/1.1 without Host", b"GET /healthz HTTP/1.1\r\nconnection: close\r\n\r\n", 400, "Host"),
        (
            "two Hosts",
            b"GET /healthz HTTP/1.1\r\nhost: a\r\nhost: b\r\nconnection: close\r\n\r\n",
            400,
            "Host",
        ),
        (
            "a Host with user information",
            b"GET / HTTP/1.1\r\nhost: u@a\r\nconnection: close\r\n\r\n",
            400,
            "Host",
        ),
        ("a Host with a path", b"GET / HTTP/1.1\r\nhost: a/b\r\nconnection: close\r\n\r\n", 400, "Host"),
        ("HTTP/1.0 without Host is served", b"GET /healthz HTTP/1.0\r\n\r\n", 200, ""),
        ("a request line that is not HTTP", b"HELLO THERE\r\n\r\n", 400, ""),
        ("an unknown HTTP version", b"GET /healthz HTTP/3.7\r\nhost: t\r\n\r\n", 400, ""),
        ("a space in a header name", b"GET /healthz HTTP/1.1\r\nhost: t\r\nx y: z\r\n\r\n", 400, ""),
        ("an obsolete folded header", b"GET /healthz HTTP/1.1\r\nhost: t\r\nx: a\r\n b\r\n\r\n", 400, ""),
        ("a NUL in a header value", b"GET /healthz HTTP/1.1\r\nhost: t\r\nx: a\0b\r\n\r\n", 400, ""),
        (
            "two different Content-Lengths",
            b"POST /v1/todos HTTP/1.1\r\nhost: t\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab",
            400,
            "",
        ),
        (
            "a negative Content-Length",
            b"POST /v1/todos HTTP/1.1\r\nhost: t\r\ncontent-length: -1\r\n\r\n",
            400,
            "",
        ),
        (
            "a Transfer-Encoding that does not end in chunked",
            b"POST /v1/todos HTTP/1.1\r\nhost: t\r\ntransfer-encoding: gzip\r\n\r\n",
            400,
            "",
        ),
    ];
    for (name, raw, status, says) in cases {
        battery.case(group, name, || answered(&app, raw, *status, says));
    }
    battery.case(group, "a head trickled line by line is cut at --header-timeout", || {
        match trickle(app.addr, b"GET /healthz HTTP/1.1\r\nhost: t\r\n", b"x-slow: 1\r\n") {
            Ok(response) => expect(response.status, 408, &response.body),
            // The connection must have been made: only then is a close unanswered an answer.
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                Err(format!("no connection: {error}"))
            }
            Err(_) => Ok(()), // Closed unanswered.
        }
    });
    battery.case(group, "Content-Length with chunked: the chunked body is the one read", || {
        let raw = todo_post(
            "content-length: 4\r\ntransfer-encoding: chunked",
            "d\r\n{\"title\":\"s\"}\r\n0\r\n\r\n",
        );
        answered(&app, &raw, 201, "")
    });
    battery.still_serving(group, &app);
}

fn bodies(battery: &mut Battery) {
    let group = "bodies";
    let args = [
        "--body-timeout",
        "500ms",
        "--body-min-rate",
        "1000",
        "--max-body-bytes",
        "4096",
        "--todos-max-body-bytes",
        "1024",
        "--max-connections",
        "4",
    ];
    let app = App::activated(&args).ready();
    battery.case(group, "a declared body over --max-body-bytes gets 413", || {
        answered(&app, &todo_post("content-length: 5000", ""), 413, "limit of 4096 bytes")
    });
    battery.case(group, "a chunked body over --todos-max-body-bytes gets 413", || {
        let chunk = format!("400\r\n{}\r\n", " ".repeat(1024));
        answered(&app, &todo_post("transfer-encoding: chunked", &chunk.repeat(2)), 413, "1024")
    });
    battery.case(group, "a body left unread by its route does not hold the connection", || {
        let raw = b"POST /healthz HTTP/1.1\r\nhost: t\r\ncontent-length: 100\r\n\r\n{";
        answered(&app, raw, 405, "not allowed")
    });
    battery.case(group, "a chunk size that is not hex gets 400", || {
        answered(&app, &todo_post("transfer-encoding: chunked", "zz\r\n{}\r\n0\r\n\r\n"), 400, "")
    });
    battery.case(group, "malformed JSON gets 400 naming line and column", || {
        answered(&app, &todo_post("content-length: 9", "{\"title\":"), 400, "line 1 column 9")
    });
    battery.case(group, "a body that is not JSON gets 415", || {
        let raw = b"POST /v1/todos HTTP/1.1\r\nhost: t\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\
                    connection: close\r\n\r\nhi";
        answered(&app, raw, 415, "application/json")
    });
    battery.case(group, "every connection slot is free again", || {
        // Three held open and a fourth served: none of the four --max-connections slots is kept.
        let held = hold_connections(app.addr, 3, b"");
        eventually("three connections are accepted", || {
            accepted_connections(app.pid(), app.addr.port()) == 3
        });
        eventually("the fourth slot serves", || app.get("/healthz").status == 200);
        drop(held);
        Ok(())
    });
    battery.still_serving(group, &app);
}

fn queries_and_ids(battery: &mut Battery) {
    let group = "queries and ids";
    let app = App::activated(&[]).ready();
    let cases = [
        ("/api/randoms?cant=%C3%28", 400, "`cant`"),
        ("/v1/todos?limit=%FF", 400, "`limit`"),
        ("/ws?room=%FE&name=a", 400, "`room`"),
        ("/info?%FF=1", 400, "name `%FF`"),
        ("/api/randoms?cant=99999999999999999999999", 400, "at most"),
        ("/api/randoms?cant=-1", 400, "at least 1"),
        ("/v1/todos?limit=0", 400, "1 to 100"),
        ("/v1/todos?offset=-1", 400, "whole number"),
        ("/v1/todos/05", 404, "no todo"),
        ("/v1/todos/+5", 404, "no todo"),
        ("/v1/todos/%35", 404, "no todo"),
        ("/v1/todos/0x5", 404, "no todo"),
        ("/v1/todos/5.0", 404, "no todo"),
        ("/v1/todos/99999999999999999999", 404, "no todo"),
        ("/v1/todos/1/2", 404, "no route"),
    ];
    for (path, status, says) in cases {
        battery.case(group, path, || got(&app, path, status, says));
    }
    battery.still_serving(group, &app);
}

fn frames(battery: &mut Battery) {
    let group = "websocket frames";
    let app = App::activated(&["--chat-max-message-bytes", "64"]).ready();
    let close_payload = |code: u16, reason: &[u8]| [&code.to_be_bytes()[..], reason].concat();
    let cases: Vec<(&str, Vec<u8>, CloseCode)> = vec![
        ("text that is not UTF-8", raw_frame(0x81, &[0xff, 0xfe], true), CloseCode::Invalid),
        ("an unmasked frame", raw_frame(0x81, b"{}", false), CloseCode::Protocol),
        ("reserved bit 1 set", raw_frame(0xc1, b"{}", true), CloseCode::Protocol),
        ("reserved bit 3 set", raw_frame(0x91, b"{}", true), CloseCode::Protocol),
        ("a reserved data opcode", raw_frame(0x83, b"{}", true), CloseCode::Protocol),
        ("a reserved control opcode", raw_frame(0x8b, b"", true), CloseCode::Protocol),
        ("a continuation with nothing to continue", raw_frame(0x80, b"x", true), CloseCode::Protocol),
        ("a fragmented ping", raw_frame(0x09, b"", true), CloseCode::Protocol),
        ("a ping over 125 bytes", raw_frame(0x89, &[0; 126], true), CloseCode::Protocol),
        (
            "a close code that is not allowed (999)",
            raw_frame(0x88, &close_payload(999, b""), true),
            CloseCode::Protocol,
        ),
        (
            "close code 1005, never sent on the wire",
            raw_frame(0x88, &close_payload(1005, b""), true),
            CloseCode::Protocol,
        ),
        ("a one-byte close payload", raw_frame(0x88, &[3], true), CloseCode::Protocol),
        (
            "a close reason that is not UTF-8",
            raw_frame(0x88, &close_payload(1000, &[0xff]), true),
            CloseCode::Invalid,
        ),
        ("a message far over the limit", raw_frame(0x81, &[b'x'; 300], true), CloseCode::Size),
        (
            "a client's close 1000 is echoed",
            raw_frame(0x88, &close_payload(1000, b"bye"), true),
            CloseCode::Normal,
        ),
        (
            "a client's close 4321 is echoed",
            raw_frame(0x88, &close_payload(4321, b""), true),
            CloseCode::Library(4321),
        ),
    ];
    for (name, frame, wanted) in cases {
        battery.case(group, name, || {
            let mut socket = chat::open(app.addr, "lobby", "hostile");
            socket.get_mut().write_all(&frame).map_err(|e| e.to_string())?;
            let (code, clean) = server_close(&mut socket);
            expect(code, Some(wanted), "the server's close frame")?;
            check(clean, "the TCP connection was reset instead of closed after the close")
        });
    }
    battery.case(group, "a binary frame gets an error frame and the socket stays", || {
        let mut client = ChatClient::join(app.addr, "lobby", "binary");
        client.send(Message::binary(vec![1, 2, 3]));
        client.expect("an error frame", |f| f["error"].as_str().is_some_and(|e| e.contains("not binary")));
        client.say("still here");
        client.expect("the socket still carries messages", |f| f["text"] == "still here");
        Ok(())
    });
    battery.still_serving(group, &app);
}

/// The words of libtest's `--skip WORD` / `--skip=WORD` among the arguments (the Nix package's
/// check phase passes `--skip` words for what its build sandbox cannot run). Other libtest
/// arguments, such as `--test-threads`, do not apply to a battery that runs in sequence.
fn skipped_words() -> Vec<String> {
    let mut words = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if let Some(word) = arg.strip_prefix("--skip=") {
            words.push(word.to_string());
        } else if arg == "--skip" {
            words.extend(args.next());
        }
    }
    words
}

/// A group of cases: its name (matched by `--skip`) and what runs it.
type Group = (&'static str, fn(&mut Battery));

fn main() {
    let mut battery = Battery::default();
    let skipped = skipped_words();
    let groups: [Group; 4] = [
        ("heads", heads),
        ("bodies", bodies),
        ("queries and ids", queries_and_ids),
        ("websocket frames", frames),
    ];
    for (name, group) in groups {
        match skipped.iter().find(|word| name.contains(word.as_str())) {
            Some(word) => println!("hostile {name}: skipped (--skip={word})"),
            None => group(&mut battery),
        }
    }
    for failure in &battery.failed {
        eprintln!("failed: {failure}");
    }
    println!("hostile: {} passed, {} failed", battery.passed, battery.failed.len());
    std::process::exit(if battery.failed.is_empty() { 0 } else { 1 });
}
