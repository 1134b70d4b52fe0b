//! Where todos live. Handlers see only [`TodoStore`]; the engine behind it is SQLite (every process
//! of one host) or Redis (every host), chosen by `--todos-store`.

mod redis;
mod sqlite;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use crate::config::{Config, StoreKind};
use crate::infra::metrics::Metrics;
use crate::infra::redis::RedisLink;

pub(crate) use self::redis::RedisStore;
pub(crate) use self::sqlite::SqliteStore;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Todo {
    pub(crate) id: i64,
    pub(crate) title: String,
    pub(crate) completed: bool,
    /// Milliseconds since the Unix epoch.
    pub(crate) created_ms: i64,
    pub(crate) updated_ms: i64,
}

impl Todo {
    /// A todo as created (and as its creation was answered): not completed, never updated.
    fn fresh(id: i64, title: String, created_ms: i64) -> Todo {
        Todo { id, title, completed: false, created_ms, updated_ms: created_ms }
    }

    pub(crate) fn to_json(&self) -> Value {
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
pub(crate) struct Changes {
    pub(crate) title: Option<String>,
    pub(crate) completed: Option<bool>,
}

/// The `Idempotency-Key` of a creation: a retry with the same key gets the first creation's
/// answer, never a second todo. Stores check and record it in the same atomic step as the insert,
/// so a retry after an unanswered write (a 503 on a timeout) cannot make a duplicate.
#[derive(Debug, Clone)]
pub(crate) struct IdempotencyKey(pub String);

/// How long keys are kept and how many at most (`--idempotency-retention`, `--idempotency-keys`):
/// the oldest go first, so the storage stays bounded whatever clients send.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyPolicy {
    pub(crate) retention: Duration,
    pub(crate) max_keys: u32,
}

impl KeyPolicy {
    fn retention_ms(&self) -> i64 {
        self.retention.as_millis().min(i64::MAX as u128) as i64
    }
}

/// How many Redis replicas must confirm a write before it is answered, and how long to wait for
/// them (`--todos-wait-replicas`, `--todos-wait-timeout`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Confirmations {
    pub(crate) replicas: u32,
    pub(crate) timeout: Duration,
}

/// What a creation did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Created {
    /// A new todo.
    New(Todo),
    /// The key was seen before with the same title: the todo it created, as it was answered then.
    Replayed(Todo),
    /// The key was seen before with another title: nothing created.
    KeyReused,
}

impl Created {
    /// The answer to a key seen before: `first` (the todo as first created) if `title` is the
    /// one it was created with.
    fn again(first: Todo, title: &str) -> Created {
        if first.title == title {
            Created::Replayed(first)
        } else {
            Created::KeyReused
        }
    }
}

/// One page of todos, newest first, and how many there are in all.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) items: Vec<Todo>,
    pub(crate) total: u64,
}

/// Why the store could not be opened at start (an operation's failure is an [`Unavailable`]).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// At start: the data directory or the SQLite file could not be made ready.
    #[error("cannot open the todo store in {}: {source}", dir.display())]
    Open { dir: PathBuf, source: OpenError },
    #[error("--todos-store redis needs --redis-url")]
    NeedsRedisUrl,
}

/// Why the store could not answer one operation (file locked too long, Redis away): the request
/// gets a 503 with Retry-After, never a false 201.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unavailable {
    /// SQLite refused or failed (busy beyond --sqlite-busy-timeout, disk full, I/O error). Shared:
    /// a rolled-back batch answers every write in it with the same error.
    #[error("the todo store failed: {0}")]
    Sqlite(Arc<rusqlite::Error>),
    /// A read on the blocking pool panicked or was cancelled by the runtime's shutdown.
    #[error("the read did not finish: {0}")]
    ReadLost(#[from] tokio::task::JoinError),
    /// This process's SQLite writer thread is gone (it panicked).
    #[error("the SQLite writer has stopped")]
    WriterStopped,
    #[error("the insert returned no row")]
    NoRow,
    #[error("the todo store (redis) failed: {0}")]
    Redis(#[source] ::redis::RedisError),
    /// The connection broke after the command was sent: it may have been applied.
    #[error(
        "the todo store (redis) did not answer ({0}): a write may still be applied; \
         retry it with the same Idempotency-Key to be sure it is applied once"
    )]
    RedisOutcomeUnknown(#[source] ::redis::RedisError),
    /// --todos-wait-replicas: fewer replicas than required confirmed the write in time.
    #[error(
        "the todo store (redis) made the write, but {confirmed} of the {required} \
         replicas required confirmed it within {timeout:?}: a fail-over could lose it; retry \
         it (a creation with the same Idempotency-Key) to be sure it is kept, and applied once"
    )]
    NotConfirmed { confirmed: u32, required: u32, timeout: Duration },
}

impl From<rusqlite::Error> for Unavailable {
    fn from(error: rusqlite::Error) -> Unavailable {
        Unavailable::Sqlite(Arc::new(error))
    }
}

/// What stopped the SQLite store from opening (inside [`Error::Open`]).
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    /// The data directory or the writers' lock file, or the writer thread.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// The file would not switch to WAL (SQLite answers with the mode it kept).
    #[error("Invalid parameter name: journal_mode is {0}, not wal")]
    NotWal(String),
}

/// What a store operation gives: its value, or why the store could not answer (a 503). The
/// start-up errors of [`Error`] cannot come from an operation.
pub(crate) type Result<T> = std::result::Result<T, Unavailable>;

/// The todo operations the handlers need. Futures are boxed so the trait can be a trait object.
pub(crate) trait TodoStore: Send + Sync {
    fn list(&self, limit: u32, offset: u64) -> BoxFuture<'_, Result<Page>>;
    /// Returns once the new todo is durable. With a key seen before (and still remembered),
    /// creates nothing and says what the key did.
    fn create(&self, title: String, key: Option<IdempotencyKey>) -> BoxFuture<'_, Result<Created>>;
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
pub(crate) fn open(
    config: &Config,
    redis: Option<&Arc<RedisLink>>,
    metrics: &Metrics,
) -> std::result::Result<Arc<dyn TodoStore>, Error> {
    let keys = KeyPolicy { retention: config.idempotency_retention, max_keys: config.idempotency_keys };
    match (config.todos_store, redis) {
        (StoreKind::Redis, Some(link)) => {
            let confirmations =
                Confirmations { replicas: config.todos_wait_replicas, timeout: config.todos_wait_timeout };
            Ok(Arc::new(RedisStore::new(link.clone(), keys, confirmations)))
        }
        (StoreKind::Redis, None) => Err(Error::NeedsRedisUrl),
        (StoreKind::Sqlite, _) => {
            let dir = config.data_dir();
            let store = SqliteStore::open(&dir, config.sqlite_busy_timeout, keys, metrics.clone())
                .map_err(|source| Error::Open { dir, source })?;
            Ok(Arc::new(store))
        }
    }
}

pub(crate) use crate::infra::clock::now_ms;

fn rfc3339(ms: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}
