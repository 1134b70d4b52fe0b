//! Chat rooms on the real binary: delivery within a room and across processes through a real Redis,
//! a Redis restart mid-chat, the limits, a slow client, and the 1001 close on drain.

mod support;

use std::time::Duration;

use support::chat::{self, ChatClient};
use support::redis::Redis;
use support::*;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

fn app(extra: &[&str]) -> (App, TempDir) {
    let data = temp_dir();
    let mut args = vec!["--data-dir", data.path().to_str().unwrap()];
    args.extend_from_slice(extra);
    (App::activated(&args).ready(), data)
}

fn is_message(text: &str) -> impl Fn(&serde_json::Value) -> bool + '_ {
    move |frame| frame["text"] == text
}

#[test]
fn a_message_reaches_everyone_in_its_room_and_no_one_else() {
    let (app, _data) = app(&[]);
    let mut alice = ChatClient::join(app.addr, "lobby", "alice");
    let mut bob = ChatClient::join(app.addr, "lobby", "bob");
    let mut carol = ChatClient::join(app.addr, "kitchen", "carol");
    alice.expect("bob's join notice", |f| f["event"] == "join" && f["name"] == "bob" && f["room"] == "lobby");

    alice.say("hello lobby");
    let got = bob.expect("alice's message", is_message("hello lobby"));
    assert_eq!(got["room"], "lobby");
    assert_eq!(got["from"], "alice");
    assert!(got["ts"].as_i64().unwrap() > 1_600_000_000_000);
    alice.expect("her own message back", is_message("hello lobby"));
    assert!(carol.try_expect(Duration::from_millis(300), is_message("hello lobby")).is_none());

    drop(bob);
    alice.expect("bob's leave notice", |f| f["event"] == "leave" && f["name"] == "bob");
}

#[test]
fn a_message_crosses_processes_through_redis() {
    let redis = Redis::start();
    let (a, _da) = app(&["--redis-url", &redis.url()]);
    let (b, _db) = app(&["--redis-url", &redis.url(), "--mode", "cluster", "--workers", "2"]);
    let mut on_a = ChatClient::join(a.addr, "lobby", "alice");
    let mut on_b = ChatClient::join(b.addr, "lobby", "bob");
    on_a.expect("bob's join, from the other process", |f| f["event"] == "join" && f["name"] == "bob");
    on_a.say("from a");
    assert_eq!(on_b.expect("a's message on b", is_message("from a"))["from"], "alice");
    on_b.say("from b");
    assert_eq!(on_a.expect("b's message on a", is_message("from b"))["from"], "bob");
}

#[test]
fn a_redis_restart_mid_chat_gives_error_frames_then_recovers() {
    let mut redis = Redis::start();
    let (a, _da) = app(&["--redis-url", &redis.url()]);
    let (b, _db) = app(&["--redis-url", &redis.url()]);
    let mut on_a = ChatClient::join(a.addr, "lobby", "alice");
    let mut on_b = ChatClient::join(b.addr, "lobby", "bob");
    on_a.say("before");
    on_b.expect("the message before the restart", is_message("before"));

    redis.stop();
    let mut late = ChatClient::join_only(a.addr, "lobby", "late");
    late.expect("an error frame on joining while Redis is away", |f| f["error"].is_string());
    on_a.say("while away");
    let refusal = on_a.expect("an error frame while Redis is away", |f| f["error"].is_string());
    assert!(refusal["error"].as_str().unwrap().contains("not delivered"), "{refusal}");

    redis.resume();
    // The relay reconnects with backoff; until then each try gets an error frame.
    eventually("a message reaches b again after the restart", || {
        on_a.say("after");
        on_b.try_expect(Duration::from_millis(500), is_message("after")).is_some()
    });
    assert!(a.logs().contains("chat relay subscribed"), "{}", a.logs());
}

