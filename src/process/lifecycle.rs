//! One serving process: the whole server in fork mode, or one worker of a cluster. It serves until
//! SIGTERM/SIGINT (drain and exit) or, in fork mode, SIGHUP (drain and re-execute the binary on the
//! same socket, keeping its pid, so a new binary takes over with no refused connection).

use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, Mode};
use crate::http::connections;
use crate::http::routes;
use crate::http::state::{AppState, Placement};
use crate::infra::metrics::{self, Metrics};
use crate::process::cluster::{bus, WORKER_INDEX_ENV};
use crate::process::listener::{self, Acquired};
use crate::process::orphan;
use crate::process::signals::{Received, Signals};
use crate::process::systemd;
use crate::process::watcher;
use crate::process::{Error, Inherited, MEMORY_CHECK_PERIOD};

/// How long start-up waits for the chat relay's subscription before announcing READY=1.
const RELAY_PATIENCE: Duration = Duration::from_secs(2);

enum Ending {
    Exit,
    Reexec,
    /// The cluster primary is gone: exit at once (see crate::process::orphan).
    Orphaned,
}

/// The accept loop's task; it ends with the number of connections it had to cut at the drain
/// timeout.
type Server = JoinHandle<usize>;

/// Runs a serving process; `inherited.worker` is its index when a cluster primary started it.
pub(crate) fn run(config: Config, inherited: Inherited, exe: &Path) -> Result<(), Error> {
    let Inherited { worker, metrics, bus, primary_runtime_dir } = inherited;
    if worker.is_some() {
        orphan::arm_hard_deadline().map_err(Error::HardDeadline)?;
    }
    let acquired = listener::acquire(&config)?;
    let placement = placement(&config, worker, &acquired, primary_runtime_dir);
    let metrics = Metrics::from_share(metrics.as_ref());
    let runtime = build_runtime(config.threads, config.randoms_concurrency).map_err(Error::Start)?;
    let (serving, kept) = keep_for_reexec(acquired.listener, worker)?;
    let ending = runtime.block_on(async {
        let primary = worker.map(|_| orphan::Primary::watch()).transpose().map_err(Error::Start)?;
        let listener = tokio::net::TcpListener::from_std(serving).map_err(Error::Start)?;
        let app =
            AppState::new(config, placement, metrics, bus).map_err(|error| Error::App(error.to_string()))?;
        serve_until_signal(listener, Arc::new(app), exe, primary).await
    })?;
    // Blocking tasks still running after a drain timeout must not hold up the exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match (ending, kept) {
        (Ending::Reexec, Some(listener)) => Err(Error::Reexec(reexec(exe, &listener))),
        _ => Ok(()),
    }
}

/// Where this process stands: a worker of `config.worker_count()`, or fork mode's only process.
fn placement(
    config: &Config,
    worker: Option<u16>,
    acquired: &Acquired,
    primary_runtime_dir: Option<PathBuf>,
) -> Placement {
    Placement {
        mode: if worker.is_some() { Mode::Cluster } else { Mode::Fork },
        worker,
        workers: if worker.is_some() { config.worker_count() } else { 1 },
        instance: config.instance.clone().or_else(systemd::instance_from_cgroup),
        local_addr: acquired.local_addr,
        listener_source: acquired.source,
        primary_runtime_dir,
    }
}

/// The listener to serve, and in fork mode a copy kept to hand to the program it re-executes. A
/// worker keeps none: once it stops accepting, nothing of it may hold the socket.
fn keep_for_reexec(
    listener: TcpListener,
    worker: Option<u16>,
) -> Result<(TcpListener, Option<TcpListener>), Error> {
    Ok(match worker {
        Some(_) => (listener, None),
        None => (listener.try_clone().map_err(Error::Start)?, Some(listener)),
    })
}

