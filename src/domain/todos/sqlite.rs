//! The SQLite engine: one file in the data directory, shared by every worker and every instance of
//! the host (SQLite's own file locks serialise writers across processes).
//!
//! Durability: WAL with `synchronous=FULL`, so a commit returns only after the WAL is fsynced; the
//! 201 is sent after the commit, so neither a `kill -9` (which NORMAL would survive too: the WAL
//! write is in the page cache) nor a power cut loses an acknowledged todo. What makes that fast is
//! group commit: one writer thread per process takes every write waiting in its queue and commits
//! them in one transaction, one fsync for the lot.
//!
//! What keeps the tail short with several processes on one file: their writers take turns through
//! a lock file (`flock`, woken by the kernel the moment the holder lets go) instead of meeting in
//! SQLite's busy handler, which sleeps 1, 2, 5, 10... ms between tries and so made a p99 of tens of
//! milliseconds; and the WAL is checkpointed after the batch is answered, not inside a commit, and
//! only once it holds CHECKPOINT_FRAMES pages, by whichever writer's commit took it there (SQLite's
//! wal hook tells each commit the WAL's length): the writers of the host make one checkpoint (its
//! fsyncs, the turn held) per that many pages written, however many processes share the file.
//!
//! The file is made ready (WAL mode, tables) before the process reports READY=1: that costs 0.5 ms
//! on an existing file (4.8 against 4.3 ms from start to first answer, `bench/cold-start.sh`),
//! and keeps READY meaning that the store works, with a bad file failing the start, not a request.

use std::cell::Cell;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};
use tokio::sync::oneshot;

use super::{
    now_ms, Changes, Created, IdempotencyKey, KeyPolicy, OpenError, Page, Result, Todo, TodoStore,
    Unavailable,
};
use crate::infra::metrics::Metrics;

const FILE_NAME: &str = "todos.sqlite3";
/// Beside the database: the writers' turn (see `WriterTurn`).
const LOCK_FILE_NAME: &str = "todos.sqlite3-writer.lock";
/// The WAL's length in pages (frames) from which the writer whose commit reached it checkpoints
/// the WAL back into the database (SQLite's own wal_autocheckpoint default): about 4 MB of WAL.
/// Appended todos touch few distinct pages, so each checkpoint writes few and costs its fsyncs.
const CHECKPOINT_FRAMES: i32 = 1000;
/// The shortest time between two checkpoints of one writer: when a reader's old snapshot keeps a
/// checkpoint from completing, the WAL stays long, and each batch must not start another.
const CHECKPOINT_PAUSE: Duration = Duration::from_millis(100);
/// Writes committed in one transaction at most: bounds how long one commit holds the file lock.
const MAX_BATCH: usize = 512;
/// Read connections kept open for reuse.
const MAX_IDLE_READERS: usize = 4;

pub(crate) struct SqliteStore {
    path: std::path::PathBuf,
    busy_timeout: Duration,
    writes: mpsc::Sender<Write>,
    readers: Arc<Mutex<Vec<Connection>>>,
}

/// The result of one write, as its requester gets it.
type Reply<T> = oneshot::Sender<std::result::Result<T, Unavailable>>;

enum Write {
    Create { title: String, key: Option<IdempotencyKey>, reply: Reply<Created> },
    Update { id: i64, changes: Changes, reply: Reply<Option<Todo>> },
    Delete { id: i64, reply: Reply<bool> },
}

impl SqliteStore {
    pub(crate) fn open(
        dir: &Path,
        busy_timeout: Duration,
        keys: KeyPolicy,
        metrics: Metrics,
    ) -> std::result::Result<SqliteStore, OpenError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        let turn = WriterTurn::open(&dir.join(LOCK_FILE_NAME))?;
        let (writes, queue) = mpsc::channel();
        let writer = prepare(&path, busy_timeout)?;
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(writer, turn, queue, keys, metrics))?;
        Ok(SqliteStore { path, busy_timeout, writes, readers: Arc::default() })
    }

    /// Runs `read` on a pooled read connection on the blocking pool (WAL readers never wait for writers).
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let (path, busy_timeout, readers) = (self.path.clone(), self.busy_timeout, self.readers.clone());
        let outcome = tokio::task::spawn_blocking(move || {
            let pooled = readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let connection = match pooled {
                Some(connection) => connection,
                None => connect(&path, busy_timeout)?,
            };
            let result = read(&connection);
            let mut idle = readers.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE_READERS {
                idle.push(connection);
            }
            result
        })
        .await;
        match outcome {
            Ok(result) => result.map_err(unavailable),
            Err(join) => Err(Unavailable::ReadLost(join)),
        }
    }

    async fn write<T>(
        &self,
        write: Write,
        reply: oneshot::Receiver<std::result::Result<T, Unavailable>>,
    ) -> Result<T> {
        self.writes.send(write).map_err(|_| Unavailable::WriterStopped)?;
        reply.await.unwrap_or(Err(Unavailable::WriterStopped))
    }
}

