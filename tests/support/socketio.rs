//! The real `socket.io-client` (npm, pinned in tests/socketio/package-lock.json) for tests: one
//! Node process running tests/socketio/driver.js holds any number of clients; the test sends it
//! commands and reads what the clients see, as JSON lines. Installed by the test command
//! (`need_npm_clients` in tests/lib/deps.sh: `npm ci --prefix tests/socketio`).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::PATIENCE;

const DRIVER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/socketio");

pub struct Driver {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
    /// Lines read but not yet asked for, in order.
    seen: Vec<Value>,
    next_ack: u64,
}

/// The installed socket.io-client package's directory.
fn client_package() -> std::path::PathBuf {
    let package = Path::new(DRIVER_DIR).join("node_modules/socket.io-client");
    assert!(
        package.is_dir(),
        "socket.io-client is not installed: run `npm ci --prefix tests/socketio` (the test command does)"
    );
    package
}

/// The same socket.io-client's browser build (it defines `io`), for a page in Chromium to run.
pub fn browser_bundle() -> String {
    std::fs::read_to_string(client_package().join("dist/socket.io.min.js")).unwrap()
}

impl Driver {
    pub fn start() -> Driver {
        client_package();
        let mut child = Command::new("node")
            .arg("driver.js")
            .current_dir(DRIVER_DIR)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node (nodejs) is needed for the Socket.IO tests");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let value =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("driver said ({e}): {line}"));
                if sender.send(value).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Driver { child, stdin, lines, seen: Vec::new(), next_ack: 0 }
    }

    fn command(&mut self, command: Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").and_then(|()| stdin.flush()).expect("the driver is gone");
    }

    /// Starts client `id` connecting to `addr` with `auth: { name }` (none when `name` is None);
    /// `opts` go to `io()` (e.g. `{"transports": ["polling"]}`).
    pub fn open(&mut self, id: &str, addr: SocketAddr, name: Option<&str>, opts: Value) {
        let auth = name.map_or(json!({}), |name| json!({ "name": name }));
        self.open_url(id, &format!("http://{addr}"), auth, opts);
    }

    pub fn open_url(&mut self, id: &str, url: &str, auth: Value, opts: Value) {
        self.command(json!({ "cmd": "connect", "id": id, "url": url, "auth": auth, "opts": opts }));
    }

    /// Connects client `id` as `name` and waits until it is connected; the transport it connected on.
    pub fn connect(&mut self, id: &str, addr: SocketAddr, name: &str, opts: Value) -> String {
        self.connect_session(id, addr, name, opts).0
    }

    /// Connects like [`Driver::connect`]; the transport and the Engine.IO session id.
    pub fn connect_session(
        &mut self,
        id: &str,
        addr: SocketAddr,
        name: &str,
        opts: Value,
    ) -> (String, String) {
        self.open(id, addr, Some(name), opts);
        let connected = self.expect(id, "connect", |_| true);
        let field = |name: &str| connected[name].as_str().unwrap().to_string();
        (field("transport"), field("session"))
    }

    /// Emits `event` with `args` and returns the server's acknowledgement.
    pub fn call(&mut self, id: &str, event: &str, args: Value) -> Value {
        let ack = self.ask(id, event, args);
        self.reply(id, ack)
    }

    /// Emits `event` asking for an acknowledgement, without waiting: the number to wait for it
    /// with [`Driver::reply`].
    pub fn ask(&mut self, id: &str, event: &str, args: Value) -> u64 {
        self.next_ack += 1;
        let ack = self.next_ack;
        self.command(json!({ "cmd": "emit", "id": id, "event": event, "args": args, "ack": ack }));
        ack
    }

    /// The acknowledgement `ack` of client `id`.
    pub fn reply(&mut self, id: &str, ack: u64) -> Value {
        let reply = self
            .wait(&format!("{id}'s acknowledgement {ack}"), |line| line["id"] == id && line["ack"] == ack);
        reply["reply"].clone()
    }

    /// Emits without asking for an acknowledgement.
    pub fn emit(&mut self, id: &str, event: &str, args: Value) {
        self.command(json!({ "cmd": "emit", "id": id, "event": event, "args": args }));
    }

    /// Joins `room`, asserting the acknowledgement is `{"ok": true}`.
    pub fn join(&mut self, id: &str, room: &str) {
        assert_eq!(self.call(id, "join", json!([room])), json!({ "ok": true }), "{id} joining {room}");
    }

    pub fn say(&mut self, id: &str, room: &str, text: &str) {
        let ack = self.call(id, "message", json!([{ "room": room, "text": text }]));
        assert_eq!(ack, json!({ "ok": true }), "{id} saying {text:?} in {room}");
    }

    pub fn close(&mut self, id: &str) {
        self.command(json!({ "cmd": "close", "id": id }));
    }

    /// The first line (seen already or still to come) about client `id`'s `event` whose line
    /// satisfies `wanted`; it is taken, others stay. Fails after PATIENCE.
    pub fn expect(&mut self, id: &str, event: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        self.wait(&format!("{id}: {event}"), |line| {
            line["id"] == id && line["event"] == event && wanted(line)
        })
    }

    /// Like `expect` for an event the server emits: its data.
    pub fn expect_data(&mut self, id: &str, event: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        self.expect(id, event, |line| wanted(&line["data"]))["data"].clone()
    }

    /// Whether such a line comes within `patience` (taken if it does).
    pub fn comes_within(&mut self, patience: Duration, wanted: impl Fn(&Value) -> bool) -> bool {
        self.take(patience, &wanted).is_some()
    }

    fn wait(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        self.take(PATIENCE, &wanted)
            .unwrap_or_else(|| panic!("not within {PATIENCE:?}: {what}; seen meanwhile: {:#?}", self.seen))
    }

    fn take(&mut self, patience: Duration, wanted: &dyn Fn(&Value) -> bool) -> Option<Value> {
        if let Some(at) = self.seen.iter().position(wanted) {
            return Some(self.seen.remove(at));
        }
        let deadline = Instant::now() + patience;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).ok()?;
            assert!(line.get("error").is_none() || line.get("id").is_some(), "the driver failed: {line}");
            if wanted(&line) {
                return Some(line);
            }
            self.seen.push(line);
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Closing stdin ends the driver and every client with it.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}
