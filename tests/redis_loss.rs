//! Redis that goes away without saying so: a host that vanishes (its link cut, then back with no
//! memory of its connections: no FIN, no RST ever reached the app) and a server frozen by SIGSTOP.
//! Chat across processes and todos in Redis must come back by themselves.

mod support;

use std::time::Duration;

use serde_json::json;
use support::chat::ChatClient;
use support::netns::Host;
use support::redis::Redis;
use support::*;

fn is_message(text: &str) -> impl Fn(&serde_json::Value) -> bool + '_ {
    move |frame| frame["text"] == text
}

fn two_apps(redis: &Redis) -> (App, App) {
    let url = redis.url();
    let start = || App::activated(&["--redis-url", &url, "--todos-store", "redis"]).ready();
    let (a, b) = (start(), start());
    a.wait_for_log("chat relay subscribed");
    b.wait_for_log("chat relay subscribed");
    (a, b)
}

/// Chat crosses from a to b and a todo is written, now or within the test's patience.
fn chat_and_todos_work(a: &App, alice: &ChatClient, bob: &mut ChatClient, text: &str) {
    eventually("a todo is written through Redis", || {
        send_json(a.addr, "POST", "/v1/todos", &json!({"title": text})).status == 201
    });
    eventually("a chat message crosses the processes", || {
        alice.say(text);
        bob.try_expect(Duration::from_millis(500), is_message(text)).is_some()
    });
}

#[test]
fn chat_and_todos_recover_when_the_redis_host_vanishes_from_its_network_namespace_and_comes_back() {
    let host = Host::new();
    let mut redis = Redis::on(&host);
    let (a, b) = two_apps(&redis);
    let alice = ChatClient::join(a.addr, "lobby", "alice");
    let mut bob = ChatClient::join(b.addr, "lobby", "bob");
    chat_and_todos_work(&a, &alice, &mut bob, "before");

    // Nothing of the old server reaches the apps: not its FIN, not a reset.
    host.cut();
    redis.stop();
    host.reboot();
    redis.resume();

    chat_and_todos_work(&a, &alice, &mut bob, "after");
    a.wait_for_log("chat relay lost its Redis subscription (a ping");
}

#[test]
fn chat_and_todos_recover_from_a_frozen_redis() {
    let redis = Redis::start();
    let (a, b) = two_apps(&redis);
    let alice = ChatClient::join(a.addr, "lobby", "alice");
    let mut bob = ChatClient::join(b.addr, "lobby", "bob");
    chat_and_todos_work(&a, &alice, &mut bob, "before");

    redis.freeze();
    let refused = send_json(a.addr, "POST", "/v1/todos", &json!({"title": "frozen"}));
    assert_eq!(refused.status, 503, "{}", refused.body);
    a.wait_for_log("chat relay lost its Redis subscription (a ping was not answered in time)");
    redis.thaw();

    chat_and_todos_work(&a, &alice, &mut bob, "after");
}