impl TodoStore for SqliteStore {
    fn list(&self, limit: u32, offset: u64) -> BoxFuture<'_, Result<Page>> {
        Box::pin(self.read(move |db| {
            let total: i64 = db.query_row("SELECT count(*) FROM todos", [], |row| row.get(0))?;
            let mut statement = db.prepare_cached(
                "SELECT id, title, completed, created_at, updated_at FROM todos ORDER BY id DESC LIMIT ?1 OFFSET ?2",
            )?;
            let items = statement
                .query_map(params![limit, offset.min(i64::MAX as u64) as i64], todo_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Page { items, total: total as u64 })
        }))
    }

    fn create(&self, title: String, key: Option<IdempotencyKey>) -> BoxFuture<'_, Result<Created>> {
        let (reply, answer) = oneshot::channel();
        Box::pin(self.write(Write::Create { title, key, reply }, answer))
    }

    fn get(&self, id: i64) -> BoxFuture<'_, Result<Option<Todo>>> {
        Box::pin(self.read(move |db| select(db, id)))
    }

    fn update(&self, id: i64, changes: Changes) -> BoxFuture<'_, Result<Option<Todo>>> {
        let (reply, answer) = oneshot::channel();
        Box::pin(self.write(Write::Update { id, changes, reply }, answer))
    }

    fn delete(&self, id: i64) -> BoxFuture<'_, Result<bool>> {
        let (reply, answer) = oneshot::channel();
        Box::pin(self.write(Write::Delete { id, reply }, answer))
    }

    fn check(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.read(|db| db.query_row("SELECT count(*) FROM todos WHERE id = 0", [], |_| Ok(()))))
    }

    fn check_local(&self) -> BoxFuture<'_, Result<()>> {
        self.check()
    }

    fn describe(&self) -> String {
        format!("sqlite {}", self.path.display())
    }
}

/// The writer's connection, with the file in WAL mode and the table made. Processes starting
/// together race for the same fresh file, and some of those steps can answer SQLITE_BUSY without
/// waiting on busy_timeout: they are retried for up to that long.
fn prepare(path: &Path, busy_timeout: Duration) -> std::result::Result<Connection, OpenError> {
    let deadline = std::time::Instant::now() + busy_timeout;
    loop {
        let attempt = connect(path, busy_timeout).map_err(OpenError::from).and_then(|db| {
            // Switching to WAL takes a lock another starting process may hold: busy_timeout
            // covers it. The mode is kept in the file, so read connections find it there.
            let mode: String = db.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(OpenError::NotWal(mode));
            }
            // The writer checkpoints itself, after answering (see `write_loop`), not in a commit.
            db.pragma_update(None, "wal_autocheckpoint", 0)?;
            create_schema(&db)?;
            Ok(db)
        });
        match attempt {
            Err(OpenError::Sqlite(rusqlite::Error::SqliteFailure(e, _)))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            done => return done,
        }
    }
}

/// A connection to the file, for the writer or a reader; `prepare` has made (or makes) it WAL.
fn connect(path: &Path, busy_timeout: Duration) -> rusqlite::Result<Connection> {
    let flags =
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let db = Connection::open_with_flags(path, flags)?;
    db.busy_timeout(busy_timeout)?;
    db.pragma_update(None, "synchronous", "FULL")?;
    Ok(db)
}