pub(crate) fn build_runtime(threads: u16, blocking: u16) -> std::io::Result<tokio::runtime::Runtime> {
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

/// Serves until a signal (or the primary's death, or fork mode's memory limit) says to stop, then
/// drains; says how it ended.
async fn serve_until_signal(
    listener: tokio::net::TcpListener,
    app: Arc<AppState>,
    exe: &Path,
    primary: Option<orphan::Primary>,
) -> Result<Ending, Error> {
    // Handlers first: a stop that comes right after READY=1 must drain, not kill.
    let mut signals = Signals::install().map_err(Error::Start)?;
    let (stop, stopped) = watch::channel(false);
    let mut server = tokio::spawn(connections::serve(listener, app.clone(), stopped));
    if let Some(index) = app.placement.worker {
        tokio::spawn(routes::forward::listen(app.clone(), index, stop.subscribe()));
    }
    announce_ready(&app).await;
    spawn_companions(&app, exe);
    let ending = wait_for_ending(&app, exe, &mut signals, primary.as_ref(), &mut server).await?;
    match ending {
        Ending::Exit => systemd::stopping("draining connections"),
        Ending::Reexec => systemd::reloading(&format!("draining, then re-executing {}", exe.display())),
        Ending::Orphaned => {
            leave_orphaned(&app, stop, server).await;
            return Ok(ending);
        }
    }
    drain(&app, stop, server).await;
    Ok(ending)
}

/// What this process is, for the log and the service manager's status.
fn describe(placement: &Placement) -> String {
    match placement.worker {
        Some(index) => format!("cluster worker {index} of {}", placement.workers),
        None => "fork mode".to_string(),
    }
}

/// Logs what serves, waits (bounded) for the chat relay, and sends READY=1.
async fn announce_ready(app: &AppState) {
    let placement = &app.placement;
    let what = describe(placement);
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
}

/// The tasks that run beside the server once it is ready: the binary's watcher and the restart
/// back-off's record (fork mode only: a cluster worker's primary does both), the watchdog pings.
fn spawn_companions(app: &Arc<AppState>, exe: &Path) {
    let fork_mode = app.placement.worker.is_none();
    if let (true, Some(path)) = (fork_mode, app.config.watched(exe)) {
        tokio::spawn(watcher::run(path));
    }
    if let Some(timeout) = systemd::watchdog_timeout() {
        tokio::spawn(ping_watchdog(timeout / 2, app.clone()));
    }
    if fork_mode {
        tokio::spawn(crate::process::backoff::record_stable_later());
    }
}

/// Waits for what ends the serving: SIGTERM or SIGINT, a SIGHUP (fork mode), the primary's death
/// (a cluster worker), fork mode's memory over --worker-max-memory. An accept loop that ends by
/// itself is an error.
async fn wait_for_ending(
    app: &AppState,
    exe: &Path,
    signals: &mut Signals,
    primary: Option<&orphan::Primary>,
    server: &mut Server,
) -> Result<Ending, Error> {
    let primary_exited = async {
        match primary {
            Some(primary) => primary.exited().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(primary_exited);
    // A cluster worker's memory is watched by its primary.
    let memory_limit = app.config.worker_memory_limit().filter(|_| app.placement.worker.is_none());
    let mut memory_checks = tokio::time::interval(MEMORY_CHECK_PERIOD);
    loop {
        tokio::select! {
            _ = &mut primary_exited => return Ok(Ending::Orphaned),
            _ = memory_checks.tick(), if memory_limit.is_some() => {
                if memory_limit.is_some_and(over_memory) {
                    return Ok(Ending::Reexec);
                }
            }
            received = signals.recv() => match received {
                Received::Terminate | Received::Interrupt => return Ok(Ending::Exit),
                Received::Hangup => {
                    if reexec_on_hangup(&app.placement, exe) {
                        return Ok(Ending::Reexec);
                    }
                }
            },
            result = &mut *server => return Err(Error::AcceptLoopEnded(format!("{result:?}"))),
        }
    }
}

/// Whether this process uses more memory than `limit`, which reloads it as a SIGHUP does.
fn over_memory(limit: u64) -> bool {
    let used = crate::infra::procfs::own_rss_bytes().unwrap_or(0);
    if used > limit {
        tracing::warn!(used, limit, "over --worker-max-memory: reloading, as on SIGHUP");
    }
    used > limit
}

/// Whether a SIGHUP re-executes this process: not in a cluster worker (its primary replaces
/// workers), nor when the binary to execute is not there (the process then keeps serving).
fn reexec_on_hangup(placement: &Placement, exe: &Path) -> bool {
    if placement.worker.is_some() {
        tracing::debug!("SIGHUP ignored: the cluster primary replaces workers on reload");
        false
    } else if let Err(error) = exe.metadata() {
        tracing::error!(exe = %exe.display(), %error, "SIGHUP: cannot re-execute; still serving");
        false
    } else {
        true
    }
}

/// A worker whose primary is gone closes the listener at once and gives requests in flight only
/// [`orphan::GRACE`] (under the hard deadline).
async fn leave_orphaned(app: &AppState, stop: watch::Sender<bool>, server: Server) {
    tracing::warn!(grace = ?orphan::GRACE, "the cluster primary is gone: closing the listener and exiting");
    if let Some(dir) = &app.placement.primary_runtime_dir {
        orphan::remove_primary_dir(dir);
    }
    let _ = stop.send(true);
    let _ = tokio::time::timeout(orphan::GRACE, server).await;
}

/// Stops accepting and waits for the connections open (at most --drain-timeout, which the accept
/// loop enforces).
async fn drain(app: &AppState, stop: watch::Sender<bool>, server: Server) {
    tracing::info!(timeout = ?app.config.drain_timeout, "draining");
    let _ = stop.send(true);
    let cut = server.await.unwrap_or(0);
    if cut > 0 {
        tracing::warn!(connections = cut, "drain timeout reached; closing connections still open");
    } else {
        tracing::info!("drained");
    }
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
