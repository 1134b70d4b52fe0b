//! Just enough of a WebDriver client to drive Debian's headless Chromium through chromedriver:
//! sessions, navigation, elements (find, type, click, text) and script. Each session is its own
//! browser with a fresh profile, so two sessions are two independent users.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use super::{read_framed_response, send, temp_dir, wait_for, TempDir, PATIENCE};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct ChromeDriver {
    addr: SocketAddr,
    child: Child,
}

impl ChromeDriver {
    /// Starts chromedriver on a port it chooses itself (`--port=0`) and reads the port from its
    /// start-up line: a port picked here and released for it could be taken by another test
    /// before chromedriver binds it, and the test would then talk to that process.
    pub fn start() -> ChromeDriver {
        let mut child = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (tests/lib/deps.sh: chromium-driver)");
        let mut lines =
            BufReader::new(child.stdout.take().expect("piped stdout")).lines().map_while(Result::ok);
        let port = lines
            .find_map(|line| {
                line.split_once("started successfully on port ")?.1.trim_end_matches('.').parse().ok()
            })
            .expect("chromedriver says which port it listens on");
        // The rest is drained, so that chromedriver never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        ChromeDriver { addr: SocketAddr::from(([127, 0, 0, 1], port)), child }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, value) =
            self.try_call(method, path, body).unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"));
        assert_eq!(status, 200, "webdriver {method} {path}: {value}");
        value["value"].clone()
    }

    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> std::io::Result<(u16, Value)> {
        let host = format!("localhost:{}", self.addr.port());
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut headers = vec![("host", host.as_str())];
        if method == "POST" {
            headers.push(("content-type", "application/json"));
        }
        // A POST needs a body even when it has nothing to say.
        let body = if method == "POST" && body.is_empty() { "{}".to_string() } else { body };
        let mut stream = TcpStream::connect(self.addr)?;
        stream.set_read_timeout(Some(PATIENCE))?;
        send(&mut stream, method, path, &headers, body.as_bytes())?;
        let response = read_framed_response(&mut stream)?;
        let value = serde_json::from_str(&response.body).map_err(std::io::Error::other)?;
        Ok((response.status, value))
    }

    /// A new browser: headless Chromium with a profile of its own.
    pub fn session(&self) -> Session<'_> {
        let profile = temp_dir();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
        }}});
        let created = self.call("POST", "/session", Some(capabilities));
        let id = created["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}")).to_string();
        Session { driver: self, id, _profile: profile }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Session<'a> {
    driver: &'a ChromeDriver,
    id: String,
    _profile: TempDir,
}

impl Session<'_> {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.driver.call(method, &format!("/session/{}{path}", self.id), body)
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn find(&self, css: &str) -> String {
        let found = self.call("POST", "/element", Some(json!({ "using": "css selector", "value": css })));
        found[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {found}")).to_string()
    }

    pub fn text(&self, css: &str) -> String {
        let element = self.find(css);
        self.call("GET", &format!("/element/{element}/text"), None).as_str().unwrap_or("").to_string()
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.call("POST", &format!("/element/{element}/clear"), None);
        self.call("POST", &format!("/element/{element}/value"), Some(json!({ "text": text })));
    }

    pub fn click(&self, css: &str) {
        let element = self.find(css);
        self.call("POST", &format!("/element/{element}/click"), None);
    }

    /// Runs `script` (a function body: `return` gives the value) in the page and returns its value.
    pub fn execute(&self, script: &str) -> Value {
        self.call("POST", "/execute/sync", Some(json!({ "script": script, "args": [] })))
    }

    /// Polls `script` until it returns something other than null, failing after PATIENCE.
    pub fn wait_for_script(&self, what: &str, script: &str) -> Value {
        wait_for(
            || format!("{what}: still null"),
            || Some(self.execute(script)).filter(|value| !value.is_null()),
        )
    }

    /// Polls the text of `css` until `wanted` holds, failing after PATIENCE.
    pub fn wait_for_text(&self, css: &str, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let last = std::cell::RefCell::new(String::new());
        wait_for(
            || format!("{what}: `{css}` still shows {:?}", last.borrow()),
            || {
                let text = self.text(css);
                wanted(&text).then(|| text.clone()).or_else(|| {
                    *last.borrow_mut() = text;
                    None
                })
            },
        )
    }
}

impl Drop for Session<'_> {
    /// Closes the browser, also when the test failed: killing chromedriver would leave it running.
    fn drop(&mut self) {
        let _ = self.driver.try_call("DELETE", &format!("/session/{}", self.id), None);
    }
}
