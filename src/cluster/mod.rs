//! Cluster mode's primary: it serves nothing itself. It holds the listening socket, keeps N worker
//! processes (copies of this binary) serving it, tells the service manager how they are, forwards
//! a stop to them and replaces them one by one on SIGHUP.

mod slot;
mod worker;

use std::error::Error;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::{listener, metrics, systemd, watcher};
use slot::{Command, Report, Slot};
use worker::SpawnSpec;
pub use worker::WORKER_INDEX_ENV;

/// The watchdog a worker is held to when the primary itself has none from systemd.
const DEFAULT_WORKER_WATCHDOG: Duration = Duration::from_secs(20);

pub fn run(config: Config, exe: &Path) -> Result<(), Box<dyn Error>> {
    let acquired = listener::acquire(&config)?;
    let workers = config.worker_count();
    tracing::info!(
        listen = %acquired.local_addr,
        listener = %acquired.source,
        workers,
        "cluster primary starting its workers"
    );
    if config.redis_url.is_none() && workers > 1 {
        tracing::warn!(
            workers,
            "no --redis-url: chat rooms are process-local, so clients of different workers do not see each other's messages"
        );
    }
    let notify_dir = NotifyDir::create()?;
    // Workers count into blocks of one shared file so that any of them can answer for the instance.
    let metrics = metrics::Shared::create(&notify_dir.0, workers)
        .inspect_err(|error| tracing::warn!(%error, "no shared metrics: each worker counts its own"))
        .ok();
    let watchdog = systemd::watchdog_timeout();
    let spec = Arc::new(SpawnSpec {
        exe: exe.to_path_buf(),
        args: std::env::args_os().skip(1).collect(),
        listener_fd: acquired.listener.as_raw_fd(),
        workers,
        watchdog: watchdog.unwrap_or(DEFAULT_WORKER_WATCHDOG),
        notify_dir: notify_dir.0.clone(),
        metrics,
    });
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        if let Some(path) = config.watched(exe) {
            tokio::spawn(watcher::run(path));
        }
        supervise(spec, config.drain_timeout, watchdog).await
    })?;
    drop(acquired);
    Ok(())
}

async fn supervise(
    spec: Arc<SpawnSpec>,
    drain_timeout: Duration,
    watchdog: Option<Duration>,
) -> std::io::Result<()> {
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let (reports_tx, mut reports) = mpsc::unbounded_channel();
    let mut slots = Vec::new();
    for index in 0..spec.workers {
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let slot = Slot::new(index, spec.clone(), drain_timeout, commands, reports_tx.clone());
        slots.push((commands_tx, tokio::spawn(slot.run())));
    }
    let mut table = Table::new(spec.workers);
    let (reload_done_tx, mut reload_done) = mpsc::unbounded_channel();
    let mut reloading = false;

    // The primary pings for the instance: only while at least one worker is ready to serve.
    let mut pings = tokio::time::interval(watchdog.map_or(Duration::from_secs(3600), |timeout| timeout / 2));

    let why = loop {
        tokio::select! {
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
            _ = sighup.recv() => {
                if reloading {
                    tracing::info!("SIGHUP: a reload is already under way");
                    continue;
                }
                reloading = true;
                tracing::info!("SIGHUP: replacing the workers one by one");
                systemd::reloading(&format!("replacing workers; {}", table.status()));
                let commands = slots.iter().map(|(commands, _)| commands.clone()).collect();
                let done = reload_done_tx.clone();
                tokio::spawn(async move { let _ = done.send(roll(commands).await); });
            }
            Some(outcome) = reload_done.recv() => {
                reloading = false;
                match outcome {
                    Ok(()) => tracing::info!("reload done: every worker replaced"),
                    Err(error) => tracing::error!(%error, "reload stopped"),
                }
                systemd::ready(&table.status());
            }
            Some(report) = reports.recv() => {
                table.apply(&report);
                if let Some(metrics) = &spec.metrics {
                    metrics.set_worker_restarts(table.restarts);
                }
                // READY=1 once, when every worker first is; later changes only update STATUS=.
                if table.all_ready() && !table.announced {
                    table.announced = true;
                    tracing::info!("{}", table.status());
                    systemd::ready(&table.status());
                } else {
                    systemd::status(&table.status());
                }
            }
            _ = pings.tick(), if watchdog.is_some() => {
                if table.ready_count() > 0 {
                    systemd::watchdog_ping();
                }
            }
        }
    };

    tracing::info!("{why}: stopping the workers");
    systemd::stopping(&format!("{why}: draining {} workers", spec.workers));
    for (commands, _) in &slots {
        let _ = commands.send(Command::Shutdown);
    }
    for (_, task) in slots {
        let _ = task.await;
    }
    tracing::info!("all workers stopped");
    Ok(())
}

/// Replaces every worker in turn, each only after the one before is ready.
async fn roll(slots: Vec<mpsc::UnboundedSender<Command>>) -> Result<(), String> {
    for commands in slots {
        let (reply, replaced) = oneshot::channel();
        commands.send(Command::Replace(reply)).map_err(|_| "a worker slot has stopped".to_string())?;
        replaced.await.map_err(|_| "a worker slot has stopped".to_string())??;
    }
    Ok(())
}

/// What the primary knows of its workers, for `STATUS=` and readiness.
struct Table {
    ready: Vec<Option<u32>>,
    restarts: u64,
    announced: bool,
}

impl Table {
    fn new(workers: u16) -> Self {
        Table { ready: vec![None; workers.into()], restarts: 0, announced: false }
    }

    fn apply(&mut self, report: &Report) {
        match *report {
            Report::Ready { index, pid } => self.ready[usize::from(index)] = Some(pid),
            Report::Died { index, pid } => {
                if self.ready[usize::from(index)] == Some(pid) {
                    self.ready[usize::from(index)] = None;
                }
                self.restarts += 1;
            }
            Report::Stopped { index } => self.ready[usize::from(index)] = None,
        }
    }

    fn ready_count(&self) -> usize {
        self.ready.iter().flatten().count()
    }

    fn all_ready(&self) -> bool {
        self.ready_count() == self.ready.len()
    }

    fn status(&self) -> String {
        let restarts = self.restarts;
        let plural = if restarts == 1 { "" } else { "s" };
        format!("{}/{} workers ready, {restarts} restart{plural}", self.ready_count(), self.ready.len())
    }
}

/// A private directory for the workers' notify sockets, removed with the primary.
struct NotifyDir(PathBuf);

impl NotifyDir {
    fn create() -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        // systemd's RuntimeDirectory= when the unit has one, else the (private, under PrivateTmp) temp dir.
        let base = std::env::var_os("RUNTIME_DIRECTORY")
            .and_then(|dirs| std::env::split_paths(&dirs).next())
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("app-primary-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(NotifyDir(dir))
    }
}

impl Drop for NotifyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
