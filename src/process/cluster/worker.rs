//! One worker process of the cluster, seen from the primary: how it is started (its own binary, the
//! shared socket at fd 3, a notify socket of its own, its end of the chat bus at fd 4) and what it
//! reports back.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::net::UnixDatagram;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::bus::{self, Bus};
use crate::infra::metrics::{self, Lease, Shared};
use crate::process::listener;
use crate::process::orphan;

/// The variable that makes a started copy of the binary a cluster worker, and gives its index.
pub(crate) const WORKER_INDEX_ENV: &str = "APP_CLUSTER_WORKER";

/// What every worker of this primary is started with.
pub(crate) struct SpawnSpec {
    pub(crate) exe: PathBuf,
    pub(crate) args: Vec<OsString>,
    pub(crate) listener_fd: RawFd,
    pub(crate) workers: u16,
    /// The watchdog timeout the primary holds each worker to.
    pub(crate) watchdog: Duration,
    /// Where the per-worker notify sockets live.
    pub(crate) notify_dir: PathBuf,
    /// The instance's shared counters, when the file could be made.
    pub(crate) metrics: Option<std::sync::Arc<Shared>>,
    /// The chat bus each worker is attached to (cluster mode without --redis-url).
    pub(crate) bus: Option<std::sync::Arc<Bus>>,
}

/// What a worker says or does, as the machine hears it.
pub(crate) enum Event {
    Ready,
    Pinged,
    /// Its chat bus was cut off (it fell behind, or broke the format): it must be replaced.
    Unfit,
    Exited(String),
}

/// The sd_notify states a worker sent in one datagram.
#[derive(Default, Debug)]
struct Notification {
    ready: bool,
    watchdog: bool,
}

impl Notification {
    fn parse(datagram: &[u8]) -> Self {
        let mut notification = Notification::default();
        for line in String::from_utf8_lossy(datagram).lines() {
            match line {
                "READY=1" => notification.ready = true,
                "WATCHDOG=1" => notification.watchdog = true,
                _ => {}
            }
        }
        notification
    }
}

/// A started worker: its pid, and where to send the signals meant for it. Signals go through the
/// task that owns the child, which sends them only while the child is not reaped, so a recycled
/// pid is never signalled.
pub(crate) struct Handle {
    pub(crate) pid: u32,
    pub(crate) signals: mpsc::UnboundedSender<libc::c_int>,
}

/// Starts worker `index` and a task that reports its events as `(id, Event)` until it exits.
pub(crate) fn spawn(
    spec: &SpawnSpec,
    index: u16,
    id: u64,
    events: mpsc::UnboundedSender<(u64, Event)>,
) -> io::Result<Handle> {
    let socket_path = spec.notify_dir.join(format!("worker-{index}-{id}.sock"));
    let _ = std::fs::remove_file(&socket_path);
    let notify = UnixDatagram::bind(&socket_path)?;
    let pair = spec.bus.as_ref().map(|_| Bus::pair()).transpose()?;
    let bus_fd = pair.as_ref().map(|(_, theirs)| theirs.as_raw_fd());
    let lease = spec.metrics.as_ref().and_then(|shared| shared.lease());
    let mut command = command(spec, index, &socket_path, bus_fd.is_some(), lease.as_ref());
    hand_over(&mut command, spec.listener_fd, bus_fd);
    let child = command.spawn()?;
    let pid = child.id().unwrap_or(0);
    // The worker's end now lives in the worker only (dropped here), so the primary reads the end
    // of the bus once the worker is gone.
    if let (Some(bus), Some((ours, _theirs))) = (&spec.bus, pair) {
        bus.attach(id, index, pid, ours);
    }
    let (signals, signals_rx) = mpsc::unbounded_channel();
    let bus = spec.bus.clone();
    tokio::spawn(async move {
        let how = watch(id, child, notify, socket_path, lease, signals_rx, &events).await;
        // Before the exit is reported, so the slot's next worker never shares the bus with it.
        if let Some(bus) = bus {
            bus.detach(id);
        }
        let _ = events.send((id, Event::Exited(how)));
    });
    Ok(Handle { pid, signals })
}

