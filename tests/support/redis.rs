//! A real `redis-server` for a test: its own free loopback port, its own temporary directory, no
//! persistence. It can be stopped and started again on the same port (a Redis restart).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{TempDir, PATIENCE};

pub struct Redis {
    pub addr: SocketAddr,
    child: Option<Child>,
    dir: TempDir,
    password: Option<String>,
    /// The network namespace it runs in, when it is on a host of its own.
    netns: Option<String>,
}

impl Redis {
    pub fn start() -> Redis {
        Self::start_with(None)
    }

    /// A server that demands `password` (`requirepass`).
    pub fn with_password(password: &str) -> Redis {
        Self::start_with(Some(password.to_string()))
    }

    fn start_with(password: Option<String>) -> Redis {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut redis = Redis { addr, child: None, dir: TempDir::new(), password, netns: None };
        redis.resume();
        redis
    }

    /// A server on `host` (another network namespace), reached over its link.
    pub fn on(host: &super::netns::Host) -> Redis {
        let addr = SocketAddr::new(host.addr, 6379);
        let mut redis =
            Redis { addr, child: None, dir: TempDir::new(), password: None, netns: Some(host.netns.clone()) };
        redis.resume();
        redis
    }

    /// `redis://[:PASSWORD@]127.0.0.1:PORT/0`, for `--redis-url`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@{}/0", self.addr),
            None => format!("redis://{}/0", self.addr),
        }
    }

    /// Freezes the server (SIGSTOP): its connections stay open and nothing is answered, as when a
    /// host stops answering without closing anything.
    pub fn freeze(&self) {
        self.send(libc::SIGSTOP);
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        self.send(libc::SIGCONT);
    }

    fn send(&self, signal: i32) {
        let pid = self.child.as_ref().expect("redis is running").id() as i32;
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Kills the server (SIGKILL: every client sees its connection drop at once).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port and waits until it answers PING.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "redis is already running");
        let mut command = match &self.netns {
            Some(netns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns, "redis-server"]);
                command
            }
            None => Command::new("redis-server"),
        };
        let child = command
            .args(["--bind", &self.addr.ip().to_string(), "--port", &self.addr.port().to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir.0)
            .args(self.password.iter().flat_map(|password| ["--requirepass", password]))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (tests/lib/deps.sh)");
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on {} within {PATIENCE:?}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(self.addr) else { return false };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 64];
        let ping = match &self.password {
            Some(password) => format!("AUTH {password}\r\nPING\r\n"),
            None => "PING\r\n".to_string(),
        };
        if stream.write_all(ping.as_bytes()).is_err() {
            return false;
        }
        // The AUTH's +OK may come in a read of its own.
        let mut seen = String::new();
        while let Ok(n @ 1..) = stream.read(&mut reply) {
            seen.push_str(&String::from_utf8_lossy(&reply[..n]));
            if seen.contains("+PONG") {
                return true;
            }
        }
        false
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
