//! How a room's frames reach the other processes: the choice of fan-out. With `--redis-url`, Redis
//! pub/sub (every process of every instance and host); in cluster mode without it, the primary's bus
//! (the workers of this instance); in fork mode without it, none (this process's clients only).
//! Either way the sender's own process gets its frame back from the fan-out, so all see one order.

mod primary;
mod redis_pubsub;

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use super::error::SendError;
use super::rooms::Rooms;
use crate::infra::redis::RedisLink;
use primary::PrimaryRelay;
use redis_pubsub::RedisRelay;

pub(crate) enum Relay {
    Redis(RedisRelay),
    Primary(PrimaryRelay),
}

impl Relay {
    /// Redis when there is one, else the bus a cluster primary handed this worker, if any.
    pub(crate) fn choose(
        redis: Option<Arc<RedisLink>>,
        bus: Option<OwnedFd>,
        rooms: &Arc<Rooms>,
    ) -> Option<Relay> {
        match redis {
            Some(link) => Some(Relay::Redis(RedisRelay::start(link, rooms.clone()))),
            None => bus.and_then(|bus| PrimaryRelay::inherited(bus, rooms.clone())).map(Relay::Primary),
        }
    }

    pub(crate) async fn publish(&self, room: &str, frame: String) -> Result<(), SendError> {
        match self {
            Relay::Redis(redis) => redis.publish(room, frame).await,
            Relay::Primary(primary) => primary.publish(room, frame).await,
        }
    }

    /// Waits (at most `patience`) until frames can cross; whether they can.
    pub(crate) async fn wait_subscribed(&self, patience: Duration) -> bool {
        match self {
            Relay::Redis(redis) => redis.wait_subscribed(patience).await,
            Relay::Primary(primary) => primary.connected(),
        }
    }

    /// For the start-up log line.
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Relay::Redis(_) => "relayed through redis",
            Relay::Primary(_) => "relayed through the cluster primary (this instance's workers)",
        }
    }
}