/// The worker's command line and environment: what it inherits (see crate::process::inherited),
/// and nothing of the primary's own environment that would say more.
fn command(
    spec: &SpawnSpec,
    index: u16,
    socket_path: &Path,
    has_bus: bool,
    lease: Option<&Lease>,
) -> Command {
    let mut command = Command::new(&spec.exe);
    command
        .args(&spec.args)
        .env(WORKER_INDEX_ENV, index.to_string())
        .env("APP_WORKERS", spec.workers.to_string())
        .env("NOTIFY_SOCKET", socket_path)
        .env("WATCHDOG_USEC", spec.watchdog.as_micros().to_string())
        .env("LISTEN_FDS", "1")
        // The worker's pid is unknown before the fork; an absent LISTEN_PID means "this process"
        // to listenfd (systemfd's --no-pid convention), as WATCHDOG_PID does to libsystemd.
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null());
    if has_bus {
        command.env(bus::BUS_FD_ENV, bus::BUS_FD.to_string());
    } else {
        command.env_remove(bus::BUS_FD_ENV);
    }
    match (&spec.metrics, lease) {
        (Some(shared), Some(lease)) => {
            command.env(metrics::FILE_ENV, &shared.path).env(metrics::BLOCK_ENV, lease.index.to_string())
        }
        _ => command.env_remove(metrics::FILE_ENV).env_remove(metrics::BLOCK_ENV),
    };
    command
}

/// Between fork and exec: ties the worker's life to the primary's, and puts the listener at fd 3
/// and the worker's end of the bus (if any) at [`bus::BUS_FD`].
fn hand_over(command: &mut Command, listener_fd: RawFd, bus_fd: Option<RawFd>) {
    let primary = std::process::id();
    // SAFETY: between fork and exec the hook makes only async-signal-safe calls.
    unsafe {
        command.pre_exec(move || {
            // The kernel's notice that the primary died: the worker's handler arms a hard deadline
            // (see crate::process::orphan). The primary forks on its only thread (a current-thread
            // runtime), so this fires when the process dies, not when some thread ends.
            if libc::prctl(libc::PR_SET_PDEATHSIG, orphan::PARENT_DEATH_SIGNAL) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() as u32 != primary {
                return Err(io::Error::other("the primary exited while the worker started"));
            }
            listener::install_as_inherited(listener_fd)?;
            // The worker's end is at fd 10 or more, so the listener's move cannot have touched it;
            // dup2 gives the copy no close-on-exec flag.
            if let Some(fd) = bus_fd {
                if libc::dup2(fd, bus::BUS_FD) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Reports what worker `id` says on its notify socket and sends it the signals asked, until it
/// exits; returns how it did.
async fn watch(
    id: u64,
    mut child: Child,
    notify: UnixDatagram,
    socket_path: PathBuf,
    lease: Option<Lease>,
    mut signals: mpsc::UnboundedReceiver<libc::c_int>,
    events: &mpsc::UnboundedSender<(u64, Event)>,
) -> String {
    let mut datagram = [0u8; 4096];
    let how = loop {
        tokio::select! {
            status = child.wait() => break describe_exit(status),
            received = notify.recv(&mut datagram) => {
                let Ok(length) = received else { continue };
                let notification = Notification::parse(&datagram[..length]);
                if notification.watchdog {
                    let _ = events.send((id, Event::Pinged));
                }
                if notification.ready {
                    let _ = events.send((id, Event::Ready));
                }
            }
            Some(signal) = signals.recv() => {
                if let Some(pid) = child.id() {
                    // SAFETY: kill has no memory-safety preconditions; the child is not reaped.
                    unsafe { libc::kill(pid as libc::pid_t, signal) };
                }
            }
        }
    };
    let _ = std::fs::remove_file(&socket_path);
    // Dropped after the process is gone: folds its counts into the instance's retired block.
    drop(lease);
    how
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
