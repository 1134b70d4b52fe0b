//! The Redis engine, for todos shared by every host: a hash per todo, a sorted set of ids for the
//! newest-first listing, a counter for ids. Each write is one Lua script, so it is atomic, and an
//! answer comes after Redis applied it. How durable that is is Redis's own setting: with
//! `appendonly yes` and `appendfsync always` a 201 survives a Redis crash; the usual `everysec`
//! may lose the last second. An `Idempotency-Key` is checked and recorded by the creating script
//! itself: a hash per key that expires after the retention, and a sorted set of keys by age that
//! bounds their number.
//!
//! Replication is Redis's too, and asynchronous: a master lost in a fail-over takes with it the
//! writes its replicas had not received yet. With `--todos-wait-replicas N` each write is followed,
//! in the same round trip on the same connection, by `WAIT N timeout`, and answered only once N
//! replicas have it; fewer in time is a 503 that says the write may be lost.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use redis::{AsyncCommands, FromRedisValue, Script, ScriptInvocation};

use super::{
    now_ms, Changes, Confirmations, Created, IdempotencyKey, KeyPolicy, Page, Result, Todo, TodoStore,
    Unavailable,
};
use crate::infra::redis::{outcome_unknown, Connection, RedisLink};

const IDS: &str = "app:todos";
const NEXT_ID: &str = "app:todos:next-id";
const ITEM: &str = "app:todo:";
const KEY_RECORD: &str = "app:todos:idempotency:";
const KEYS_BY_AGE: &str = "app:todos:idempotency-keys";

/// KEYS: next id, ids, item prefix, key record prefix, keys by age. ARGV: title, now (ms), key
/// ("" for none), retention (ms), most keys. Returns {id, title, created_at, replayed (0/1)}.
const CREATE: &str = r"
local key = ARGV[3]
if key ~= '' then
  local seen = redis.call('HMGET', KEYS[4] .. key, 'id', 'title', 'created_at')
  if seen[1] then
    -- A write, so that a WAIT after this replay also covers the first creation (replication is
    -- in order): it may have been answered 503 because no replica had confirmed it yet.
    redis.call('HSET', KEYS[4] .. key, 'replayed_at', ARGV[2])
    return {tonumber(seen[1]), seen[2], tonumber(seen[3]), 1}
  end
