//! Cluster mode's primary: it serves nothing itself. It holds the listening socket, keeps N worker
//! processes (copies of this binary) serving it, tells the service manager how they are, forwards
//! a stop to them and replaces them one by one on SIGHUP.

pub(crate) mod bus;
mod machine;
mod worker;

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::time::sleep_until;

use crate::config::Config;
use crate::infra::metrics;
use crate::infra::procfs;
use crate::process::listener;
use crate::process::signals::{Received, Signals};
use crate::process::systemd;
use crate::process::watcher;
use crate::process::{Error, MEMORY_CHECK_PERIOD};
use bus::Bus;
use machine::{Effects, Input, Limits, Machine, Notice, Signal, WorkerId};
pub(crate) use worker::WORKER_INDEX_ENV;
use worker::{Event, SpawnSpec};

/// The watchdog a worker is held to when the primary itself has none from systemd.
const DEFAULT_WORKER_WATCHDOG: Duration = Duration::from_secs(20);

/// Runs a cluster's primary until it and its workers have stopped.
pub(crate) fn run(config: Config, exe: &Path) -> Result<(), Error> {
    let acquired = listener::acquire(&config)?;
    announce_start(&config, &acquired);
    let notify_dir = NotifyDir::create().map_err(Error::Start)?;
    let watchdog = systemd::watchdog_timeout();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(Error::Start)?;
    // The workers' events, the bus's among them. With Redis, chat goes there and needs no bus.
    let (events_tx, events) = mpsc::unbounded_channel();
    let bus = config.redis_url.is_none().then(|| Bus::new(events_tx.clone()));
    let spec = Arc::new(spawn_spec(&config, exe, &acquired, &notify_dir, watchdog, bus));
    runtime.block_on(async {
        if let Some(path) = config.watched(exe) {
            tokio::spawn(watcher::run(path));
        }
        tokio::spawn(crate::process::backoff::record_stable_later());
        let limits = Limits {
            watchdog: spec.watchdog,
            ready_timeout: config.worker_ready_timeout,
            drain_timeout: config.drain_timeout,
            max_memory: config.worker_memory_limit(),
        };
        supervise(spec, limits, watchdog, (events_tx, events)).await
    })?;
    drop(acquired);
    Ok(())
}

/// The start-up log: what the primary listens on, how many workers it starts, and whether chat
/// crosses more than this instance.
fn announce_start(config: &Config, acquired: &listener::Acquired) {
    let workers = config.worker_count();
    tracing::info!(
        listen = %acquired.local_addr,
        listener = %acquired.source,
        workers,
        "cluster primary starting its workers"
    );
    if config.redis_url.is_none() {
        tracing::warn!(
            workers,
            "no --redis-url: chat crosses this instance's workers through the primary; other instances and hosts need --redis-url"
        );
    }
}

/// What every worker is started with: this binary and its arguments, the listener, a notify socket
/// in the primary's directory, a block of the shared metrics (when the file can be made), the bus.
fn spawn_spec(
    config: &Config,
    exe: &Path,
    acquired: &listener::Acquired,
    notify_dir: &NotifyDir,
    watchdog: Option<Duration>,
    bus: Option<Arc<Bus>>,
) -> SpawnSpec {
    let workers = config.worker_count();
    // Workers count into blocks of one shared file so that any of them can answer for the instance.
    let metrics = metrics::Shared::create(&notify_dir.0, workers)
        .inspect_err(|error| tracing::warn!(%error, "no shared metrics: each worker counts its own"))
        .ok();
    SpawnSpec {
        exe: exe.to_path_buf(),
        args: std::env::args_os().skip(1).collect(),
        listener_fd: acquired.listener.as_raw_fd(),
        workers,
        watchdog: watchdog.unwrap_or(DEFAULT_WORKER_WATCHDOG),
        notify_dir: notify_dir.0.clone(),
        metrics,
        bus,
    }
}

