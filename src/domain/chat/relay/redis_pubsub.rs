//! Fan-out across processes and hosts through Redis pub/sub: a message is published on
//! `app:chat:<room>`, and every process (this one included) delivers what its subscription receives
//! to its own clients, so all see one order. One pattern subscription per process (`app:chat:*`)
//! serves every room. The subscriber reconnects with backoff after Redis goes away; while it is
//! away, sending fails, and the sender gets an error frame rather than silence.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rand::Rng;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::domain::chat::error::SendError;
use crate::domain::chat::rooms::Rooms;
use crate::infra::redis::{outcome_unknown, RedisLink, TIMEOUT};

const CHANNEL_PREFIX: &str = "app:chat:";
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the subscription is pinged; a Redis that is gone is noticed within this plus
/// [`TIMEOUT`].
const PING_PERIOD: Duration = Duration::from_secs(3);

pub(crate) struct RedisRelay {
    link: Arc<RedisLink>,
    /// Whether the subscription is live: a message published while it is not would miss this
    /// process's own clients.
    subscribed: watch::Receiver<bool>,
}

impl RedisRelay {
    pub(crate) fn start(link: Arc<RedisLink>, rooms: Arc<Rooms>) -> RedisRelay {
        let (live, subscribed) = watch::channel(false);
        tokio::spawn(subscribe_forever(link.clone(), rooms, live));
        RedisRelay { link, subscribed }
    }

    /// Waits until the subscription is live, for at most `patience`; whether it is.
    pub(crate) async fn wait_subscribed(&self, patience: Duration) -> bool {
        let mut subscribed = self.subscribed.clone();
        tokio::time::timeout(patience, subscribed.wait_for(|live| *live)).await.is_ok_and(|r| r.is_ok())
    }

    pub(crate) async fn publish(&self, room: &str, frame: String) -> Result<(), SendError> {
        if !*self.subscribed.borrow() {
            return Err(SendError::RedisUnreachable);
        }
        let mut connection = self.link.connection().await.map_err(|error| {
            tracing::debug!(%error, "redis connection for chat");
            SendError::RedisUnreachable
        })?;
        let published: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(format!("{CHANNEL_PREFIX}{room}"))
            .arg(frame)
            .query_async(&mut connection)
            .await;
        published.map(drop).map_err(|error| {
            tracing::warn!(%error, "chat publish failed");
            if outcome_unknown(&error) {
                SendError::RedisUnknown
            } else {
                SendError::RedisUnreachable
            }
        })
    }
}

async fn subscribe_forever(link: Arc<RedisLink>, rooms: Arc<Rooms>, subscribed: watch::Sender<bool>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        match subscribe(&link).await {
            Ok(pubsub) => {
                subscribed.send_replace(true);
                tracing::info!(redis = %link.describe(), "chat relay subscribed");
                backoff = FIRST_BACKOFF;
                let why = relay_until_lost(pubsub, &rooms).await;
                subscribed.send_replace(false);
                tracing::warn!("chat relay lost its Redis subscription ({why}); reconnecting");
            }
            Err(error) => tracing::warn!(%error, retry_in = ?backoff, "chat relay cannot subscribe"),
        }
        // Jitter so that every process of every host does not reconnect in the same instant.
        let jitter = rand::thread_rng().gen_range(0..=backoff.as_millis() as u64 / 2);
        tokio::select! {
            _ = tokio::time::sleep(backoff + Duration::from_millis(jitter)) => {}
            // With Sentinel, the promoted master is there to subscribe to: no need to wait out the
            // backoff (but still not all in the same instant).
            _ = link.master_switched() => {
                let jitter = rand::thread_rng().gen_range(0..=FIRST_BACKOFF.as_millis() as u64);
                tokio::time::sleep(Duration::from_millis(jitter)).await;
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Delivers what the subscription receives until it is lost: closed by Redis, or a ping not
/// answered within [`TIMEOUT`]. A subscriber only ever reads, so without the pings a Redis host that
/// vanished (powered off, rebooted, its link cut: no FIN, no RST) would leave it waiting forever
/// for messages that go to a new server, and a frozen Redis would look merely quiet.
async fn relay_until_lost(pubsub: redis::aio::PubSub, rooms: &Rooms) -> &'static str {
    let (mut sink, mut messages) = pubsub.split();
    let mut pings = tokio::time::interval_at(tokio::time::Instant::now() + PING_PERIOD, PING_PERIOD);
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else { return "closed by Redis" };
                let Some(room) = message.get_channel_name().strip_prefix(CHANNEL_PREFIX) else {
                    continue;
                };
                match message.get_payload::<String>() {
                    Ok(frame) => rooms.deliver(room, Utf8Bytes::from(frame)),
                    Err(error) => tracing::warn!(%error, "chat relay: a payload that is not text"),
                }
                // Let the sockets write what was just queued before the next message: in a
                // burst (everyone reconnecting after a drain) the relay would otherwise fill
                // every queue before any socket ran, and disconnect healthy clients as slow.
                tokio::task::yield_now().await;
            }
            _ = pings.tick() => {
                match tokio::time::timeout(TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => return "a ping failed",
                    Err(_) => return "a ping was not answered in time",
                }
            }
        }
    }
}

async fn subscribe(link: &RedisLink) -> redis::RedisResult<redis::aio::PubSub> {
    let connect = async {
        let mut pubsub = link.pubsub().await?;
        pubsub.psubscribe(format!("{CHANNEL_PREFIX}*")).await?;
        Ok(pubsub)
    };
    tokio::time::timeout(TIMEOUT, connect)
        .await
        .unwrap_or_else(|_| Err(redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))))
}
