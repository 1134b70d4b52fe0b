//! Runs the real `app` binary the way systemd does (listening socket at fd 3, `LISTEN_FDS=1`,
//! `LISTEN_PID` of the child, a `NOTIFY_SOCKET` of the test's own) and talks HTTP/1.1 to it.
#![allow(dead_code)] // Each test binary uses its own part of this module.

pub mod chat;
pub mod netns;
pub mod nginx;
pub mod redis;
pub mod socketio;
pub mod webdriver;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_app");
/// The longest any awaited event may take before a test fails (generous: CI machines are slow).
pub const PATIENCE: Duration = Duration::from_secs(30);

pub struct App {
    pub child: Child,
    pub addr: SocketAddr,
    /// The socket the test opened and handed over; kept so queued connections survive restarts.
    pub socket: Option<TcpListener>,
    notifications: mpsc::Receiver<String>,
    pub seen: Vec<String>,
    pub stderr: Arc<Mutex<String>>,
    log_reader: Option<std::thread::JoinHandle<()>>,
    _dir: TempDir,
}

impl App {
    /// Starts the binary with a socket the test opened, handed over as systemd does.
    pub fn activated(args: &[&str]) -> App {
        Self::activated_with(args, &[])
    }

    pub fn activated_with(args: &[&str], env: &[(&str, &str)]) -> App {
        Self::start_activated(std::path::Path::new(BIN), args, env, None)
    }

    /// Like `activated`, running the binary from `exe` (a copy the test may replace).
    pub fn activated_exe(exe: &std::path::Path, args: &[&str]) -> App {
        Self::start_activated(exe, args, &[], None)
    }

    /// Like `activated`, under a file-descriptor limit (soft, hard) set before exec, as systemd's
    /// LimitNOFILE= does.
    pub fn activated_with_nofile(args: &[&str], nofile: (u64, u64)) -> App {
        Self::start_activated(std::path::Path::new(BIN), args, &[], Some(nofile))
    }

    fn start_activated(
        exe: &std::path::Path,
        args: &[&str],
        env: &[(&str, &str)],
        nofile: Option<(u64, u64)>,
    ) -> App {
        let socket = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let fd = socket.as_raw_fd();
        // `sh` sets LISTEN_PID to its own pid and execs the binary, which keeps that pid: the
        // variable names the child exactly, as systemd's does.
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg("LISTEN_PID=$$ exec \"$0\" \"$@\"").arg(exe).args(args).env("LISTEN_FDS", "1");
        // SAFETY: the library's hand-over and setrlimit make only async-signal-safe calls.
        unsafe {
            command.pre_exec(move || {
                app::process::listener::install_as_inherited(fd)?;
                nofile.map_or(Ok(()), |(soft, hard)| set_nofile(soft, hard))
            });
        }
        Self::spawn(command, env, addr, Some(socket))
    }

    /// Starts the binary binding its own port (`--port 0` picks a free one; the port is read back
    /// from the READY status).
    pub fn bound(args: &[&str]) -> App {
        let mut command = Command::new(BIN);
        command.args(["--port", "0"]).args(args);
        let mut app = Self::spawn(command, &[], "127.0.0.1:0".parse().unwrap(), None);
        let status = app.wait_for_notification("STATUS=serving ");
        let addr = status.trim_start_matches("STATUS=serving ").split(' ').next().unwrap();
        app.addr = addr.parse().unwrap();
        app
    }