fn create_schema(db: &Connection) -> rusqlite::Result<()> {
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS todos (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             title TEXT NOT NULL,
             completed INTEGER NOT NULL DEFAULT 0,
             created_at INTEGER NOT NULL,
             updated_at INTEGER NOT NULL
         );
         -- Idempotency-Keys of creations: what each created, as it was answered. `seq` grows with
         -- every key, so the newest --idempotency-keys are one range of the primary key.
         CREATE TABLE IF NOT EXISTS idempotency_keys (
             seq INTEGER PRIMARY KEY AUTOINCREMENT,
             key TEXT NOT NULL UNIQUE,
             todo_id INTEGER NOT NULL,
             title TEXT NOT NULL,
             created_at INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS idempotency_keys_by_age ON idempotency_keys (created_at);",
    )
}

fn todo_from_row(row: &Row) -> rusqlite::Result<Todo> {
    Ok(Todo {
        id: row.get(0)?,
        title: row.get(1)?,
        completed: row.get(2)?,
        created_ms: row.get(3)?,
        updated_ms: row.get(4)?,
    })
}

fn select(db: &Connection, id: i64) -> rusqlite::Result<Option<Todo>> {
    db.prepare_cached("SELECT id, title, completed, created_at, updated_at FROM todos WHERE id = ?1")?
        .query_row([id], todo_from_row)
        .optional()
}

/// The writer thread: each round takes every queued write (up to MAX_BATCH), runs them in one
/// IMMEDIATE transaction in this process's turn and answers them only after the commit (and its
/// fsync), so an answer is never ahead of the disk. Then, once the WAL holds CHECKPOINT_FRAMES, it
/// copies the WAL into the database, in a turn of its own: the answers do not wait for it, and with
/// no writer between its pages it completes, so the next commit starts the WAL over.
fn write_loop(
    mut db: Connection,
    turn: WriterTurn,
    queue: mpsc::Receiver<Write>,
    keys: KeyPolicy,
    metrics: Metrics,
) {
    db.wal_hook(Some(note_wal_frames));
    let mut last_checkpoint = Instant::now();
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let committed = {
            let _turn = turn.take();
            commit_batch(&mut db, &batch, keys)
        };
        if committed.is_ok() {
            metrics.todos_committed(batch.len());
        }
        answer_batch(batch, committed);
        if WAL_FRAMES.get() >= CHECKPOINT_FRAMES && last_checkpoint.elapsed() >= CHECKPOINT_PAUSE {
            let _turn = turn.take();
            if let Err(error) = db.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(%error, "WAL checkpoint failed; the next one retries");
            }
            // Until the next commit says how long the WAL is (restarted, if this one completed).
            WAL_FRAMES.set(0);
            last_checkpoint = Instant::now();
        }
    }
}

thread_local! {
    /// The WAL's length in frames after this thread's last commit (SQLite's wal hook says it).
    static WAL_FRAMES: Cell<i32> = const { Cell::new(0) };
}

/// SQLite's wal hook: called in the committing thread after each commit, with the WAL's length.
fn note_wal_frames(_: &rusqlite::hooks::Wal, frames: std::os::raw::c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.set(frames);
    Ok(())
}

/// Answers every write of a batch: with its own result, or, when the transaction was rolled
/// back, with the batch's error (none of it is stored).
fn answer_batch(batch: Vec<Write>, committed: rusqlite::Result<Vec<rusqlite::Result<Done>>>) {
    match committed {
        Ok(results) => {
            for (write, result) in batch.into_iter().zip(results) {
                answer(write, result.map_err(unavailable));
            }
        }
        // Rolled back: none of the batch is acknowledged.
        Err(error) => {
            let error = Arc::new(error);
            tracing::warn!(%error, "todo store error");
            for write in batch {
                answer(write, Err(Unavailable::Sqlite(error.clone())));
            }
        }
    }
}

/// What one write produced inside the transaction.
enum Done {
    Created(Created),
    Todo(Option<Todo>),
    Deleted(bool),
}

fn commit_batch(
    db: &mut Connection,
    batch: &[Write],
    keys: KeyPolicy,
) -> rusqlite::Result<Vec<rusqlite::Result<Done>>> {
    let transaction = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let results = batch.iter().map(|write| apply(&transaction, write, keys)).collect();
    transaction.commit()?;
    Ok(results)
}

