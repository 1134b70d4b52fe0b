//! The process's way to Redis (`--redis-url`): one multiplexed connection for commands, connected
//! on first use rather than at start (the server starts and serves while Redis is away) and
//! reconnected by `redis`'s ConnectionManager after a failure.

use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::io::tcp::socket2::TcpKeepalive;
use redis::io::tcp::TcpSettings;
use redis::{Client, RedisError};
use tokio::sync::Mutex;

/// A command or a connection attempt that takes longer fails, so a request never hangs on Redis.
pub const TIMEOUT: Duration = Duration::from_secs(2);
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

pub struct RedisLink {
    client: Client,
    manager: Mutex<Manager>,
}

#[derive(Default)]
struct Manager {
    connected: Option<ConnectionManager>,
    failed_at: Option<Instant>,
}

impl RedisLink {
    /// Checks the URL only; nothing is connected yet.
    pub fn new(url: &str) -> Result<RedisLink, String> {
        let client = Client::open(url).map_err(|error| format!("--redis-url: {error}"))?;
        Ok(RedisLink { client, manager: Mutex::default() })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A handle on the shared connection (cheap to clone), connecting first if need be.
    pub async fn connection(&self) -> Result<ConnectionManager, RedisError> {
        let mut manager = self.manager.lock().await;
        if let Some(connected) = manager.connected.as_ref() {
            return Ok(connected.clone());
        }
        if manager.failed_at.is_some_and(|at| at.elapsed() < RETRY_AFTER) {
            return Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "redis was unreachable a moment ago",
            )));
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(TIMEOUT)
            .set_response_timeout(TIMEOUT)
            .set_tcp_settings(tcp_settings())
            .set_number_of_retries(1)
            .set_max_delay(1000);
        match self.client.get_connection_manager_with_config(config).await {
            Ok(connected) => {
                manager.connected = Some(connected.clone());
                Ok(connected)
            }
            Err(error) => {
                manager.failed_at = Some(Instant::now());
                Err(error)
            }
        }
    }

    /// The address without its password, for logs.
    pub fn describe(&self) -> String {
        let info = self.client.get_connection_info();
        format!("{} db {}", info.addr, info.redis.db)
    }
}

/// Whether a command that failed with `error` may still be carried out by Redis: it was sent but
/// no answer came (a timeout: Redis frozen or slow; or the connection broke while waiting), as
/// opposed to never sent (no connection). The client is told which: "not done" invites a plain
/// retry, "unknown" one that cannot do it twice.
pub fn outcome_unknown(error: &RedisError) -> bool {
    error.is_timeout() || error.is_connection_dropped()
}