end
local id = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[3] .. id, 'title', ARGV[1], 'completed', '0', 'created_at', ARGV[2], 'updated_at', ARGV[2])
redis.call('ZADD', KEYS[2], id, id)
if key ~= '' then
  redis.call('HSET', KEYS[4] .. key, 'id', id, 'title', ARGV[1], 'created_at', ARGV[2])
  redis.call('PEXPIRE', KEYS[4] .. key, ARGV[4])
  redis.call('ZADD', KEYS[5], ARGV[2], key)
  -- Index entries of records that expired by themselves; then the oldest beyond the bound.
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', string.format('(%d', ARGV[2] - ARGV[4]))
  local excess = redis.call('ZCARD', KEYS[5]) - tonumber(ARGV[5])
  if excess > 0 then
    for _, old in ipairs(redis.call('ZRANGE', KEYS[5], 0, excess - 1)) do
      redis.call('DEL', KEYS[4] .. old)
    end
    redis.call('ZREMRANGEBYRANK', KEYS[5], 0, excess - 1)
  end
end
return {id, ARGV[1], tonumber(ARGV[2]), 0}";

const UPDATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return redis.call('HGETALL', KEYS[1])";

const DELETE: &str = r"
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1";

pub(crate) struct RedisStore {
    link: Arc<RedisLink>,
    keys: KeyPolicy,
    confirmations: Confirmations,
    create: Script,
    update: Script,
    delete: Script,
}

impl RedisStore {
    pub(crate) fn new(link: Arc<RedisLink>, keys: KeyPolicy, confirmations: Confirmations) -> RedisStore {
        RedisStore {
            link,
            keys,
            confirmations,
            create: Script::new(CREATE),
            update: Script::new(UPDATE),
            delete: Script::new(DELETE),
        }
    }

    async fn connection(&self) -> Result<Connection> {
        self.link.connection().await.map_err(unavailable)
    }

    /// Runs a writing script and, with --todos-wait-replicas, WAITs for the replicas in the same
    /// pipeline: on one connection, so WAIT counts this write (a WAIT sent on a connection made
    /// after a reconnection would count nothing and confirm at once).
    async fn write<T: FromRedisValue>(&self, invocation: &ScriptInvocation<'_>) -> Result<T> {
        let mut db = self.connection().await?;
        let Confirmations { replicas, timeout } = self.confirmations;
        if replicas == 0 {
            return invocation.invoke_async(&mut db).await.map_err(unavailable);
        }
        let mut confirmed = redis::pipe();
        confirmed.invoke_script(invocation).cmd("WAIT").arg(replicas).arg(timeout.as_millis() as u64);
        let mut answer = confirmed.query_async::<(T, u32)>(&mut db).await;
        if answer.as_ref().is_err_and(|error| error.kind() == redis::ErrorKind::NoScriptError) {
            // A master new to this process (or promoted, or restarted) lacks the script.
            invocation.load_async(&mut db).await.map_err(unavailable)?;
            answer = confirmed.query_async(&mut db).await;
        }
        let (value, replicas_with_it) = answer.map_err(unavailable)?;
        if replicas_with_it < replicas {
            tracing::warn!(replicas_with_it, replicas, "todo write not confirmed by enough Redis replicas");
            return Err(Unavailable::NotConfirmed {
                confirmed: replicas_with_it,
                required: replicas,
                timeout,
            });
        }
        Ok(value)
    }
}

impl TodoStore for RedisStore {
    fn list(&self, limit: u32, offset: u64) -> BoxFuture<'_, Result<Page>> {
        Box::pin(async move {
            let mut db = self.connection().await?;
            let stop = offset.saturating_add(u64::from(limit)).saturating_sub(1).min(i64::MAX as u64);
            let (total, ids): (u64, Vec<i64>) = redis::pipe()
                .atomic()
                .zcard(IDS)
                .zrevrange(IDS, offset.min(i64::MAX as u64) as isize, stop as isize)
                .query_async(&mut db)
                .await
                .map_err(unavailable)?;
            let mut fetch = redis::pipe();
            for id in &ids {
                fetch.hgetall(format!("{ITEM}{id}"));
            }
            let fields: Vec<HashMap<String, String>> =
                fetch.query_async(&mut db).await.map_err(unavailable)?;
            // A todo deleted between the two round trips is left out.
            let items =
                ids.iter().zip(fields).filter_map(|(id, fields)| todo_from_fields(*id, &fields)).collect();
            Ok(Page { items, total })
        })
    }

    fn create(&self, title: String, key: Option<IdempotencyKey>) -> BoxFuture<'_, Result<Created>> {
        Box::pin(async move {
            let mut invocation = self.create.key(NEXT_ID);
            invocation
                .key(IDS)
                .key(ITEM)
                .key(KEY_RECORD)
                .key(KEYS_BY_AGE)
                .arg(&title)
                .arg(now_ms())
                .arg(key.as_ref().map_or("", |key| key.0.as_str()))
                .arg(self.keys.retention_ms())
                .arg(self.keys.max_keys);
            let (id, first_title, created_ms, replayed): (i64, String, i64, i64) =
                self.write(&invocation).await?;
            let todo = Todo::fresh(id, first_title, created_ms);
            Ok(if replayed == 1 { Created::again(todo, &title) } else { Created::New(todo) })
        })
    }

    fn get(&self, id: i64) -> BoxFuture<'_, Result<Option<Todo>>> {
        Box::pin(async move {
            let mut db = self.connection().await?;
            let fields: HashMap<String, String> =
                db.hgetall(format!("{ITEM}{id}")).await.map_err(unavailable)?;
            Ok(todo_from_fields(id, &fields))
        })
    }

    fn update(&self, id: i64, changes: Changes) -> BoxFuture<'_, Result<Option<Todo>>> {
        Box::pin(async move {
            let mut invocation = self.update.key(format!("{ITEM}{id}"));
            if let Some(title) = &changes.title {
                invocation.arg("title").arg(title);
            }
            if let Some(completed) = changes.completed {
                invocation.arg("completed").arg(if completed { "1" } else { "0" });
            }
            invocation.arg("updated_at").arg(now_ms());
            let fields: Option<HashMap<String, String>> = self.write(&invocation).await?;
            Ok(fields.and_then(|fields| todo_from_fields(id, &fields)))
        })
    }

    fn delete(&self, id: i64) -> BoxFuture<'_, Result<bool>> {
        Box::pin(async move {
            let mut invocation = self.delete.key(format!("{ITEM}{id}"));
            invocation.key(IDS).arg(id);
            let deleted: i64 = self.write(&invocation).await?;
            Ok(deleted == 1)
        })
    }

    fn check(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut db = self.connection().await?;
            redis::cmd("PING").query_async::<()>(&mut db).await.map_err(unavailable)
        })
    }

    fn describe(&self) -> String {
        format!("redis {}", self.link.describe())
    }
}

fn todo_from_fields(id: i64, fields: &HashMap<String, String>) -> Option<Todo> {
    let number = |key: &str| fields.get(key).and_then(|value| value.parse::<i64>().ok());
    Some(Todo {
        id,
        title: fields.get("title")?.clone(),
        completed: number("completed")? != 0,
        created_ms: number("created_at")?,
        updated_ms: number("updated_at")?,
    })
}

fn unavailable(error: redis::RedisError) -> Unavailable {
    tracing::warn!(%error, "todo store (redis) error");
    if outcome_unknown(&error) {
        return Unavailable::RedisOutcomeUnknown(error);
    }
    Unavailable::Redis(error)
}