fn apply(db: &Connection, write: &Write, keys: KeyPolicy) -> rusqlite::Result<Done> {
    let now = now_ms();
    match write {
        Write::Create { title, key, .. } => {
            if let Some(key) = key {
                if let Some(first) = remembered(db, key, now, keys)? {
                    return Ok(Done::Created(Created::again(first, title)));
                }
            }
            db.prepare_cached(
                "INSERT INTO todos (title, completed, created_at, updated_at) VALUES (?1, 0, ?2, ?2)",
            )?
            .execute(params![title, now])?;
            let todo = Todo::fresh(db.last_insert_rowid(), title.clone(), now);
            if let Some(key) = key {
                remember(db, key, &todo, keys)?;
            }
            Ok(Done::Created(Created::New(todo)))
        }
        Write::Update { id, changes, .. } => {
            db.prepare_cached(
                "UPDATE todos SET title = coalesce(?2, title), completed = coalesce(?3, completed), updated_at = ?4
                 WHERE id = ?1",
            )?
            .execute(params![id, changes.title, changes.completed, now])?;
            Ok(Done::Todo(select(db, *id)?))
        }
        Write::Delete { id, .. } => {
            let deleted = db.prepare_cached("DELETE FROM todos WHERE id = ?1")?.execute([id])?;
            Ok(Done::Deleted(deleted > 0))
        }
    }
}

/// The todo `key` created (as first answered), if it is still remembered: keys older than the
/// retention are forgotten here first.
fn remembered(
    db: &Connection,
    key: &IdempotencyKey,
    now: i64,
    keys: KeyPolicy,
) -> rusqlite::Result<Option<Todo>> {
    db.prepare_cached("DELETE FROM idempotency_keys WHERE created_at < ?1")?
        .execute([now.saturating_sub(keys.retention_ms())])?;
    db.prepare_cached("SELECT todo_id, title, created_at FROM idempotency_keys WHERE key = ?1")?
        .query_row([&key.0], |row| Ok(Todo::fresh(row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()
}

/// Records that `key` created `todo`, and forgets the oldest keys beyond the bound.
fn remember(db: &Connection, key: &IdempotencyKey, todo: &Todo, keys: KeyPolicy) -> rusqlite::Result<()> {
    db.prepare_cached(
        "INSERT INTO idempotency_keys (key, todo_id, title, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![key.0, todo.id, todo.title, todo.created_ms])?;
    let newest = db.last_insert_rowid();
    db.prepare_cached("DELETE FROM idempotency_keys WHERE seq <= ?1")?
        .execute([newest - i64::from(keys.max_keys)])?;
    Ok(())
}

fn answer(write: Write, result: std::result::Result<Done, Unavailable>) {
    // A requester that went away meanwhile dropped its receiver: nothing to answer.
    match write {
        Write::Create { reply, .. } => {
            let _ = reply.send(result.and_then(|done| match done {
                Done::Created(created) => Ok(created),
                _ => Err(Unavailable::NoRow),
            }));
        }
        Write::Update { reply, .. } => {
            let _ = reply.send(result.map(|done| match done {
                Done::Todo(todo) => todo,
                Done::Created(_) | Done::Deleted(_) => None,
            }));
        }
        Write::Delete { reply, .. } => {
            let _ = reply.send(result.map(|done| matches!(done, Done::Deleted(true))));
        }
    }
}

/// The writers of every process on the host take turns to write: holding an exclusive `flock` on a
/// file beside the database. A process that finds the turn taken blocks in the kernel and is woken
/// when the holder lets go, so BEGIN IMMEDIATE never meets another of these writers and never
/// waits in SQLite's sleeping busy handler (which stays for anything else that writes the file).
struct WriterTurn(File);

/// One turn; the lock is let go when it is dropped (and by the kernel if the process dies).
struct Turn<'a>(&'a WriterTurn);

impl WriterTurn {
    fn open(path: &Path) -> std::io::Result<WriterTurn> {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map(WriterTurn)
    }

    /// Waits for the turn. If the lock cannot be taken (a file system without flock), the writer
    /// goes on without it: SQLite's own locks still keep the file correct, only slower to share.
    fn take(&self) -> Option<Turn<'_>> {
        loop {
            // SAFETY: flock on a descriptor this struct owns.
            if unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Some(Turn(self));
            }
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::Interrupted {
                tracing::warn!(%error, "cannot take the SQLite writers' lock; writing without it");
                return None;
            }
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        // SAFETY: as in `take`.
        unsafe { libc::flock(self.0 .0.as_raw_fd(), libc::LOCK_UN) };
    }
}

fn unavailable(error: rusqlite::Error) -> Unavailable {
    tracing::warn!(%error, "todo store error");
    Unavailable::from(error)
}
