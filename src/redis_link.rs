//! The process's way to Redis (`--redis-url`): one multiplexed connection for commands, connected
//! on first use rather than at start (the server starts and serves while Redis is away) and
//! reconnected by `redis`'s ConnectionManager after a failure.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError};
use tokio::sync::Mutex;

/// A command or a connection attempt that takes longer fails, so a request never hangs on Redis.
pub const TIMEOUT: Duration = Duration::from_secs(2);

pub struct RedisLink {
    client: Client,
    manager: Mutex<Option<ConnectionManager>>,
}

impl RedisLink {
    /// Checks the URL only; nothing is connected yet.
    pub fn new(url: &str) -> Result<RedisLink, String> {
        let client = Client::open(url).map_err(|error| format!("--redis-url: {error}"))?;
        Ok(RedisLink { client, manager: Mutex::new(None) })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A handle on the shared connection (cheap to clone), connecting first if need be.
    pub async fn connection(&self) -> Result<ConnectionManager, RedisError> {
        let mut manager = self.manager.lock().await;
        if let Some(connected) = manager.as_ref() {
            return Ok(connected.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(TIMEOUT)
            .set_response_timeout(TIMEOUT)
            .set_number_of_retries(1)
            .set_max_delay(1000);
        let connected = self.client.get_connection_manager_with_config(config).await?;
        *manager = Some(connected.clone());
        Ok(connected)
    }

    /// The address without its password, for logs.
    pub fn describe(&self) -> String {
        let info = self.client.get_connection_info();
        format!("{} db {}", info.addr, info.redis.db)
    }
}
