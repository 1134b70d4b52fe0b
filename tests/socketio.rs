//! Socket.IO at /socket.io/ with the real socket.io-client (tests whose names say "npm": the Node
//! driver of tests/socketio), and hand-made protocol cases over a raw WebSocket or HTTP.

mod support;

use serde_json::{json, Value};
use support::chat::ChatClient;
use support::socketio::Driver;
use support::*;

fn app(extra: &[&str]) -> (App, TempDir) {
    let data = temp_dir();
    let mut args = vec!["--data-dir", data.path().to_str().unwrap()];
    args.extend_from_slice(extra);
    (App::activated(&args).ready(), data)
}

fn websocket_only() -> Value {
    json!({ "transports": ["websocket"] })
}

fn polling_only() -> Value {
    json!({ "transports": ["polling"] })
}

fn presence<'a>(event: &'a str, name: &'a str) -> impl Fn(&Value) -> bool + 'a {
    move |data| data["event"] == event && data["name"] == name
}

fn text(wanted: &str) -> impl Fn(&Value) -> bool + '_ {
    move |data| data["text"] == wanted
}

/// Alice and bob join, talk and leave, on the transport `opts` give; everything they see checked.
fn chat_between_two(opts: Value, transport: &str) {
    let (app, _data) = app(&[]);
    let mut io = Driver::start();
    assert_eq!(io.connect("alice", app.addr, "alice", opts.clone()), transport);
    assert_eq!(io.connect("bob", app.addr, "bob", opts), transport);
    io.join("alice", "lobby");
    io.expect_data("alice", "presence", presence("join", "alice"));
    io.join("bob", "lobby");
    let joined = io.expect_data("alice", "presence", presence("join", "bob"));
    assert_eq!(joined["room"], "lobby");
    assert!(joined["ts"].as_i64().unwrap() > 1_600_000_000_000);

    io.say("bob", "lobby", "hello alice");
    let got = io.expect_data("alice", "message", text("hello alice"));
    assert_eq!((&got["room"], &got["from"]), (&json!("lobby"), &json!("bob")));
    assert!(got["ts"].as_i64().unwrap() > 1_600_000_000_000);
    io.expect_data("bob", "message", text("hello alice"));

    assert_eq!(io.call("bob", "leave", json!(["lobby"])), json!({ "ok": true }));
    io.expect_data("alice", "presence", presence("leave", "bob"));
    let again = io.call("bob", "leave", json!(["lobby"]));
    assert!(again["error"].as_str().unwrap().contains("not in room"), "{again}");
    let unjoined = io.call("bob", "message", json!([{ "room": "lobby", "text": "hi" }]));
    assert!(unjoined["error"].as_str().unwrap().contains("join room"), "{unjoined}");

    io.close("alice");
    io.expect("alice", "disconnect", |line| line["reason"] == "io client disconnect");
}

#[test]
fn npm_websocket_clients_join_talk_and_leave_with_acknowledgements() {
    chat_between_two(websocket_only(), "websocket");
}

#[test]
fn npm_polling_clients_join_talk_and_leave_with_acknowledgements() {
    chat_between_two(polling_only(), "polling");
}

#[test]
fn npm_a_polling_session_moves_onto_a_websocket_and_keeps_its_rooms() {
    let (app, _data) = app(&[]);
    let mut io = Driver::start();
    // It opens on polling (the default), and may have moved before its connect event.
    io.connect("alice", app.addr, "alice", json!({}));
    io.join("alice", "lobby");
    io.expect("alice", "upgrade", |line| line["transport"] == "websocket");
    io.connect("bob", app.addr, "bob", websocket_only());
    io.join("bob", "lobby");
    io.expect_data("alice", "presence", presence("join", "bob"));
    io.say("alice", "lobby", "over the websocket now");
    io.expect_data("bob", "message", text("over the websocket now"));
}