    fn spawn(
        mut command: Command,
        env: &[(&str, &str)],
        addr: SocketAddr,
        socket: Option<TcpListener>,
    ) -> App {
        let dir = temp_dir();
        let notify_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        command
            .env("NOTIFY_SOCKET", &notify_path)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        command.env_remove("WATCHDOG_USEC").env_remove("WATCHDOG_PID");
        // A todo store of its own, as systemd's StateDirectory= gives; --data-dir overrides it.
        command.env("STATE_DIRECTORY", dir.path().join("state")).env_remove("APP_DATA_DIR");
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let collected = stderr.clone();
        let pid = child.id();
        let log_reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                eprintln!("[app {pid}] {line}");
                collected.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let (sender, notifications) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(length) = notify.recv(&mut buffer) {
                let datagram = String::from_utf8_lossy(&buffer[..length]).to_string();
                for line in datagram.lines() {
                    if sender.send(line.to_string()).is_err() {
                        return;
                    }
                }
            }
        });
        App {
            child,
            addr,
            socket,
            notifications,
            seen: Vec::new(),
            stderr,
            log_reader: Some(log_reader),
            _dir: dir,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for a notification line starting with `prefix` (READY=1, STATUS=..., WATCHDOG=1) and
    /// returns it; lines before it are kept in `seen`.
    pub fn wait_for_notification(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.notifications.recv_timeout(left).unwrap_or_else(|_| {
                panic!("no `{prefix}` notification within {PATIENCE:?}; saw {:?}", self.seen)
            });
            self.seen.push(line.clone());
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    pub fn ready(mut self) -> App {
        self.wait_for_notification("READY=1");
        self
    }

    pub fn signal(&self, signal: i32) {
        self::signal(self.pid(), signal);
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        let status = wait_for(|| "the app exits".to_string(), || self.child.try_wait().unwrap());
        // Every line the process wrote is collected once its stderr reaches EOF.
        if let Some(reader) = self.log_reader.take() {
            reader.join().unwrap();
        }
        status
    }

    pub fn get(&self, path: &str) -> Response {
        request(self.addr, "GET", path, &[], b"")
    }

    /// Waits until the process has logged `text` (lines reach the test through a reader thread, so
    /// a line written just before a notification may arrive just after it).
    pub fn wait_for_log(&self, text: &str) {
        eventually(&format!("the log says `{text}`"), || self.logs().contains(text));
    }

    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The message of a JSON error body.
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_else(|| panic!("no error field: {}", self.body)).to_string()
    }
}

/// One request on a new connection (`connection: close`), read to the end.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_request(addr, method, path, headers, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    send(&mut stream, method, path, headers, body)?;
    read_response(&mut stream)
}

/// Sends `raw` bytes as they are (a request the helpers above would not write: no Host, two of
/// them, a broken body) and parses what comes back before the server closes the connection.
pub fn raw_request(addr: SocketAddr, raw: &[u8]) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    stream.write_all(raw)?;
    read_until_closed(&mut stream)
}

/// Like `request`, from the local address `source` (e.g. 127.0.0.2: every 127/8 address is this host's
/// loopback), to check what a server decides by client address.
pub fn request_from(
    source: std::net::IpAddr,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(source, 0).into()).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    send(&mut stream, "GET", path, headers, b"").unwrap();
    read_response(&mut stream).unwrap()
}

/// The value of one series (`name{labels}` exactly as written) in a Prometheus text page, read
/// with the parser `app status` uses.
pub fn metric(page: &str, series: &str) -> Option<f64> {
    let (family, labels) = match series.split_once('{') {
        Some((family, labels)) => (family, labels.strip_suffix('}')?),
        None => (series, ""),
    };
    app::cli::status::probe::samples(page, family).find(|(found, _)| *found == labels).map(|(_, value)| value)
}

pub fn send(
    stream: &mut TcpStream,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nconnection: close\r\n");
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
        head.push_str("host: test\r\n");
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)
}

/// A request with a JSON body (`content-type: application/json`).
pub fn send_json(addr: SocketAddr, method: &str, path: &str, body: &serde_json::Value) -> Response {
    request(addr, method, path, &[("content-type", "application/json")], body.to_string().as_bytes())
}

/// Reads a whole response from a `connection: close` exchange.
pub fn read_response(stream: &mut TcpStream) -> std::io::Result<Response> {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

/// Reads what the server sends until it closes, and parses it: for a client still sending when the
/// server answered and closed, whose unread input makes the kernel reset the connection right
/// after the answer (an error then ends the read, not the answer).
pub fn read_until_closed(stream: &mut TcpStream) -> std::io::Result<Response> {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(error) if raw.is_empty() => return Err(error),
            Err(_) => break,
        }
    }
    parse_response(&raw)
}

