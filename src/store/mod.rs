//! Where todos live. Handlers see only [`TodoStore`]; the engine behind it is SQLite (every process
//! of one host) or Redis (every host), chosen by `--todos-store`.

mod redis;
mod sqlite;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use crate::config::{Config, StoreKind};
use crate::metrics::Metrics;
use crate::redis_link::RedisLink;

pub use self::redis::RedisStore;
pub use self::sqlite::SqliteStore;

#[derive(Debug, Clone, PartialEq)]
pub struct Todo {
    pub id: i64,
    pub title: String,
    pub completed: bool,
    /// Milliseconds since the Unix epoch.
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl Todo {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "title": self.title,
            "completed": self.completed,
            "created_at": rfc3339(self.created_ms),
            "updated_at": rfc3339(self.updated_ms),
        })
    }
}

/// What a PATCH changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub title: Option<String>,
    pub completed: Option<bool>,
}

/// One page of todos, newest first, and how many there are in all.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Todo>,
    pub total: u64,
}

/// The store could not answer (file locked too long, Redis away): the request gets a 503, never a
/// false 201.
#[derive(Debug)]
pub struct Unavailable(pub String);

pub type Result<T> = std::result::Result<T, Unavailable>;

/// The todo operations the handlers need. Futures are boxed so the trait can be a trait object.
pub trait TodoStore: Send + Sync {
    fn list(&self, limit: u32, offset: u64) -> BoxFuture<'_, Result<Page>>;
    /// Returns once the new todo is durable.
    fn create(&self, title: String) -> BoxFuture<'_, Result<Todo>>;
    fn get(&self, id: i64) -> BoxFuture<'_, Result<Option<Todo>>>;
    fn update(&self, id: i64, changes: Changes) -> BoxFuture<'_, Result<Option<Todo>>>;
    /// Whether there was such a todo.
    fn delete(&self, id: i64) -> BoxFuture<'_, Result<bool>>;
    /// Whether the store answers at all (for /healthz).
    fn check(&self) -> BoxFuture<'_, Result<()>>;
    /// Whether the store's local part works (for the watchdog: a remote store being away is no
    /// reason to restart this process).
    fn check_local(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    /// For the start-up log line.
    fn describe(&self) -> String;
}

/// Opens the store `--todos-store` names.
pub fn open(
    config: &Config,
    redis: Option<&Arc<RedisLink>>,
    metrics: &Metrics,
) -> std::result::Result<Arc<dyn TodoStore>, String> {
    match (config.todos_store, redis) {
        (StoreKind::Redis, Some(link)) => Ok(Arc::new(RedisStore::new(link.clone()))),
        (StoreKind::Redis, None) => Err("--todos-store redis needs --redis-url".into()),
        (StoreKind::Sqlite, _) => {
            let store = SqliteStore::open(&config.data_dir(), config.sqlite_busy_timeout, metrics.clone())
                .map_err(|error| {
                    format!("cannot open the todo store in {}: {error}", config.data_dir().display())
                })?;
            Ok(Arc::new(store))
        }
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn rfc3339(ms: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}