#[test]
fn npm_socketio_and_ws_clients_share_one_room() {
    let (app, _data) = app(&[]);
    let mut io = Driver::start();
    io.connect("alice", app.addr, "alice", json!({}));
    io.join("alice", "lobby");
    let mut bob = ChatClient::join(app.addr, "lobby", "bob");
    io.expect_data("alice", "presence", presence("join", "bob"));
    bob.say("from /ws");
    assert_eq!(io.expect_data("alice", "message", text("from /ws"))["from"], "bob");
    io.say("alice", "lobby", "from socket.io");
    let got = bob.expect("alice's message on /ws", |frame| frame["text"] == "from socket.io");
    assert_eq!((&got["from"], &got["room"]), (&json!("alice"), &json!("lobby")));
    io.close("alice");
    bob.expect("alice's leave on /ws", |frame| frame["event"] == "leave" && frame["name"] == "alice");
}

#[test]
fn npm_bad_names_rooms_events_and_sizes_get_reasons() {
    let (app, _data) = app(&["--chat-max-message-bytes", "200", "--chat-rooms-per-socket", "2"]);
    let mut io = Driver::start();
    io.open("nameless", app.addr, None, websocket_only());
    let refused = io.expect("nameless", "connect_error", |_| true);
    assert!(refused["message"].as_str().unwrap().contains("name is required"), "{refused}");
    io.open("spaced", app.addr, Some("a b"), json!({}));
    let refused = io.expect("spaced", "connect_error", |_| true);
    assert!(refused["message"].as_str().unwrap().contains("letters, digits"), "{refused}");
    io.open_url("elsewhere", &format!("http://{}/admin", app.addr), json!({ "name": "al" }), json!({}));
    let refused = io.expect("elsewhere", "connect_error", |_| true);
    assert_eq!(refused["message"], "Invalid namespace");

    io.connect("alice", app.addr, "alice", websocket_only());
    let error_of =
        |reply: Value| reply["error"].as_str().unwrap_or_else(|| panic!("no error: {reply}")).to_string();
    assert!(error_of(io.call("alice", "join", json!(["no spaces"]))).contains("room may hold"));
    assert!(error_of(io.call("alice", "join", json!([]))).contains("one argument"));
    assert!(error_of(io.call("alice", "shout", json!(["x"]))).contains("unknown event"));
    io.join("alice", "one");
    io.join("alice", "two");
    assert!(error_of(io.call("alice", "join", json!(["three"]))).contains("at most 2 rooms"));
    let blank = io.call("alice", "message", json!([{ "room": "one", "text": "  " }]));
    assert!(error_of(blank).contains("empty"));
    let extra = io.call("alice", "message", json!([{ "room": "one", "text": "hi", "to": "bob" }]));
    assert!(error_of(extra).contains("unknown field"));
    let big = io.call("alice", "message", json!([{ "room": "one", "text": "x".repeat(300) }]));
    assert!(error_of(big).contains("larger than the limit of 200 bytes"));
    // Without an acknowledgement to carry it, a refusal comes as an `error` event.
    io.emit("alice", "shout", json!([]));
    let error = io.expect_data("alice", "error", |_| true);
    assert!(error["error"].as_str().unwrap().contains("unknown event"), "{error}");
    // Still connected and chatting after all that.
    io.say("alice", "one", "still here");
    io.expect_data("alice", "message", text("still here"));
}

#[test]
fn npm_a_flood_gets_refusals_within_the_rate_limit() {
    let (app, _data) = app(&["--chat-rate", "1", "--chat-burst", "3"]);
    let mut io = Driver::start();
    io.connect("alice", app.addr, "alice", websocket_only());
    io.join("alice", "lobby");
    // Sent at once, the acknowledgements read after: the burst (the join took one of its three)
    // is spent before a token comes back.
    let asked: Vec<u64> = (0..6)
        .map(|n| io.ask("alice", "message", json!([{ "room": "lobby", "text": format!("m{n}") }])))
        .collect();
    let replies: Vec<Value> = asked.into_iter().map(|ack| io.reply("alice", ack)).collect();
    assert_eq!(replies[..2], [json!({ "ok": true }), json!({ "ok": true })], "{replies:?}");
    let refused =
        replies.iter().filter(|reply| reply["error"].as_str().is_some_and(|e| e.contains("rate limit")));
    assert!(refused.count() >= 3, "{replies:?}");
}