/// Reads one response framed by its `content-length`, for peers that keep the connection open
/// whatever the request said (chromedriver) and for keep-alive clients.
pub fn read_framed_response(stream: &mut impl Read) -> std::io::Result<Response> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::Error::other("the connection closed before the end of the head"));
        }
        raw.push(byte[0]);
    }
    let head = parse_response(&raw)?;
    let length: usize = head.header("content-length").and_then(|n| n.parse().ok()).unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    raw.extend_from_slice(&body);
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("incomplete response: {text:?}")))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line: {head:?}")))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    Ok(Response { status, headers, body: body.to_string() })
}

/// Sends `count` GETs of `path` one after another (a new connection each) and returns how many
/// failed (connection error or non-2xx), while `during` runs on this thread's side.
pub fn load_while<T>(addr: SocketAddr, path: &str, during: impl FnOnce() -> T) -> (LoadCount, T) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loader = {
        let (stop, path) = (stop.clone(), path.to_string());
        std::thread::spawn(move || {
            let mut count = LoadCount::default();
            let deadline = Instant::now() + Duration::from_secs(60);
            // Bounded in count and time; at least a few requests after `during` returns.
            let mut after_stop = 0;
            while count.sent < 200_000 && Instant::now() < deadline && after_stop < 20 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    after_stop += 1;
                }
                count.sent += 1;
                match try_request(addr, "GET", &path, &[], b"") {
                    Ok(response) if (200..300).contains(&response.status) => {}
                    Ok(response) => {
                        count.failed.push(format!("status {}: {}", response.status, response.body))
                    }
                    Err(error) => count.failed.push(error.to_string()),
                }
            }
            count
        })
    };
    let result = during();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    (loader.join().unwrap(), result)
}

#[derive(Default, Debug)]
pub struct LoadCount {
    pub sent: usize,
    pub failed: Vec<String>,
}

/// The child processes of `pid`, as the server's own `app status` reads them from /proc.
pub fn children(pid: i32) -> Vec<i32> {
    app::infra::procfs::children(pid as u32).into_iter().map(|child| child as i32).collect()
}

/// Sends `signal` to `pid`, failing the test if it cannot be sent.
pub fn signal(pid: i32, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill({pid}, {signal})");
}

/// Sets RLIMIT_NOFILE to (soft, hard), as systemd's LimitNOFILE= does; async-signal-safe, for a
/// `pre_exec` hook.
pub fn set_nofile(soft: u64, hard: u64) -> std::io::Result<()> {
    let limit = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: setrlimit reads one rlimit, which `limit` is.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The value of `name` in the environment `pid` was started with (/proc/PID/environ).
pub fn initial_env(pid: i32, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    std::fs::read(format!("/proc/{pid}/environ"))
        .ok()?
        .split(|byte| *byte == 0)
        .find_map(|entry| entry.strip_prefix(prefix.as_bytes()))
        .map(|value| String::from_utf8_lossy(value).to_string())
}

pub fn alive(pid: i32) -> bool {
    // A zombie still has a /proc entry; its state is Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
        .unwrap_or(false)
}

/// Polls `condition` until it holds, failing the test after `PATIENCE`.
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    wait_for(|| what.to_string(), || condition().then_some(()));
}

