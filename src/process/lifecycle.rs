//! One serving process: the whole server in fork mode, or one worker of a cluster. It serves until
//! SIGTERM/SIGINT (drain and exit) or, in fork mode, SIGHUP (drain and re-execute the binary on the
//! same socket, keeping its pid, so a new binary takes over with no refused connection).

use std::error::Error;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::config::{Config, Mode};
use crate::http::connections;
use crate::http::routes;
use crate::http::state::{AppState, Placement};
use crate::infra::metrics::{self, Metrics};
use crate::process::cluster::{bus, WORKER_INDEX_ENV};
use crate::process::inherited::Inherited;
use crate::process::listener::{self, Acquired};
use crate::process::orphan;
use crate::process::systemd;
use crate::process::watcher;
use crate::process::MEMORY_CHECK_PERIOD;

/// How long start-up waits for the chat relay's subscription before announcing READY=1.
const RELAY_PATIENCE: Duration = Duration::from_secs(2);

enum Ending {
    Exit,
    Reexec,
    /// The cluster primary is gone: exit at once (see crate::process::orphan).
    Orphaned,
}

/// Runs a serving process; `inherited.worker` is its index when a cluster primary started it.
pub fn run(config: Config, inherited: Inherited, exe: &Path) -> Result<(), Box<dyn Error>> {
    let Inherited { worker, metrics, bus, primary_runtime_dir } = inherited;
    if worker.is_some() {
        orphan::arm_hard_deadline()?;
    }
    let acquired = listener::acquire(&config)?;
    let placement = Placement {
        mode: if worker.is_some() { Mode::Cluster } else { Mode::Fork },
        worker,
        workers: if worker.is_some() { config.worker_count() } else { 1 },
        instance: config.instance.clone().or_else(systemd::instance_from_cgroup),
        local_addr: acquired.local_addr,
        listener_source: acquired.source,
        primary_runtime_dir,
    };
    let metrics = Metrics::from_share(metrics.as_ref());
    let runtime = build_runtime(config.threads, config.randoms_concurrency)?;
    let Acquired { listener, .. } = acquired;
    // Fork mode keeps a copy to hand to the program it re-executes. A worker keeps none: once it
    // stops accepting, nothing of it may hold the socket.
    let (serving, kept) = match worker {
        Some(_) => (listener, None),
        None => (listener.try_clone()?, Some(listener)),
    };
    let ending = runtime.block_on(async {
        let primary = worker.map(|_| orphan::Primary::watch()).transpose()?;
        let listener = tokio::net::TcpListener::from_std(serving)?;
        let app = AppState::new(config, placement, metrics, bus).map_err(std::io::Error::other)?;
        serve_until_signal(listener, app, exe, primary).await
    })?;
    // Blocking tasks still running after a drain timeout must not hold up the exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match (ending, kept) {
        (Ending::Reexec, Some(listener)) => Err(reexec(exe, &listener).into()),
        _ => Ok(()),
    }
}

pub fn build_runtime(threads: u16, blocking: u16) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads.into());
        builder
    };
    // Blocking threads run randoms computations, which a semaphore bounds, and SQLite reads; headroom
    // beyond the randoms so a busy randoms route does not hold up the todos.
    builder.enable_all().max_blocking_threads(usize::from(blocking) + 4).build()
}