/// Everyone in `clients` (each a client id that is also its name) joins "lobby", then each says
/// something that all of them receive.
fn everyone_hears_everyone(io: &mut Driver, clients: &[&str]) {
    for client in clients {
        io.join(client, "lobby");
    }
    for speaker in clients {
        let said = format!("{speaker} speaking");
        io.say(speaker, "lobby", &said);
        for listener in clients {
            let got = io.expect_data(listener, "message", text(&said));
            assert_eq!(got["from"], *speaker);
        }
    }
}

#[test]
fn npm_socketio_clients_on_two_instances_chat_through_redis() {
    let redis = support::redis::Redis::start();
    let (a, _da) = app(&["--redis-url", &redis.url()]);
    let (b, _db) = app(&["--redis-url", &redis.url()]);
    let mut io = Driver::start();
    io.connect("alice", a.addr, "alice", websocket_only());
    io.connect("bob", b.addr, "bob", polling_only());
    io.join("alice", "lobby");
    io.join("bob", "lobby");
    io.expect_data("alice", "presence", presence("join", "bob"));
    let mut carol = ChatClient::join(b.addr, "lobby", "carol");
    io.expect_data("alice", "presence", presence("join", "carol"));
    everyone_hears_everyone(&mut io, &["alice", "bob"]);
    carol.expect("alice's message on /ws of the other instance", |frame| frame["text"] == "alice speaking");
    carol.say("from carol");
    io.expect_data("alice", "message", text("from carol"));
    io.expect_data("bob", "message", text("from carol"));
}

/// Polling clients of a two-worker cluster: their requests land on either worker, and reach the
/// one holding their session (forwarded over its unix socket); the upgrade is forwarded too.
fn a_cluster_serves_polling_sessions(extra: &[&str]) {
    let mut args = vec!["--mode", "cluster", "--workers", "2"];
    args.extend_from_slice(extra);
    let (app, _data) = app(&args);
    let mut io = Driver::start();
    // Polling clients until sessions of both workers are among them (the session id names its
    // worker): the kernel spreads the handshakes, so a few more may be needed. Bounded.
    let mut clients: Vec<String> = Vec::new();
    let mut owners = std::collections::BTreeSet::new();
    while owners.len() < 2 || clients.len() < 4 {
        assert!(clients.len() < 40, "40 handshakes, all answered by the workers {owners:?}");
        let client = format!("p{}", clients.len() + 1);
        let (transport, session) = io.connect_session(&client, app.addr, &client, polling_only());
        assert_eq!(transport, "polling");
        owners.insert(
            app::domain::chat::socketio::owner_of(&session).expect("a cluster session names its worker"),
        );
        clients.push(client);
    }
    for client in ["u1", "u2"] {
        io.connect(client, app.addr, client, json!({}));
        io.expect(client, "upgrade", |line| line["transport"] == "websocket");
        clients.push(client.to_string());
    }
    let clients: Vec<&str> = clients.iter().map(String::as_str).collect();
    everyone_hears_everyone(&mut io, &clients);
}

#[test]
fn npm_polling_sessions_work_across_the_workers_of_a_cluster_with_redis() {
    let redis = support::redis::Redis::start();
    a_cluster_serves_polling_sessions(&["--redis-url", &redis.url()]);
}

#[test]
fn npm_two_workers_of_a_cluster_without_redis_chat_over_socketio() {
    a_cluster_serves_polling_sessions(&[]);
}

/// A hand-made Socket.IO client over a raw WebSocket, for what socket.io-client never sends.
struct Raw(tungstenite::WebSocket<std::net::TcpStream>);