/// Turns signals, worker events and timers into the machine's inputs, until it has stopped.
async fn supervise(
    spec: Arc<SpawnSpec>,
    limits: Limits,
    watchdog: Option<Duration>,
    (events_tx, mut events): Events,
) -> Result<(), Error> {
    let mut signals = Signals::install().map_err(Error::Start)?;
    let mut processes =
        Processes { spec: spec.clone(), events: events_tx, workers: HashMap::new(), next_id: 0 };
    let check_memory = limits.max_memory.is_some();
    let mut machine = Machine::start(spec.workers, limits, Instant::now(), &mut processes);
    // The primary pings for the instance: only while at least one worker is ready to serve.
    let mut pings = tokio::time::interval(watchdog.map_or(Duration::from_secs(3600), |timeout| timeout / 2));
    let mut memory_checks = tokio::time::interval(MEMORY_CHECK_PERIOD);

    while !machine.finished() {
        let deadline = machine.next_deadline();
        let input = tokio::select! {
            received = signals.recv() => on_signal(received),
            Some((worker, event)) = events.recv() => processes.on_event(worker, event),
            _ = sleep_until(deadline.map_or_else(far_future, Into::into)), if deadline.is_some() => Input::Tick,
            _ = memory_checks.tick(), if check_memory => Input::CheckMemory,
            _ = pings.tick(), if watchdog.is_some() => {
                ping_for_the_instance(&machine);
                continue;
            }
        };
        machine.handle(input, Instant::now(), &mut processes);
        if let Some(metrics) = &spec.metrics {
            metrics.set_worker_restarts(machine.restarts());
        }
    }
    tracing::info!("all workers stopped");
    Ok(())
}

/// What a signal to the primary asks of the machine.
fn on_signal(received: Received) -> Input {
    match received {
        Received::Terminate => {
            tracing::info!("SIGTERM: stopping the workers");
            Input::Stop
        }
        Received::Interrupt => {
            tracing::info!("SIGINT: stopping the workers");
            Input::Stop
        }
        Received::Hangup => Input::Reload,
    }
}

/// WATCHDOG=1 for the instance, while at least one worker is ready to serve.
fn ping_for_the_instance(machine: &Machine) {
    if machine.ready_count() > 0 {
        systemd::watchdog_ping();
    }
}

/// Both ends of the channel of the workers' events.
type Events = (mpsc::UnboundedSender<(WorkerId, Event)>, mpsc::UnboundedReceiver<(WorkerId, Event)>);

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86400)
}

/// The machine's effects on real processes and on the service manager.
struct Processes {
    spec: Arc<SpawnSpec>,
    events: mpsc::UnboundedSender<(WorkerId, Event)>,
    workers: HashMap<WorkerId, worker::Handle>,
    next_id: WorkerId,
}

impl Processes {
    /// What a worker's event tells the machine; an exited worker's handle goes (it can no longer be
    /// signalled).
    fn on_event(&mut self, worker: WorkerId, event: Event) -> Input {
        match event {
            Event::Ready => Input::Ready(worker),
            Event::Pinged => Input::Pinged(worker),
            Event::Unfit => Input::Unfit(worker),
            Event::Exited(how) => {
                self.workers.remove(&worker);
                Input::Exited { worker, how }
            }
        }
    }
}

impl Effects for Processes {
    fn spawn(&mut self, slot: u16) -> std::io::Result<(WorkerId, u32)> {
        self.next_id += 1;
        let handle = worker::spawn(&self.spec, slot, self.next_id, self.events.clone())?;
        let pid = handle.pid;
        self.workers.insert(self.next_id, handle);
        Ok((self.next_id, pid))
    }

    fn signal(&mut self, worker: WorkerId, signal: Signal) {
        if let Some(handle) = self.workers.get(&worker) {
            let _ = handle.signals.send(match signal {
                Signal::Terminate => libc::SIGTERM,
                Signal::Kill => libc::SIGKILL,
            });
        }
    }

    fn tell(&mut self, notice: Notice) {
        match notice {
            Notice::Status(status) => systemd::status(&status),
            Notice::Ready { status, reload } => systemd::ready_after(&status, reload.and_then(Result::err)),
            Notice::Reloading(status) => systemd::reloading(&status),
            Notice::Stopping(status) => systemd::stopping(&status),
        }
    }

    fn memory(&mut self, worker: WorkerId) -> Option<u64> {
        procfs::rss_bytes(self.workers.get(&worker)?.pid)
    }
}

/// A private directory for the workers' notify sockets, removed with the primary.
struct NotifyDir(PathBuf);

/// How the primary's private directory is named (followed by its pid).
pub(crate) const NOTIFY_DIR_PREFIX: &str = "app-primary-";

impl NotifyDir {
    fn create() -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        if let Some(dir) = systemd::unit_runtime_dir() {
            remove_stale_dirs(&dir);
        }
        let dir = systemd::runtime_dir().join(format!("{NOTIFY_DIR_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(NotifyDir(dir))
    }
}

/// Removes the directories of primaries that are gone, left behind when a primary and its workers
/// were all killed at once (the unit's RuntimeDirectory= is kept across restarts). Only in the
/// unit's own directory: a shared temporary directory is not ours to sweep.
fn remove_stale_dirs(base: &Path) {
    for entry in std::fs::read_dir(base).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|name| name.strip_prefix(NOTIFY_DIR_PREFIX)) else { continue };
        let Ok(pid) = pid.parse::<libc::pid_t>() else { continue };
        // SAFETY: kill with signal 0 only checks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for NotifyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
