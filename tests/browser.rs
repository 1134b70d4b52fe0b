//! The page at `/` in a real browser: Debian's headless Chromium, driven through chromedriver,
//! opens it through a real nginx in front of two instances that share a real Redis; it shows the
//! info, and two browsers (two users) chat.

mod support;

use support::nginx::Nginx;
use support::redis::Redis;
use support::webdriver::ChromeDriver;
use support::*;

#[test]
fn two_browsers_chat_through_nginx_across_two_instances() {
    let redis = Redis::start();
    let (data_a, data_b) = (TempDir::new(), TempDir::new());
    let url = redis.url();
    let start = |instance: &str, data: &TempDir| {
        App::activated(&["--instance", instance, "--redis-url", &url, "--data-dir", data.0.to_str().unwrap()])
            .ready()
    };
    let a = start("8082", &data_a);
    let b = start("8085", &data_b);
    let nginx = Nginx::start(&[a.addr, b.addr]);
    let page = format!("http://{}/", nginx.addr);

    let driver = ChromeDriver::start();
    let alice = driver.session();
    let bob = driver.session();
    for (browser, name) in [(&alice, "alice"), (&bob, "bob")] {
        browser.goto(&page);
        let pid: i32 = browser.wait_for_text("#info-pid", "the pid", |t| !t.is_empty()).parse().unwrap();
        assert!(pid == a.pid() || pid == b.pid(), "pid {pid} is neither instance's");
        let instance = browser.text("#info-instance");
        assert!(instance == "8082" || instance == "8085", "instance {instance}");
        assert_eq!(browser.text("#info-mode"), "fork");
        assert_eq!(browser.text("#info-workers"), "1");
        assert!(browser.text("#info-cpus").parse::<u32>().unwrap() >= 1);
        browser.type_into("#room", "lobby");
        browser.type_into("#name", name);
        browser.click("#join-button");
        browser.wait_for_text("#status", "joined", |t| t.contains("in room lobby"));
    }
    alice.wait_for_text("#log", "bob's join notice", |t| t.contains("bob joined"));

    alice.type_into("#text", "hello from alice");
    alice.click("#send-button");
    bob.wait_for_text("#log", "alice's message", |t| t.contains("alice: hello from alice"));
    bob.type_into("#text", "hi alice");
    bob.click("#send-button");
    alice.wait_for_text("#log", "bob's answer", |t| t.contains("bob: hi alice"));
    assert!(nginx.errors().lines().all(|l| !l.contains("[error]")), "{}", nginx.errors());
}

#[test]
fn a_browser_message_through_nginx_reaches_a_client_of_another_instance() {
    let redis = Redis::start();
    let (data_a, data_b) = (TempDir::new(), TempDir::new());
    let url = redis.url();
    let a = App::activated(&["--redis-url", &url, "--data-dir", data_a.0.to_str().unwrap()]).ready();
    let b = App::activated(&["--redis-url", &url, "--data-dir", data_b.0.to_str().unwrap()]).ready();
    // Only `a` behind nginx, so the client direct on `b` is surely on the other instance.
    let nginx = Nginx::start(&[a.addr]);
    let mut via_nginx = support::chat::ChatClient::join(nginx.addr, "lobby", "alice");
    let mut on_b = support::chat::ChatClient::join(b.addr, "lobby", "bob");
    via_nginx.expect("bob's join", |f| f["event"] == "join" && f["name"] == "bob");
    via_nginx.say("through nginx");
    on_b.expect("the message through nginx", |f| f["text"] == "through nginx");
    // And the todos written through nginx are there.
    let created = request(
        nginx.addr,
        "POST",
        "/v1/todos",
        &[("content-type", "application/json")],
        br#"{"title":"via nginx"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.body);
}

/// Opens a chat socket in the page that `then` (JavaScript, with the socket as `ws`) acts on once
/// open, and records its close event in `window.chatClosed`.
fn chat_socket_in_the_page(then: &str) -> String {
    format!(
        "window.chatClosed = null;
         const ws = new WebSocket(`ws://${{location.host}}/ws?room=lobby&name=browser`);
         ws.onopen = () => {{ {then} }};
         ws.onclose = (e) => {{ window.chatClosed = {{ clean: e.wasClean, code: e.code, reason: e.reason }}; }};"
    )
}

#[test]
fn a_browser_sees_clean_closes_with_their_codes() {
    let data = TempDir::new();
    let app =
        App::activated(&["--data-dir", data.0.to_str().unwrap(), "--chat-max-message-bytes", "64"]).ready();
    let driver = ChromeDriver::start();
    let browser = driver.session();
    browser.goto(&format!("http://{}/", app.addr));
    let closed = "return window.chatClosed;";

    // The page closes: the server answers with the same code.
    browser.execute(&chat_socket_in_the_page("ws.close(4000, 'bye');"));
    let seen = browser.wait_for_script("the close event of a close the page asked for", closed);
    assert_eq!(seen["clean"], true, "{seen}");
    assert_eq!(seen["code"], 4000, "{seen}");

    // The server closes: a message above four times the limit is refused with 1009.
    browser.execute(&chat_socket_in_the_page("ws.send('x'.repeat(1000));"));
    let seen = browser.wait_for_script("the close event of a close the server began", closed);
    assert_eq!(seen["clean"], true, "{seen}");
    assert_eq!(seen["code"], 1009, "{seen}");
    assert_eq!(app.get("/healthz").status, 200);
}