impl Raw {
    /// Opens a session on a WebSocket and reads its open packet.
    fn open(addr: std::net::SocketAddr) -> Raw {
        let stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (socket, _) = tungstenite::client(url, stream).unwrap();
        let mut raw = Raw(socket);
        let open = raw.read();
        assert!(open.starts_with(r#"0{"maxPayload":"#), "{open}");
        raw
    }

    /// Opens a session and CONNECTs as `name`.
    fn connected(addr: std::net::SocketAddr, name: &str) -> Raw {
        let mut raw = Raw::open(addr);
        raw.send(&format!(r#"40{{"name":"{name}"}}"#));
        let connected = raw.read();
        assert!(connected.starts_with(r#"40{"sid":"#), "{connected}");
        raw
    }

    /// Joins "lobby" (acknowledgement id 1), checking the acknowledgement and its own join notice.
    fn join_lobby(&mut self) {
        self.send(r#"421["join","lobby"]"#);
        let mut replies = [self.read(), self.read()];
        replies.sort(); // The presence notice and the acknowledgement come in either order.
        assert!(
            replies[0].starts_with(r#"42["presence""#) && replies[1] == r#"431[{"ok":true}]"#,
            "{replies:?}"
        );
    }

    fn send(&mut self, text: &str) {
        self.0.send(tungstenite::Message::text(text)).unwrap();
    }

    /// The next text packet (failing on anything else).
    fn read(&mut self) -> String {
        loop {
            match self.0.read().unwrap() {
                tungstenite::Message::Text(text) => return text.to_string(),
                tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
                other => panic!("not a text packet: {other:?}"),
            }
        }
    }

    /// The packets until the server's Close, and that Close's code and reason.
    fn until_closed(&mut self) -> (Vec<String>, u16, String) {
        let mut packets = Vec::new();
        loop {
            match self.0.read() {
                Ok(tungstenite::Message::Text(text)) => packets.push(text.to_string()),
                Ok(tungstenite::Message::Close(Some(frame))) => {
                    return (packets, frame.code.into(), frame.reason.to_string())
                }
                Ok(tungstenite::Message::Close(None)) => return (packets, 1005, String::new()),
                Ok(_) => {}
                Err(error) => panic!("no Close frame ({error}); packets: {packets:?}"),
            }
        }
    }
}

/// What a connected socket that sends `packet` gets: an `error` event with the reason, then
/// DISCONNECT, then Close 1008 with the reason.
fn refused_with(addr: std::net::SocketAddr, packet: tungstenite::Message, reason: &str) {
    let mut raw = Raw::connected(addr, "mallory");
    raw.0.send(packet).unwrap();
    let (packets, code, said) = raw.until_closed();
    assert!(packets.len() == 2 && packets[0].starts_with(r#"42["error",{"error":"#), "{packets:?}");
    assert!(packets[0].contains(reason), "{packets:?}");
    assert_eq!(packets[1], "41", "{packets:?}");
    assert_eq!(code, 1008);
    assert!(said.contains(reason), "{said}");
}

#[test]
fn socketio_packets_that_break_the_protocol_end_the_socket_with_the_reason() {
    let (app, _data) = app(&["--chat-max-message-bytes", "100"]);
    let text = tungstenite::Message::text;
    refused_with(app.addr, text("49"), "not a Socket.IO packet type");
    refused_with(app.addr, text("x"), "not an Engine.IO packet type");
    refused_with(app.addr, text(r#"451-["up",{"_placeholder":true,"num":0}]"#), "binary");
    refused_with(app.addr, tungstenite::Message::binary(vec![4, 1, 2]), "binary");
    refused_with(app.addr, text(r#"40{"name":"again"}"#), "CONNECT sent twice");
    refused_with(app.addr, text("43[]"), "no acknowledgements");

    // Before CONNECT, the reason comes as a CONNECT_ERROR.
    let mut early = Raw::open(app.addr);
    early.send(r#"42["join","lobby"]"#);
    let (packets, code, _) = early.until_closed();
    assert!(packets[0].starts_with("44{") && packets[0].contains("CONNECT"), "{packets:?}");
    assert_eq!(code, 1008);

    // Over maxPayload (four times the message limit) the frame is not even read.
    let mut big = Raw::connected(app.addr, "big");
    big.send(&format!(r#"42["message",{{"room":"r","text":"{}"}}]"#, "x".repeat(500)));
    let (_, code, _) = big.until_closed();
    assert_eq!(code, 1009);

    // And the server still serves.
    let mut fine = Raw::connected(app.addr, "fine");
    fine.join_lobby();
}

#[test]
fn socketio_http_requests_that_are_wrong_get_400s_that_say_why() {
    let (app, _data) = app(&["--chat-max-message-bytes", "100"]);
    let get = |path: &str| request(app.addr, "GET", path, &[], b"");
    let old = get("/socket.io/?EIO=3&transport=polling");
    assert_eq!(old.status, 400);
    assert!(old.error().contains("EIO=4"), "{}", old.body);
    assert!(get("/socket.io/?EIO=4&transport=flash").error().contains("polling or websocket"));
    let unknown = get("/socket.io/?EIO=4&transport=polling&sid=nope");
    assert_eq!(unknown.status, 400);
    assert!(unknown.error().contains("unknown session"), "{}", unknown.body);
    let not_upgrading = get("/socket.io/?EIO=4&transport=websocket");
    assert_eq!(not_upgrading.status, 426);
    let post = request(app.addr, "POST", "/socket.io/?EIO=4&transport=polling", &[], b"40");
    assert!(post.error().contains("sid"), "{}", post.body);
    assert_eq!(request(app.addr, "PUT", "/socket.io/?EIO=4&transport=polling", &[], b"").status, 405);

    let handshake = get("/socket.io/?EIO=4&transport=polling");
    assert_eq!(handshake.status, 200);
    let open: Value = serde_json::from_str(handshake.body.strip_prefix('0').unwrap()).unwrap();
    assert_eq!((open["pingInterval"].as_u64(), open["pingTimeout"].as_u64()), (Some(25000), Some(20000)));
    assert_eq!(open["maxPayload"], 400);
    assert_eq!(open["upgrades"], json!(["websocket"]));
    let session = format!("/socket.io/?EIO=4&transport=polling&sid={}", open["sid"].as_str().unwrap());
    let too_big = request(app.addr, "POST", &session, &[], "4".repeat(401).as_bytes());
    assert_eq!(too_big.status, 413);
    let connect = request(app.addr, "POST", &session, &[], br#"40{"name":"poller"}"#);
    assert_eq!((connect.status, connect.body.as_str()), (200, "ok"));
    assert!(get(&session).body.starts_with(r#"40{"sid":"#));

    // Two GETs at once: one of them is refused, and the other carries the session's end.
    let second = {
        let session = session.clone();
        let addr = app.addr;
        std::thread::spawn(move || request(addr, "GET", &session, &[], b""))
    };
    let first = get(&session);
    let second = second.join().unwrap();
    let (refused, ended) = if first.status == 400 { (first, second) } else { (second, first) };
    assert!(refused.error().contains("a second GET"), "{}", refused.body);
    assert_eq!(ended.status, 200);
    assert!(ended.body.contains("overlapping GET") && ended.body.ends_with("\u{1e}1"), "{}", ended.body);
}

#[test]
fn a_socketio_client_that_does_not_read_is_disconnected_as_too_slow() {
    let (app, _data) = app(&support::chat::SLOW_CLIENT_ARGS);
    let mut slow = Raw::connected(app.addr, "slow");
    slow.join_lobby();
    let mut fast = ChatClient::join(app.addr, "lobby", "fast");
    let kicked = support::chat::flood_until_logged(&app, &mut fast, "socket.io client too slow");
    assert!(kicked, "the slow client was never disconnected: {}", app.logs());
    fast.expect("slow's leave", |f| f["event"] == "leave" && f["name"] == "slow");
    // Reading at last, the slow client finds its stream ends.
    let ended = (0..100_000).any(|_| !matches!(slow.0.read(), Ok(tungstenite::Message::Text(_))));
    assert!(ended);
}

#[test]
fn npm_a_drain_closes_socketio_clients_so_that_they_reconnect() {
    let (mut app, _data) = app(&["--drain-timeout", "30s"]);
    let mut io = Driver::start();
    io.connect("ws", app.addr, "alice", websocket_only());
    io.connect("poll", app.addr, "bob", polling_only());
    // Its next GET pending (counted in flight beside the /metrics request asking), so the drain
    // has a GET to answer: that client opens a connection per request, and one opened after the
    // stop would wait for the next process.
    eventually("the polling client's GET is pending", || {
        metric(&app.get("/metrics").body, "app_http_requests_in_flight") == Some(2.0)
    });
    app.signal(libc::SIGTERM);
    // "transport close", not "io server disconnect": socket.io-client reconnects after it.
    let closed = io.expect("ws", "disconnect", |_| true);
    assert_eq!(closed["reason"], "transport close", "{closed}");
    assert_eq!(closed["description"]["code"], 1001, "{closed}");
    let closed = io.expect("poll", "disconnect", |_| true);
    assert_eq!(closed["reason"], "transport close", "{closed}");
    assert!(app.wait_exit().success());
}

#[test]
fn npm_unanswered_pings_and_a_missing_connect_end_a_session_answered_pings_keep_it() {
    let (app, _data) = app(&[]);
    let mut io = Driver::start();
    io.connect("alice", app.addr, "alice", websocket_only());
    io.join("alice", "lobby");
    let mut silent = Raw::connected(app.addr, "silent");
    silent.join_lobby();
    let mut unconnected = Raw::open(app.addr);
    io.expect_data("alice", "presence", presence("join", "silent"));
    // The server's ping, pingInterval (25 s) after the open; left unanswered.
    assert_eq!(silent.read(), "2");
    // A session that never sent CONNECT is closed then, saying why.
    let (packets, code, _) = unconnected.until_closed();
    assert!(
        packets.iter().any(|p| p.starts_with("44{") && p.contains("no Socket.IO CONNECT")),
        "{packets:?}"
    );
    assert_eq!(code, 1008);
    // pingTimeout (20 s) later the silent one is gone, and the room is told.
    io.expect_data("alice", "presence", presence("leave", "silent"));
    // socket.io-client answered its pings all along: still connected.
    io.say("alice", "lobby", "still here");
    io.expect_data("alice", "message", text("still here"));
}

#[test]
fn a_websocket_upgrade_that_reaches_another_worker_is_passed_on_to_the_session() {
    use std::io::Write;
    let (app, _data) = app(&["--mode", "cluster", "--workers", "2"]);
    let handshake = app.get("/socket.io/?EIO=4&transport=polling");
    let open: Value = serde_json::from_str(handshake.body.strip_prefix('0').unwrap()).unwrap();
    let sid = open["sid"].as_str().unwrap().to_string();
    let owner: u64 = sid.strip_prefix('w').and_then(|s| s.split('-').next()?.parse().ok()).expect(&sid);
    let session = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    assert_eq!(request(app.addr, "POST", &session, &[], br#"40{"name":"mover"}"#).body, "ok");
    assert!(app.get(&session).body.starts_with(r#"40{"sid":"#));

    // A connection the other worker accepted (it says so in /info), kept alive for the upgrade.
    let elsewhere = (0..200).find_map(|_| {
        let mut stream = std::net::TcpStream::connect(app.addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.write_all(b"GET /info HTTP/1.1\r\nhost: test\r\naccept: application/json\r\n\r\n").unwrap();
        let info = read_framed_response(&mut stream).unwrap().json();
        (info["worker"].as_u64() != Some(owner)).then_some(stream)
    });
    let stream = elsewhere.expect("no connection reached the other worker in 200 tries");
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket&sid={sid}", app.addr);
    let (socket, _) = tungstenite::client(url, stream).unwrap();
    let mut moved = Raw(socket);
    moved.send("2probe");
    assert_eq!(moved.read(), "3probe");
    moved.send("5");
    moved.join_lobby();
}

#[test]
fn polling_sessions_count_against_max_connections() {
    let (app, _data) = app(&["--max-connections", "3"]);
    let open = || request(app.addr, "GET", "/socket.io/?EIO=4&transport=polling", &[], b"");
    assert_eq!(open().status, 200);
    assert_eq!(open().status, 200);
    assert_eq!(open().status, 200);
    let refused = open();
    assert_eq!(refused.status, 503);
    assert!(refused.error().contains("too many Socket.IO sessions"), "{}", refused.body);
}
