//! What every request handler of one process can see: its configuration, its place in the
//! deployment, and the shared limits.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;

use crate::config::{Config, Mode};
use crate::domain::chat::Hub;
use crate::domain::todos::{self, TodoStore};
use crate::infra::metrics::Metrics;
use crate::infra::redis::RedisLink;

/// How long a health check may wait for the store.
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Where this serving process stands in the deployment.
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    pub(crate) mode: Mode,
    /// Index among the cluster's workers; `None` in fork mode.
    pub(crate) worker: Option<u16>,
    /// Processes serving this socket: 1 in fork mode.
    pub(crate) workers: u16,
    pub(crate) instance: Option<String>,
    pub(crate) local_addr: SocketAddr,
    pub(crate) listener_source: Source,
    /// A cluster worker's primary's private directory, where the workers take each other's
    /// forwarded Socket.IO requests; `None` in fork mode.
    pub(crate) primary_runtime_dir: Option<PathBuf>,
}

/// Where this process's listening socket came from (`process::listener` takes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Passed in with `LISTEN_FDS` (systemd, systemfd, systemd-socket-activate, our cluster primary,
    /// or this process before it re-executed itself).
    Inherited,
    /// Bound by this process from `--host`/`--port`.
    Bound,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Inherited => "inherited (LISTEN_FDS)",
            Source::Bound => "bound by this process",
        })
    }
}

pub struct AppState {
    pub(crate) config: Config,
    pub(crate) placement: Placement,
    pub(crate) started: Instant,
    /// One permit per /api/randoms computation allowed to run at once.
    pub(crate) randoms_slots: Arc<Semaphore>,
    /// This process's counters (in cluster mode, its block of the instance's shared ones).
    pub(crate) metrics: Metrics,
    pub(crate) todos: Arc<dyn TodoStore>,
    pub(crate) chat: Arc<Hub>,
}

impl AppState {
    /// Opens the todo store and starts the chat relay; must run inside the serving runtime.
    /// `metrics` counts for this process; `bus` is a cluster worker's end of its primary's chat bus.
    pub(crate) fn new(
        config: Config,
        placement: Placement,
        metrics: Metrics,
        bus: Option<OwnedFd>,
    ) -> Result<Self, String> {
        let randoms_slots = Arc::new(Semaphore::new(config.randoms_concurrency.into()));
        let redis = config.redis_url.as_deref().map(RedisLink::new).transpose();
        let redis = redis.map_err(|error| error.to_string())?.map(Arc::new);
        let todos = todos::open(&config, redis.as_ref(), &metrics).map_err(|error| error.to_string())?;
        let chat = Arc::new(Hub::new(&config, metrics.clone(), redis, bus));
        Ok(AppState { config, placement, started: Instant::now(), randoms_slots, metrics, todos, chat })
    }

    /// One fork-mode process on `config` listening on `local_addr`, as in-process tests run it.
    pub fn fork_mode(config: Config, local_addr: SocketAddr) -> Result<Self, String> {
        let placement = Placement {
            mode: Mode::Fork,
            worker: None,
            workers: 1,
            instance: None,
            local_addr,
            listener_source: Source::Bound,
            primary_runtime_dir: None,
        };
        AppState::new(config, placement, Metrics::private(), None)
    }

    /// Whether this process can serve: what `/healthz` answers. It asks the todo store.
    pub(crate) async fn health(&self) -> Result<(), String> {
        within_timeout(self.todos.check()).await
    }

    /// Whether this process should keep running: what the watchdog pings on. Only local parts count,
    /// since restarting cannot bring back a Redis that is away.
    pub(crate) async fn liveness(&self) -> Result<(), String> {
        within_timeout(self.todos.check_local()).await
    }

    /// The client's address: the peer's own, or the nearest untrusted hop of `X-Forwarded-For` when
    /// the peer is a trusted proxy (so a client cannot forge its address by sending the header).
    pub(crate) fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let trusted = |ip: &IpAddr| self.config.trusted_proxies.iter().any(|net| net.contains(ip));
        if !trusted(&peer) {
            return peer;
        }
        let hops = forwarded_for.unwrap_or("").split(',').rev().map(str::trim);
        let mut client = peer;
        for hop in hops {
            match hop.parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !trusted(&ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
    }
}

async fn within_timeout(check: impl std::future::Future<Output = todos::Result<()>>) -> Result<(), String> {
    match tokio::time::timeout(HEALTH_TIMEOUT, check).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(problem)) => Err(problem.to_string()),
        Err(_) => Err(format!("the todo store did not answer within {HEALTH_TIMEOUT:?}")),
    }
}