/// The one waiting helper: polls `probe` every 20 ms until it gives a value, and returns it; after
/// `PATIENCE` the test fails saying what was awaited (`what` is asked then, so it can report the
/// state at that moment, such as a log). For what gives no notification to wait on.
pub fn wait_for<T>(what: impl FnOnce() -> String, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("not within {PATIENCE:?}: {}", what());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until something accepts connections on `addr` (a server the test started that tells no
/// other way when it listens).
pub fn wait_listening(addr: SocketAddr, what: impl FnOnce() -> String) {
    wait_for(what, || TcpStream::connect(addr).ok().map(drop));
}

/// Connections on `port` that process `pid` has accepted (established TCP sockets among its fds; a
/// connection still in the listen backlog belongs to no process).
pub fn accepted_connections(pid: i32, port: u16) -> usize {
    let owned: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().to_string();
            Some(target.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|fields| fields.len() > 9)
        .filter(|fields| fields[3] == "01" && fields[1].ends_with(&format!(":{port:04X}")))
        .filter(|fields| owned.contains(fields[9]))
        .count()
}

/// A port for a server that binds it itself (redis-server, nginx, node): one this process has not
/// given out yet, below the kernel's ephemeral range (32768-60999 by default), and free when
/// asked. A port taken from `bind(:0)` and released is an ephemeral one: any outgoing connection
/// or `bind(:0)` of a concurrent test may get it before the server binds it.
pub fn server_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 20000;
    const SPAN: u16 = 12000;
    // Where this process starts in the range, so that two test binaries rarely meet.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % u32::from(SPAN)) as u16;
    (0..SPAN)
        .map(|_| FIRST + (start + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN) % SPAN)
        .find(|&port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        .expect("a free port in 20000-31999")
}

pub use tempfile::TempDir;

/// A directory of the test's own, removed when dropped.
pub fn temp_dir() -> TempDir {
    tempfile::Builder::new().prefix("app-test-").tempdir().unwrap()
}

/// Starts the binary directly, with no notify socket, and returns it with its first log line and
/// its state directory (not ./data in the checkout).
pub fn start_plain(args: &[&str], env: &[(&str, &str)]) -> (Child, String, TempDir) {
    let state = temp_dir();
    let mut command = Command::new(BIN);
    command.args(args).env_remove("NOTIFY_SOCKET").stdin(Stdio::null()).stderr(Stdio::piped());
    command.env("STATE_DIRECTORY", state.path());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap()).read_line(&mut line).unwrap();
    (child, line, state)
}

/// Sends `/api/randoms?cant=N` on its own connection and returns that connection once the
/// computation holds the process's only randoms slot (start the app with
/// `--randoms-concurrency 1 --randoms-wait 0`): a probe then gets 503. A probe can itself hold the slot for an
/// instant and get the big request refused; then it is sent again.
pub fn occupy_randoms_slot(app: &App, cant: u64) -> TcpStream {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut stream = TcpStream::connect(app.addr).unwrap();
        send(&mut stream, "GET", &format!("/api/randoms?cant={cant}"), &[], b"").unwrap();
        stream.set_nonblocking(true).unwrap();
        loop {
            assert!(Instant::now() < deadline, "the computation never took the randoms slot");
            let mut first_byte = [0u8; 1];
            match stream.peek(&mut first_byte) {
                Ok(_) => break, // Answered already: refused while a probe held the slot.
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(error) => panic!("the big request failed: {error}"),
            }
            if app.get("/api/randoms?cant=1").status == 503 {
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(PATIENCE)).unwrap();
                return stream;
            }
        }
    }
}

/// Sends `head`, then `piece` every 20 ms (at most 500 times: a client far slower than any limit)
/// until the server closes, and returns what it answered; fails the test if the server read the
/// trickle to the end instead of cutting it off.
pub fn trickle(addr: SocketAddr, head: &[u8], piece: &'static [u8]) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.write_all(head)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    let mut writer = stream.try_clone()?;
    let trickler = std::thread::spawn(move || {
        (0..500).all(|_| {
            std::thread::sleep(Duration::from_millis(20));
            writer.write_all(piece).is_ok()
        })
    });
    let answer = read_until_closed(&mut stream);
    let budget_ran_out = trickler.join().unwrap_or(true);
    assert!(!budget_ran_out, "the server kept reading the trickle to the end");
    answer
}

/// Opens `count` connections to `addr` that each send `head` (an unfinished request head) and wait:
/// what a slow or hostile client holds a server's connection slots and buffers with.
pub fn hold_connections(addr: SocketAddr, count: usize, head: &[u8]) -> Vec<TcpStream> {
    (0..count)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.write_all(head).unwrap();
            stream
        })
        .collect()
}
