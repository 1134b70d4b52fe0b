//! The process's way to Redis (`--redis-url`): one multiplexed connection for commands, connected
//! on first use rather than at start (the server starts and serves while Redis is away).
//!
//! Two kinds of target. A plain URL (`redis://`, `unix://`) names one server, and `redis`'s
//! ConnectionManager reconnects to it after a failure. A Sentinel URL (`redis+sentinel://`, see
//! [`sentinel`]) names a master by name: every connection starts by asking the sentinels where the
//! master is and checking with ROLE that the server is one, and any sign that it no longer is
//! (the connection lost or timed out, READONLY) drops the connection, so the next command asks the
//! sentinels again and reaches the promoted replica. There the connection is a plain multiplexed
//! one, because a ConnectionManager would quietly reconnect to the old address.

mod sentinel;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::io::tcp::socket2::TcpKeepalive;
use redis::io::tcp::TcpSettings;
use redis::{
    AsyncConnectionConfig, Client, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value,
};
use tokio::sync::Mutex;

use sentinel::Sentinels;
pub(crate) use sentinel::UrlError;

/// Why a `--redis-url` cannot be used; found before anything connects.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// redis-rs refused the URL of a single server.
    #[error("--redis-url: {0}")]
    Url(RedisError),
    /// A `redis+sentinel://` URL that does not say what it must.
    #[error("--redis-url: {0}")]
    Sentinel(#[from] UrlError),
}

/// A command or a connection attempt that takes longer fails, so a request never hangs on Redis.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed first connection, requests fail at once for this long instead of each waiting
/// for its own attempt in turn.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// TCP keepalive on the command connection: an idle connection to a host that vanished (no FIN, no
/// RST) is found dead after 5 s of silence and 3 unanswered probes 2 s apart, and one with unsent or
/// unacknowledged data after 10 s (TCP_USER_TIMEOUT), instead of Linux's two hours. A frozen but
/// reachable Redis still acknowledges at the TCP level: the command timeout covers that. (The chat
/// relay's subscription, for which redis-rs takes no TCP settings, has its own ping deadline.)
fn tcp_settings() -> TcpSettings {
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(5))
        .with_interval(Duration::from_secs(2))
        .with_retries(3);
    TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive)
        .set_user_timeout(Duration::from_secs(10))
}

pub(crate) struct RedisLink {
    target: Target,
    manager: Mutex<Manager>,
    /// Connections of this generation and older are no longer to be used (Sentinel only).
    dropped: Arc<AtomicU64>,
}

enum Target {
    /// One server: the URL's.
    Server(Client),
    /// Whichever server the sentinels name master.
    Sentinels(Sentinels),
}

#[derive(Default)]
struct Manager {
    connected: Option<Connected>,
    failed_at: Option<Instant>,
    /// Counts connections made, so that dropping one never drops its successor.
    generation: u64,
}

#[derive(Clone)]
struct Connected {
    commands: Commands,
    /// The server it reached (for the chat relay's subscription: the same master).
    client: Client,
    generation: u64,
}

#[derive(Clone)]
enum Commands {
    Managed(ConnectionManager),
    Followed(MultiplexedConnection),
}

impl RedisLink {
    /// Checks the URL only; nothing is connected yet.
    pub(crate) fn new(url: &str) -> Result<RedisLink, Error> {
        let target = match Sentinels::parse(url)? {
            Some(sentinels) => Target::Sentinels(sentinels),
            None => Target::Server(Client::open(url).map_err(Error::Url)?),
        };
        Ok(RedisLink { target, manager: Mutex::default(), dropped: Arc::default() })
    }

    /// A handle on the shared connection (cheap to clone), connecting first if need be.
    pub(crate) async fn connection(&self) -> Result<Connection, RedisError> {
        let connected = self.connected().await?;
        let follows = matches!(self.target, Target::Sentinels(_));
        let drop_on_failure = follows.then(|| (self.dropped.clone(), connected.generation));
        Ok(Connection { commands: connected.commands, drop_on_failure })
    }

    /// A subscription connection to the same server as the commands (with Sentinel: the master).
    pub(crate) async fn pubsub(&self) -> RedisResult<redis::aio::PubSub> {
        let connected = match &self.target {
            Target::Server(client) => return client.get_async_pubsub().await,
            Target::Sentinels(_) => self.connected().await?,
        };
        let pubsub = connected.client.get_async_pubsub().await;
        if let Err(error) = &pubsub {
            drop_connection(&self.dropped, connected.generation, error);
        }
        pubsub
    }

    /// Returns when the sentinels announce a new master; never for a plain URL. The chat relay
    /// waiting to resubscribe takes it as the moment to try, and so may everyone: a failure to
    /// reach the old master no longer holds back the next attempt.
    pub(crate) async fn master_switched(&self) {
        match &self.target {
            Target::Server(_) => std::future::pending().await,
            Target::Sentinels(sentinels) => sentinels.switched().await,
        }
        self.manager.lock().await.failed_at = None;
    }

