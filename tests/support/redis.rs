//! A real `redis-server` for a test: its own free loopback port, its own temporary directory, no
//! persistence. It can be stopped and started again on the same port (a Redis restart). It may be a
//! replica of another, or a sentinel (`redis-server --sentinel`, the same binary Debian's and
//! nixpkgs' `redis-sentinel` is).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{temp_dir, wait_for, TempDir};

pub struct Redis {
    pub addr: SocketAddr,
    child: Option<Child>,
    dir: TempDir,
    password: Option<String>,
    /// The network namespace it runs in, when it is on a host of its own.
    netns: Option<String>,
    /// What it is besides a plain server: `--replicaof ...`, or a sentinel's configuration.
    role: Role,
}

enum Role {
    Master,
    Replica {
        of: SocketAddr,
    },
    /// Its configuration file (a sentinel rewrites it, so it lives in the server's directory).
    Sentinel {
        config: PathBuf,
    },
}

/// The master name the sentinels of [`Redis::sentinel_of`] monitor.
pub const MASTER_NAME: &str = "app";

impl Redis {
    pub fn start() -> Redis {
        Self::start_with(None)
    }

    /// A server that demands `password` (`requirepass`).
    pub fn with_password(password: &str) -> Redis {
        Self::start_with(Some(password.to_string()))
    }

    fn start_with(password: Option<String>) -> Redis {
        Self::start_as(Role::Master, temp_dir(), password)
    }

    /// A replica of `master` (`--replicaof`).
    pub fn replica_of(master: &Redis) -> Redis {
        Self::start_as(Role::Replica { of: master.addr }, temp_dir(), None)
    }

    /// A sentinel watching `master` as [`MASTER_NAME`], with a quorum of 2, that considers a master
    /// down after `down_after` without an answer.
    pub fn sentinel_of(master: &Redis, down_after: Duration) -> Redis {
        let dir = temp_dir();
        let config = dir.path().join("sentinel.conf");
        let ms = down_after.as_millis();
        let text = format!(
            "sentinel monitor {MASTER_NAME} {ip} {port} 2\n\
             sentinel down-after-milliseconds {MASTER_NAME} {ms}\n\
             sentinel failover-timeout {MASTER_NAME} {failover}\n",
            ip = master.addr.ip(),
            port = master.addr.port(),
            // Also how long before a failed fail-over is tried again by another sentinel.
            failover = ms * 4,
        );
        std::fs::write(&config, text).unwrap();
        Self::start_as(Role::Sentinel { config }, dir, None)
    }

    fn start_as(role: Role, dir: TempDir, password: Option<String>) -> Redis {
        let port = super::server_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut redis = Redis { addr, child: None, dir, password, netns: None, role };
        redis.resume();
        redis
    }

    /// A server on `host` (another network namespace), reached over its link.
    pub fn on(host: &super::netns::Host) -> Redis {
        let addr = SocketAddr::new(host.addr, 6379);
        let mut redis = Redis {
            addr,
            child: None,
            dir: temp_dir(),
            password: None,
            netns: Some(host.netns.clone()),
            role: Role::Master,
        };
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
        super::signal(self.child.as_ref().expect("redis is running").id() as i32, signal);
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
        // A configuration file comes first, before any option.
        if let Role::Sentinel { config } = &self.role {
            command.arg(config).arg("--sentinel");
        }
        if let Role::Replica { of } = &self.role {
            command.args(["--replicaof", &of.ip().to_string(), &of.port().to_string()]);
        }
        let child = command
            .args(["--bind", &self.addr.ip().to_string(), "--port", &self.addr.port().to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(self.password.iter().flat_map(|password| ["--requirepass", password]))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (tests/lib/deps.sh)");
        self.child = Some(child);
        wait_for(|| format!("redis-server answers on {}", self.addr), || self.answers().then_some(()));
    }

    /// Runs one command (e.g. `["INFO", "replication"]`) and returns its answer.
    pub fn command<T: redis::FromRedisValue>(&self, args: &[&str]) -> redis::RedisResult<T> {
        let client = redis::Client::open(self.url())?;
        let mut connection = client.get_connection_with_timeout(Duration::from_secs(1))?;
        connection.set_read_timeout(Some(Duration::from_secs(1)))?;
        let mut command = redis::cmd(args[0]);
        command.arg(&args[1..]);
        command.query(&mut connection)
    }

    /// A field of `INFO replication` (`role`, `connected_slaves`, `master_link_status`...).
    pub fn replication(&self, field: &str) -> Option<String> {
        let info: String = self.command(&["INFO", "replication"]).ok()?;
        info.lines().find_map(|line| Some(line.strip_prefix(field)?.strip_prefix(':')?.trim().to_string()))
    }

    /// What this sentinel knows of [`MASTER_NAME`] (`SENTINEL MASTER`): `ip`, `port`, `flags`,
    /// `num-slaves`, `num-other-sentinels`...
    pub fn monitored(&self) -> std::collections::HashMap<String, String> {
        self.command(&["SENTINEL", "MASTER", MASTER_NAME]).unwrap_or_default()
    }

    /// Where this sentinel says the master is now.
    pub fn master_addr(&self) -> Option<SocketAddr> {
        let (ip, port): (String, u16) =
            self.command(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME]).ok()?;
        Some(SocketAddr::new(ip.parse().ok()?, port))
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

/// A cluster of `workers` workers whose chat relay uses `redis`, once every worker is ready: with
/// the server frozen ([`Redis::freeze`]), a new worker cannot subscribe, so it is not ready.
pub fn cluster_on(redis: &Redis, workers: usize, extra: &[&str]) -> super::App {
    let (url, count) = (redis.url(), workers.to_string());
    let mut args = vec!["--mode", "cluster", "--workers", &count, "--redis-url", &url];
    args.extend_from_slice(extra);
    let mut app = super::App::activated(&args).ready();
    app.wait_for_notification(&format!("STATUS={workers}/{workers} workers ready"));
    app
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