async fn serve_until_signal(
    listener: tokio::net::TcpListener,
    app: AppState,
    exe: &Path,
    primary: Option<orphan::Primary>,
) -> std::io::Result<Ending> {
    let app = Arc::new(app);
    let placement = &app.placement;
    let what = match placement.worker {
        Some(index) => format!("cluster worker {index} of {}", placement.workers),
        None => "fork mode".to_string(),
    };
    // Handlers first: a stop that comes right after READY=1 must drain, not kill.
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let (stop, stopped) = watch::channel(false);
    let mut server = tokio::spawn(connections::serve(listener, app.clone(), stopped));
    if let Some(index) = placement.worker {
        tokio::spawn(routes::forward::listen(app.clone(), index, stop.subscribe()));
    }
    tracing::info!(
        listen = %placement.local_addr,
        listener = %placement.listener_source,
        instance = placement.instance.as_deref().unwrap_or("-"),
        todos = %app.todos.describe(),
        chat = app.chat.fan_out(),
        "serving ({what})"
    );
    // Bounded: with Redis away the process still serves (todos, error frames) and the relay keeps
    // trying in the background.
    if placement.worker.is_none() && app.config.redis_url.is_none() {
        tracing::warn!("no --redis-url: chat rooms are process-local; other processes, instances and hosts need --redis-url");
    }
    if !app.chat.wait_relay(RELAY_PATIENCE).await {
        tracing::warn!(patience = ?RELAY_PATIENCE, "chat relay not subscribed yet (Redis away?); ready anyway");
    }
    systemd::ready(&format!("serving {} ({what})", placement.local_addr));
    // A cluster worker is replaced by its primary, which does the watching.
    if let (None, Some(path)) = (placement.worker, app.config.watched(exe)) {
        tokio::spawn(watcher::run(path));
    }
    if let Some(timeout) = systemd::watchdog_timeout() {
        tokio::spawn(ping_watchdog(timeout / 2, app.clone()));
    }
    if placement.worker.is_none() {
        tokio::spawn(crate::process::backoff::record_stable_later());
    }

    let primary_exited = async {
        match &primary {
            Some(primary) => primary.exited().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(primary_exited);
    // A cluster worker's memory is watched by its primary.
    let memory_limit = app.config.worker_memory_limit().filter(|_| placement.worker.is_none());
    let mut memory_checks = tokio::time::interval(MEMORY_CHECK_PERIOD);

    let ending = loop {
        tokio::select! {
            _ = &mut primary_exited => break Ending::Orphaned,
            _ = memory_checks.tick(), if memory_limit.is_some() => {
                let used = crate::infra::procfs::own_rss_bytes().unwrap_or(0);
                if memory_limit.is_some_and(|limit| used > limit) {
                    tracing::warn!(used, limit = memory_limit, "over --worker-max-memory: reloading, as on SIGHUP");
                    break Ending::Reexec;
                }
            }
            _ = sigterm.recv() => break Ending::Exit,
            _ = sigint.recv() => break Ending::Exit,
            _ = sighup.recv() => {
                if placement.worker.is_some() {
                    tracing::debug!("SIGHUP ignored: the cluster primary replaces workers on reload");
                } else if let Err(error) = exe.metadata() {
                    tracing::error!(exe = %exe.display(), %error, "SIGHUP: cannot re-execute; still serving");
                } else {
                    break Ending::Reexec;
                }
            }
            result = &mut server => {
                return Err(std::io::Error::other(format!("the accept loop ended unexpectedly: {result:?}")));
            }
        }
    };

    match ending {
        Ending::Exit => systemd::stopping("draining connections"),
        Ending::Reexec => systemd::reloading(&format!("draining, then re-executing {}", exe.display())),
        Ending::Orphaned => {
            tracing::warn!(grace = ?orphan::GRACE, "the cluster primary is gone: closing the listener and exiting");
            if let Some(dir) = &app.placement.primary_runtime_dir {
                orphan::remove_primary_dir(dir);
            }
            let _ = stop.send(true);
            let _ = tokio::time::timeout(orphan::GRACE, server).await;
            return Ok(ending);
        }
    }
    tracing::info!(timeout = ?app.config.drain_timeout, "draining");
    let _ = stop.send(true);
    let cut = server.await.unwrap_or(0);
    if cut > 0 {
        tracing::warn!(connections = cut, "drain timeout reached; closing connections still open");
    } else {
        tracing::info!("drained");
    }
    Ok(ending)
}

/// Pings the watchdog only while a task spawned on the serving runtime still gets to run and the
/// health check passes: a blocked event loop or a failing dependency stops the pings, and the
/// service manager (or the cluster primary) restarts the process.
async fn ping_watchdog(period: Duration, app: Arc<AppState>) {
    let mut ticks = tokio::time::interval(period);
    loop {
        ticks.tick().await;
        let probe = tokio::spawn({
            let app = app.clone();
            async move { app.liveness().await }
        });
        match tokio::time::timeout(period, probe).await {
            Ok(Ok(Ok(()))) => systemd::watchdog_ping(),
            Ok(Ok(Err(problem))) => tracing::warn!(%problem, "health check failed; watchdog not pinged"),
            Ok(Err(_)) | Err(_) => tracing::warn!("health probe did not run in time; watchdog not pinged"),
        }
    }
}

/// Replaces this process with `exe`, handing it the listener as fd 3. Returns only on failure.
fn reexec(exe: &Path, listener: &std::net::TcpListener) -> std::io::Error {
    tracing::info!(exe = %exe.display(), "re-executing with the listener");
    // The program that follows must not take this for a crash.
    crate::process::backoff::ended_cleanly();
    let fd = listener.as_raw_fd();
    let mut command = std::process::Command::new(exe);
    command
        .args(std::env::args_os().skip(1))
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", std::process::id().to_string())
        .env_remove("LISTEN_FDNAMES")
        // What a cluster primary hands its workers is for them only (see crate::process::inherited).
        .env_remove(WORKER_INDEX_ENV)
        .env_remove(metrics::FILE_ENV)
        .env_remove(metrics::BLOCK_ENV)
        .env_remove(bus::BUS_FD_ENV);
    // SAFETY: the hook only moves an fd (async-signal-safe), right before exec in this same process.
    unsafe {
        command.pre_exec(move || listener::install_as_inherited(fd));
    }
    command.exec()
}