    async fn connected(&self) -> RedisResult<Connected> {
        let mut manager = self.manager.lock().await;
        if let Some(connected) = manager.connected.take() {
            if connected.generation > self.dropped.load(Ordering::Acquire) {
                manager.connected = Some(connected.clone());
                return Ok(connected);
            }
        }
        if manager.failed_at.is_some_and(|at| at.elapsed() < RETRY_AFTER) {
            return Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "redis was unreachable a moment ago",
            )));
        }
        match self.connect().await {
            Ok((client, commands)) => {
                manager.generation += 1;
                let connected = Connected { commands, client, generation: manager.generation };
                manager.connected = Some(connected.clone());
                Ok(connected)
            }
            Err(error) => {
                manager.failed_at = Some(Instant::now());
                Err(error)
            }
        }
    }

    async fn connect(&self) -> RedisResult<(Client, Commands)> {
        match &self.target {
            Target::Server(client) => connect_server(client).await,
            Target::Sentinels(sentinels) => connect_master(sentinels).await,
        }
    }

    /// The address without its password, for logs.
    pub(crate) fn describe(&self) -> String {
        match &self.target {
            Target::Server(client) => {
                let info = client.get_connection_info();
                format!("{} db {}", info.addr, info.redis.db)
            }
            Target::Sentinels(sentinels) => sentinels.describe(),
        }
    }
}

/// A plain URL's connection: a ConnectionManager, which reconnects to the same server by itself.
async fn connect_server(client: &Client) -> RedisResult<(Client, Commands)> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(TIMEOUT)
        .set_response_timeout(TIMEOUT)
        .set_tcp_settings(tcp_settings())
        .set_number_of_retries(1)
        .set_max_delay(1000);
    let manager = client.get_connection_manager_with_config(config).await?;
    Ok((client.clone(), Commands::Managed(manager)))
}

/// A connection to the server the sentinels name master, once ROLE confirms it is one (a
/// sentinel may lag behind a fail-over).
async fn connect_master(sentinels: &Sentinels) -> RedisResult<(Client, Commands)> {
    let client = Client::open(sentinels.master().await?)?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(TIMEOUT)
        .set_response_timeout(TIMEOUT)
        .set_tcp_settings(tcp_settings());
    let mut commands = client.get_multiplexed_async_connection_with_config(&config).await?;
    let addr = &client.get_connection_info().addr;
    match redis::cmd("ROLE").query_async::<redis::Role>(&mut commands).await? {
        redis::Role::Primary { .. } => {
            tracing::info!(master = %addr, "redis master found through the sentinels");
            Ok((client, Commands::Followed(commands)))
        }
        role => Err(RedisError::from((
            ErrorKind::ReadOnly,
            "the server the sentinels named is not a master (a fail-over in progress?)",
            format!("{addr}: {role:?}"),
        ))),
    }
}

/// The command connection as the store and the relay use it: with Sentinel, a failure that says
/// the server is gone or no longer the master drops it for everyone, so the next command asks the
/// sentinels again.
pub(crate) struct Connection {
    commands: Commands,
    drop_on_failure: Option<(Arc<AtomicU64>, u64)>,
}

impl Connection {
    fn judged<T>(&self, result: RedisResult<T>) -> RedisResult<T> {
        if let (Err(error), Some((dropped, generation))) = (&result, &self.drop_on_failure) {
            if no_longer_the_master(error) {
                drop_connection(dropped, *generation, error);
            }
        }
        result
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let result = match &mut self.commands {
                Commands::Managed(commands) => commands.req_packed_command(cmd).await,
                Commands::Followed(commands) => commands.req_packed_command(cmd).await,
            };
            self.judged(result)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let result = match &mut self.commands {
                Commands::Managed(commands) => commands.req_packed_commands(cmd, offset, count).await,
                Commands::Followed(commands) => commands.req_packed_commands(cmd, offset, count).await,
            };
            self.judged(result)
        })
    }

    fn get_db(&self) -> i64 {
        match &self.commands {
            Commands::Managed(commands) => commands.get_db(),
            Commands::Followed(commands) => commands.get_db(),
        }
    }
}

/// Whether `error` means this connection may no longer reach the master: lost, timed out, refused,
/// or answered by a server that is now a replica (READONLY; UNBLOCKED: a WAIT cut short by the
/// change; MASTERDOWN: a replica that lost its master).
fn no_longer_the_master(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.kind() == ErrorKind::ReadOnly
        || matches!(error.code(), Some("UNBLOCKED" | "MASTERDOWN" | "LOADING"))
}

/// Marks the connection of `generation` (and older ones) as not to be used again.
fn drop_connection(dropped: &AtomicU64, generation: u64, why: &RedisError) {
    if dropped.fetch_max(generation, Ordering::AcqRel) < generation {
        tracing::warn!(error = %why, "redis master connection dropped; asking the sentinels again");
    }
}

/// Whether a command that failed with `error` may still be carried out by Redis: it was sent but
/// no answer came (a timeout: Redis frozen or slow; or the connection broke while waiting), as
/// opposed to never sent (no connection). The client is told which: "not done" invites a plain
/// retry, "unknown" one that cannot do it twice.
pub(crate) fn outcome_unknown(error: &RedisError) -> bool {
    error.is_timeout() || error.is_connection_dropped()
}
