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
}

impl Redis {
    pub fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut redis =
            Redis { addr: SocketAddr::from(([127, 0, 0, 1], port)), child: None, dir: TempDir::new() };
        redis.resume();
        redis
    }

    /// `redis://127.0.0.1:PORT/0`, for `--redis-url`.
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    /// Kills the server (SIGKILL: every client sees its connection drop at once).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP), as a hung host would: connections stay open, nothing answers.
    pub fn freeze(&self) {
        self.send_signal(libc::SIGSTOP);
    }

    /// Lets a frozen server run again (SIGCONT): it then carries out what it was sent meanwhile.
    pub fn thaw(&self) {
        self.send_signal(libc::SIGCONT);
    }

    fn send_signal(&self, signal: i32) {
        let child = self.child.as_ref().expect("redis is running");
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    }

    /// Starts the server (again) on the same port and waits until it answers PING.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "redis is already running");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.addr.port().to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir.0)
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
        let mut reply = [0u8; 16];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read(&mut reply).is_ok_and(|n| reply[..n].starts_with(b"+PONG"))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
