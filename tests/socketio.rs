//! Socket.IO at /socket.io/ with the real socket.io-client (tests whose names say "npm": the Node
//! driver of tests/socketio), and hand-made protocol cases over a raw WebSocket or HTTP.

mod support;

use serde_json::{json, Value};
use support::chat::ChatClient;
use support::socketio::Driver;
use support::*;

fn app(extra: &[&str]) -> (App, TempDir) {
    let data = TempDir::new();
    let mut args = vec!["--data-dir", data.0.to_str().unwrap()];
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
    let replies: Vec<Value> = (0..6)
        .map(|n| io.call("alice", "message", json!([{ "room": "lobby", "text": format!("m{n}") }])))
        .collect();
    let refused =
        replies.iter().filter(|reply| reply["error"].as_str().is_some_and(|e| e.contains("rate limit")));
    assert!(refused.count() >= 2, "{replies:?}");
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
    let clients = ["p1", "p2", "p3", "p4", "u1", "u2"];
    for client in &clients[..4] {
        assert_eq!(io.connect(client, app.addr, client, polling_only()), "polling");
    }
    for client in &clients[4..] {
        io.connect(client, app.addr, client, json!({}));
        io.expect(client, "upgrade", |line| line["transport"] == "websocket");
    }
    everyone_hears_everyone(&mut io, &clients);
}

#[test]
fn npm_polling_sessions_work_across_the_workers_of_a_cluster_with_redis() {
    let redis = support::redis::Redis::start();
    a_cluster_serves_polling_sessions(&["--redis-url", &redis.url()]);
}

#[test]
#[ignore = "needs the cluster bus (branch bus)"]
fn npm_two_workers_of_a_cluster_without_redis_chat_over_socketio() {
    a_cluster_serves_polling_sessions(&[]);
}
