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
    let (data_a, data_b) = (temp_dir(), temp_dir());
    let url = redis.url();
    let start = |instance: &str, data: &TempDir| {
        App::activated(&[
            "--instance",
            instance,
            "--redis-url",
            &url,
            "--data-dir",
            data.path().to_str().unwrap(),
        ])
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
    let ((a, _data_a), (b, _data_b)) = (instance_of(&redis), instance_of(&redis));
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

/// A ready fork-mode instance on `redis`, with a todo store of its own (kept while the test runs).
fn instance_of(redis: &Redis) -> (App, TempDir) {
    let data = temp_dir();
    let app =
        App::activated(&["--redis-url", &redis.url(), "--data-dir", data.path().to_str().unwrap()]).ready();
    (app, data)
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
    let data = temp_dir();
    let app =
        App::activated(&["--data-dir", data.path().to_str().unwrap(), "--chat-max-message-bytes", "64"])
            .ready();
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

/// Counts in `window.attempts` every WebSocket and fetch the page starts from now on.
const COUNT_ATTEMPTS: &str = "window.attempts = 0;
     const RealSocket = window.WebSocket, realFetch = window.fetch;
     window.WebSocket = function (...args) { window.attempts++; return new RealSocket(...args); };
     window.WebSocket.OPEN = RealSocket.OPEN;
     window.fetch = (...args) => { window.attempts++; return realFetch(...args); };";

/// One instance behind nginx, and a browser on the page through it.
fn page_through_nginx(driver: &ChromeDriver) -> (App, Nginx, TempDir, support::webdriver::Session<'_>) {
    let data = temp_dir();
    let app = App::activated(&["--data-dir", data.path().to_str().unwrap()]).ready();
    let nginx = Nginx::start(&[app.addr]);
    let browser = driver.session();
    browser.goto(&format!("http://{}/", nginx.addr));
    browser.wait_for_text("#info-pid", "the pid", |t| !t.is_empty());
    (app, nginx, data, browser)
}

#[test]
fn a_browser_explains_a_bad_name_without_connecting() {
    let driver = ChromeDriver::start();
    let (app, _nginx, _data, browser) = page_through_nginx(&driver);
    browser.execute(COUNT_ATTEMPTS);
    let cases = [
        ("#name", "two words", "name may hold letters, digits, `-`, `_` and `.`, not ' '"),
        ("#name", &"a".repeat(33), "name must have 1 to 32 characters, not 33"),
        ("#room", "", "room must have 1 to 32 characters, not 0"),
        ("#room", "<script>", "room may hold letters, digits, `-`, `_` and `.`, not '<'"),
    ];
    for (field, value, problem) in cases {
        browser.type_into("#room", "lobby");
        browser.type_into("#name", "alice");
        browser.type_into(field, value);
        browser.click("#join-button");
        // The server's own words (src/domain/chat/frames.rs), and the field is marked and focused.
        browser.wait_for_text("#status", problem, |t| t == problem);
        let marked = browser.execute(&format!(
            "const f = document.querySelector('{field}');
             return [f.getAttribute('aria-invalid'), document.activeElement === f];"
        ));
        assert_eq!(marked, serde_json::json!(["true", true]), "{field} {value:?}");
    }
    assert_eq!(browser.execute("return window.attempts;"), 0, "the page tried to connect");
    let metrics = app.get("/metrics").body;
    assert_eq!(metric(&metrics, "app_chat_connections_total"), Some(0.0), "{metrics}");
}

#[test]
fn a_browser_shows_a_refused_handshake_instead_of_reconnecting() {
    let driver = ChromeDriver::start();
    let (_app, _nginx, _data, browser) = page_through_nginx(&driver);
    browser.execute(COUNT_ATTEMPTS);
    // A page whose check let a name through that the server refuses (a page of another version):
    // the page's own connect, past its check.
    browser.execute("wanted = { room: 'lobby', name: 'two words' }; connect();");
    let problem = "refused: name may hold letters, digits, `-`, `_` and `.`, not ' '";
    browser.wait_for_text("#status", "the server's refusal", |t| t == problem);
    // One handshake and the one request that read why; nothing more will be tried.
    let state = browser.execute("return [window.attempts, wanted, socket];");
    assert_eq!(state, serde_json::json!([2, null, null]));
    assert_eq!(browser.execute("return document.querySelector('#status').className;"), "error");
}

#[test]
fn a_browser_joins_and_chats_with_the_keyboard() {
    let driver = ChromeDriver::start();
    let (_app, _nginx, _data, browser) = page_through_nginx(&driver);
    // Every input has its label: clicking the label focuses the field.
    for field in ["room", "name", "text"] {
        let label =
            browser.execute(&format!("return document.querySelector('label[for={field}]').textContent;"));
        assert!(label.as_str().is_some_and(|l| !l.is_empty()), "{field}: {label}");
    }
    browser.click("label[for=name]");
    assert_eq!(browser.execute("return document.activeElement.id;"), "name");
    browser.type_into("#room", "salle-1");
    // Enter in a field joins; a name in another script is as valid as on the server.
    browser.type_into("#name", "Zoë\u{E007}");
    browser.wait_for_text("#status", "joined", |t| t == "in room salle-1 as Zoë");
    assert_eq!(browser.execute("return document.activeElement.id;"), "text");
    browser.type_into("#text", "bonjour\u{E007}");
    browser.wait_for_text("#log", "the message back", |t| t.contains("Zoë: bonjour"));
}

/// Starts, in the page, the real socket.io-client (the npm package's browser build) as `name` over
/// `transport` ("polling" or "websocket"); what it hears goes to `window.heard`, acknowledgements
/// to `window.acks`. `window.say(room, text)` and `window.join(room)` emit with an ack.
fn socketio_in_the_page(name: &str, transport: &str) -> String {
    format!(
        "{bundle}
         window.heard = []; window.acks = [];
         const socket = io({{ transports: ['{transport}'], auth: {{ name: '{name}' }}, reconnection: false }});
         window.socket = socket;
         socket.on('connect', () => {{ window.connected = socket.io.engine.transport.name; }});
         socket.on('message', (m) => window.heard.push(m));
         socket.on('presence', (p) => window.heard.push(p));
         const ask = (event, ...args) => socket.emit(event, ...args, (reply) => window.acks.push({{ event, reply }}));
         window.join = (room) => ask('join', room);
         window.say = (room, text) => ask('message', {{ room, text }});",
        bundle = support::socketio::browser_bundle()
    )
}

#[test]
fn npm_browser_socketio_clients_on_both_transports_chat_through_nginx_with_a_ws_client_of_another_instance() {
    let redis = Redis::start();
    let ((a, _data_a), (b, _data_b)) = (instance_of(&redis), instance_of(&redis));
    // Both instances behind nginx's sticky /socket.io/ upstream; the /ws client is direct on `b`.
    let nginx = Nginx::start(&[a.addr, b.addr]);
    let driver = ChromeDriver::start();
    let (alice, bob) = (driver.session(), driver.session());
    for (browser, name, transport) in [(&alice, "alice", "polling"), (&bob, "bob", "websocket")] {
        browser.goto(&format!("http://{}/", nginx.addr));
        browser.execute(&socketio_in_the_page(name, transport));
        let connected =
            browser.wait_for_script(&format!("{name} connected"), "return window.connected || null;");
        assert_eq!(connected, transport, "{name} stays on {transport}");
        browser.execute("window.join('lobby');");
        let ack =
            browser.wait_for_script(&format!("{name}'s join acknowledged"), "return window.acks[0] || null;");
        assert_eq!(ack["reply"], serde_json::json!({ "ok": true }), "{ack}");
    }
    let heard = |browser: &support::webdriver::Session<'_>, what: &str, test: &str| {
        browser.wait_for_script(what, &format!("return window.heard.find((m) => {test}) || null;"))
    };
    let mut carol = support::chat::ChatClient::join(b.addr, "lobby", "carol");
    for browser in [&alice, &bob] {
        let presence = heard(browser, "carol's join", "m.event === 'join' && m.name === 'carol'");
        assert_eq!(presence["room"], "lobby", "{presence}");
    }
    alice.execute("window.say('lobby', 'polled hello');");
    let ack = alice.wait_for_script("alice's message acknowledged", "return window.acks[1] || null;");
    assert_eq!(ack, serde_json::json!({ "event": "message", "reply": { "ok": true } }));
    let got = heard(&bob, "alice's message", "m.text === 'polled hello'");
    assert_eq!((got["from"].as_str(), got["room"].as_str()), (Some("alice"), Some("lobby")), "{got}");
    assert!(got["ts"].as_u64().is_some(), "{got}");
    carol.expect("alice's message on /ws", |frame| {
        frame["text"] == "polled hello" && frame["from"] == "alice"
    });
    carol.say("from carol");
    for browser in [&alice, &bob] {
        heard(browser, "carol's message", "m.text === 'from carol' && m.from === 'carol'");
    }
    assert!(nginx.errors().lines().all(|l| !l.contains("[error]")), "{}", nginx.errors());
}