#[test]
fn a_message_of_the_largest_size_the_flags_allow_is_delivered() {
    let (app, _data) = app(&["--chat-max-message-bytes", "1048576"]);
    let alice = ChatClient::join(app.addr, "lobby", "alice");
    let mut bob = ChatClient::join(app.addr, "lobby", "bob");
    // {"text":"..."} of exactly 1 MiB, once JSON-encoded.
    let text = "x".repeat(1_048_576 - r#"{"text":""}"#.len());
    alice.say(&text);
    let got = bob.expect("the 1 MiB message", |f| f.get("text").is_some());
    assert!(got["text"] == text.as_str(), "{} bytes", got["text"].as_str().unwrap().len());
}

#[test]
fn room_and_user_names_are_checked_before_the_upgrade() {
    let (app, _data) = app(&[]);
    let upgrade = [
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    for (query, problem) in [
        ("room=lobby", "name is required"),
        ("name=bob", "room is required"),
        ("room=lob%20by&name=bob", "room may hold"),
        ("room=lobby&name=%3Cscript%3E", "name may hold"),
        (&format!("room=lobby&name={}", "b".repeat(33)), "1 to 32 characters"),
    ] {
        let response = request(app.addr, "GET", &format!("/ws?{query}"), &upgrade, b"");
        assert_eq!(response.status, 400, "{query}");
        assert!(response.error().contains(problem), "{query}: {}", response.body);
    }
    let plain = app.get("/ws?room=lobby&name=bob");
    assert_eq!(plain.status, 426);
    // The socket stays open after a 101: read the head only.
    let mut stream = std::net::TcpStream::connect(app.addr).unwrap();
    send(&mut stream, "GET", "/ws?room=lobby&name=Zo%C3%AB", &upgrade, b"").unwrap();
    let accepted = read_framed_response(&mut stream).unwrap();
    assert_eq!(accepted.status, 101);
    assert_eq!(accepted.header("sec-websocket-accept"), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
}

#[test]
fn oversized_and_malformed_messages_get_error_frames() {
    let (app, _data) = app(&[]);
    let mut alice = ChatClient::join(app.addr, "lobby", "alice");
    alice.say(&"x".repeat(4096));
    let refusal = alice.expect("an error for a message over 4 KiB", |f| f["error"].is_string());
    assert!(refusal["error"].as_str().unwrap().contains("limit of 4096 bytes"), "{refusal}");
    alice.send(Message::text("not json"));
    alice.expect("an error for text that is not JSON", |f| {
        f["error"].as_str().is_some_and(|e| e.contains("JSON"))
    });
    alice.send(Message::text(r#"{"text": "hi", "to": "bob"}"#));
    alice.expect("an error for an unknown field", |f| {
        f["error"].as_str().is_some_and(|e| e.contains("unknown field"))
    });
    alice.say(&"y".repeat(4000));
    alice.expect("a message just under the limit", |f| f["text"].as_str().is_some_and(|t| t.len() == 4000));
    // Far above the limit the frame is not even read: the socket closes with 1009.
    alice.say(&"z".repeat(20_000));
    assert_eq!(alice.expect_close().map(|f| f.code), Some(CloseCode::Size));
}

#[test]
fn a_flood_is_rate_limited() {
    let (app, _data) = app(&["--chat-rate", "1", "--chat-burst", "3"]);
    let mut alice = ChatClient::join(app.addr, "lobby", "alice");
    for i in 0..6 {
        alice.say(&format!("flood {i}"));
    }
    // The refusal is written to the socket at once, the burst's echoes come back through the
    // room: either may arrive first.
    let (mut refusal, mut burst_through) = (None, false);
    while refusal.is_none() || !burst_through {
        let frame = alice.expect("a rate-limit error and the burst's echo", |f| {
            f["error"].is_string() || is_message("flood 2")(f)
        });
        if frame["error"].is_string() {
            refusal = Some(frame);
        } else {
            burst_through = true;
        }
    }
    let refusal = refusal.unwrap();
    assert!(refusal["error"].as_str().unwrap().contains("rate limit"), "{refusal}");
    assert!(alice.try_expect(Duration::from_millis(300), is_message("flood 5")).is_none());
}

#[test]
fn a_client_that_does_not_read_is_disconnected() {
    let (app, _data) = app(&chat::SLOW_CLIENT_ARGS);
    let mut slow = chat::open(app.addr, "lobby", "slow");
    let mut fast = ChatClient::join(app.addr, "lobby", "fast");
    let kicked = chat::flood_until_logged(&app, &mut fast, "too slow");
    assert!(kicked, "the slow client was never disconnected: {}", app.logs());
    // The slow client, reading at last, finds its stream ends: the close frame or the connection cut.
    slow.get_mut().set_read_timeout(Some(PATIENCE)).unwrap();
    let ended = (0..100_000).any(|_| !matches!(slow.read(), Ok(Message::Text(_))));
    assert!(ended);
}

#[test]
fn drain_closes_chat_sockets_with_1001() {
    let (mut app, _data) = app(&["--drain-timeout", "30s"]);
    let mut alice = ChatClient::join(app.addr, "lobby", "alice");
    app.signal(libc::SIGTERM);
    let close = alice.expect_close().expect("a close frame");
    assert_eq!(close.code, CloseCode::Away);
    assert!(app.wait_exit().success());
}

#[test]
fn idle_sockets_are_pinged_and_answering_ones_kept() {
    let (app, _data) = app(&["--chat-ping-interval", "200ms"]);
    let mut socket = chat::open(app.addr, "lobby", "idle");
    socket.get_mut().set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    // Reading is what lets tungstenite answer pings; over 1.5 s (over two periods) several come.
    let mut pings = 0;
    let until = std::time::Instant::now() + Duration::from_millis(1500);
    while std::time::Instant::now() < until {
        match socket.read() {
            Ok(Message::Ping(_)) => pings += 1,
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("the socket ended although it answered the pings: {e}"),
        }
    }
    assert!(pings >= 3, "{pings} pings");
    socket.send(Message::text(r#"{"text":"still here"}"#)).unwrap();
    socket.get_mut().set_read_timeout(Some(PATIENCE)).unwrap();
    let echoed = (0..50).any(|_| matches!(socket.read(), Ok(Message::Text(t)) if t.contains("still here")));
    assert!(echoed);
}

#[test]
fn a_silent_client_is_dropped() {
    let (app, _data) = app(&["--chat-ping-interval", "200ms"]);
    let mut socket = chat::open(app.addr, "lobby", "silent");
    // Read the raw bytes under the WebSocket layer, which would answer the pings: the pings arrive
    // and go unanswered, until the server gives up on the client and closes the connection.
    let stream = socket.get_mut();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut bytes = [0u8; 1024];
    let ended = loop {
        match std::io::Read::read(stream, &mut bytes) {
            Ok(0) => break Ok(()),
            Ok(_) => continue,
            Err(error)
                if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
            {
                break Err(error)
            }
            Err(_) => break Ok(()), // reset by the server: closed too
        }
    };
    assert!(ended.is_ok(), "the silent socket was kept for {PATIENCE:?}");
    let _ = app;
}

#[test]
fn the_start_up_warning_says_how_far_chat_reaches_without_redis() {
    let (cluster, _data) = app(&["--mode", "cluster", "--workers", "2"]);
    let crosses = "chat crosses this instance's workers through the primary; other instances and hosts need --redis-url";
    cluster.wait_for_log(crosses);
    // The workers say how they relay, once serving.
    cluster.wait_for_log("chat=\"relayed through the cluster primary");
    assert!(!cluster.logs().contains("process-local"), "{}", cluster.logs());
    let (fork, _data) = app(&[]);
    fork.wait_for_log("no --redis-url: chat rooms are process-local");
    let redis = Redis::start();
    let (relayed, _data) = app(&["--mode", "cluster", "--workers", "2", "--redis-url", &redis.url()]);
    assert!(!relayed.logs().contains("no --redis-url"), "{}", relayed.logs());
}

#[test]
fn an_app_started_while_redis_is_down_serves_and_joins_it_later() {
    let mut redis = Redis::start();
    redis.stop();
    let (app, _data) = app(&["--redis-url", &redis.url(), "--todos-store", "redis"]);
    assert_eq!(app.get("/info").status, 200);
    assert_eq!(app.get("/healthz").status, 503);
    let mut alice = ChatClient::join_only(app.addr, "lobby", "alice");
    alice.expect("an error frame: the room is unreachable", |f| f["error"].is_string());
    redis.resume();
    eventually("chat works once Redis is up", || {
        alice.say("hello");
        alice.try_expect(Duration::from_millis(500), is_message("hello")).is_some()
    });
    eventually("todos work once Redis is up", || app.get("/healthz").status == 200);
}

#[test]
fn chat_sockets_and_messages_are_counted_in_metrics() {
    let (app, _data) = app(&[]);
    let mut alice = ChatClient::join(app.addr, "lobby", "alice");
    alice.say("counted");
    alice.expect("the message back", is_message("counted"));
    let metrics = app.get("/metrics").body;
    assert_eq!(metric(&metrics, "app_chat_connections_open"), Some(1.0), "{metrics}");
    assert_eq!(metric(&metrics, "app_chat_connections_total"), Some(1.0), "{metrics}");
    assert_eq!(metric(&metrics, "app_chat_messages_total"), Some(1.0), "{metrics}");
    assert!(metrics.contains(r#"route="/v1/todos""#) || metrics.contains(r#"route="/ws""#), "{metrics}");
    drop(alice);
    eventually("the gauge goes down when the socket closes", || {
        metric(&app.get("/metrics").body, "app_chat_connections_open") == Some(0.0)
    });
}

#[test]
fn a_client_close_is_answered_with_its_code_then_the_connection_closes() {
    let (app, _data) = app(&[]);
    let mut socket = chat::open(app.addr, "lobby", "alice");
    socket.get_mut().set_read_timeout(Some(PATIENCE)).unwrap();
    let bye = CloseFrame { code: CloseCode::Library(4000), reason: "bye".into() };
    socket.close(Some(bye)).unwrap();
    let echoed = loop {
        match socket.read() {
            Ok(Message::Close(frame)) => break frame,
            Ok(_) => continue, // The join notice, sent before the close.
            Err(error) => panic!("the close was not answered with a close: {error}"),
        }
    };
    assert_eq!(echoed.map(|f| f.code), Some(CloseCode::Library(4000)), "RFC 6455 5.5.1: the code echoed");
    // Then the server closes the TCP connection, cleanly (FIN, not a reset).
    match socket.read() {
        Err(tungstenite::Error::ConnectionClosed) => {}
        other => panic!("the connection did not end cleanly after the close handshake: {other:?}"),
    }
    assert_eq!(app.get("/healthz").status, 200);
}

#[test]
fn a_message_unanswered_by_a_frozen_redis_is_reported_as_delivery_unknown() {
    let redis = Redis::start();
    let (app, _data) = app(&["--redis-url", &redis.url()]);
    let mut alice = ChatClient::join(app.addr, "lobby", "alice");
    redis.freeze();
    alice.say("in limbo");
    let refusal = alice.expect("an error frame once the publish times out", |f| f["error"].is_string());
    let problem = refusal["error"].as_str().unwrap();
    assert!(problem.contains("delivery unknown") && !problem.contains("not delivered"), "{refusal}");
    redis.thaw();
    // Redis carries out the publish it received while frozen: the message does reach the room.
    alice.expect("the message, delivered after all", is_message("in limbo"));
}
