//! One worker process of the cluster, seen from the primary: how it is started (its own binary, the
//! shared socket at fd 3, a notify socket of its own) and what it reports back.

use std::ffi::OsString;
use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::net::UnixDatagram;
use tokio::process::{Child, Command};

use crate::listener;
use crate::metrics::{self, Lease, Shared};

/// The variable that makes a started copy of the binary a cluster worker, and gives its index.
pub const WORKER_INDEX_ENV: &str = "APP_CLUSTER_WORKER";

/// What every worker of this primary is started with.
pub struct SpawnSpec {
    pub exe: PathBuf,
    pub args: Vec<OsString>,
    pub listener_fd: RawFd,
    pub workers: u16,
    /// The watchdog timeout the primary holds each worker to.
    pub watchdog: Duration,
    /// Where the per-worker notify sockets live.
    pub notify_dir: PathBuf,
    /// The instance's shared counters, when the file could be made.
    pub metrics: Option<std::sync::Arc<Shared>>,
}

pub struct Worker {
    pub index: u16,
    pub pid: u32,
    pub spawned: Instant,
    pub last_ping: Instant,
    pub ready: bool,
    pub killed: bool,
    child: Child,
    notify: UnixDatagram,
    socket_path: PathBuf,
    /// The worker's metrics block: dropped with the Worker, after the process is gone, which folds
    /// its counts into the instance's retired block.
    _metrics: Option<Lease>,
}

pub enum Event {
    Notified(Notification),
    Exited(String),
}

/// The sd_notify states a worker sent in one datagram.
#[derive(Default, Debug)]
pub struct Notification {
    pub ready: bool,
    pub stopping: bool,
    pub watchdog: bool,
}

impl Notification {
    fn parse(datagram: &[u8]) -> Self {
        let mut notification = Notification::default();
        for line in String::from_utf8_lossy(datagram).lines() {
            match line {
                "READY=1" => notification.ready = true,
                "STOPPING=1" => notification.stopping = true,
                "WATCHDOG=1" => notification.watchdog = true,
                _ => {}
            }
        }
        notification
    }
}

impl Worker {
    pub fn spawn(spec: &SpawnSpec, index: u16, generation: u64) -> io::Result<Self> {
        let socket_path = spec.notify_dir.join(format!("worker-{index}-{generation}.sock"));
        let _ = std::fs::remove_file(&socket_path);
        let notify = UnixDatagram::bind(&socket_path)?;
        let primary = std::process::id();
        let listener_fd = spec.listener_fd;

        let mut command = Command::new(&spec.exe);
        command
            .args(&spec.args)
            .env(WORKER_INDEX_ENV, index.to_string())
            .env("APP_WORKERS", spec.workers.to_string())
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", spec.watchdog.as_micros().to_string())
            .env("LISTEN_FDS", "1")
            // The worker's pid is unknown before the fork; an absent LISTEN_PID means "this process"
            // to listenfd (systemfd's --no-pid convention), as WATCHDOG_PID does to libsystemd.
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null());
        let lease = spec.metrics.as_ref().and_then(|shared| shared.lease());
        if let (Some(shared), Some(lease)) = (&spec.metrics, &lease) {
            command.env(metrics::FILE_ENV, &shared.path).env(metrics::BLOCK_ENV, lease.index.to_string());
        }
        // SAFETY: between fork and exec the hook makes only async-signal-safe calls.
        unsafe {
            command.pre_exec(move || {
                // Workers never outlive the primary: they get SIGTERM (and drain) when it dies.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::getppid() as u32 != primary {
                    return Err(io::Error::other("the primary exited while the worker started"));
                }
                listener::install_as_inherited(listener_fd)
            });
        }
        let child = command.spawn()?;
        let now = Instant::now();
        Ok(Worker {
            index,
            pid: child.id().unwrap_or(0),
            spawned: now,
            last_ping: now,
            ready: false,
            killed: false,
            child,
            notify,
            socket_path,
            _metrics: lease,
        })
    }

    /// The next thing the worker says or does. Cancel-safe; after an exit, returns it again.
    pub async fn next_event(&mut self) -> Event {
        let mut datagram = [0u8; 4096];
        tokio::select! {
            status = self.child.wait() => Event::Exited(describe_exit(status)),
            received = self.notify.recv(&mut datagram) => {
                let notification = match received {
                    Ok(length) => Notification::parse(&datagram[..length]),
                    Err(_) => Notification::default(),
                };
                if notification.watchdog {
                    self.last_ping = Instant::now();
                }
                Event::Notified(notification)
            }
        }
    }

    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    pub fn kill(&mut self) {
        self.killed = true;
        self.signal(libc::SIGKILL);
    }

    fn signal(&self, signal: libc::c_int) {
        // A reaped child has no id, so a recycled pid is never signalled.
        if let Some(pid) = self.child.id() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid as libc::pid_t, signal) };
        }
    }

    /// Waits for the worker to exit, killing it if it is still there after `grace`.
    pub async fn wait_exit(&mut self, grace: Duration) -> String {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            tokio::select! {
                event = self.next_event() => if let Event::Exited(status) = event {
                    return status;
                },
                _ = tokio::time::sleep_until(deadline), if !self.killed => {
                    tracing::warn!(worker = self.index, pid = self.pid, "still running after {grace:?}; killing it");
                    self.kill();
                }
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket_path);
    }
}

fn describe_exit(status: io::Result<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => format!("killed by signal {signal} ({})", signal_name(signal)),
            _ => status.to_string(),
        },
        Err(error) => format!("could not be waited for: {error}"),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGINT => "SIGINT",
        libc::SIGBUS => "SIGBUS",
        _ => "other",
    }
}
