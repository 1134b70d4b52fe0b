//! Chat rooms (the seeds' Socket.IO rooms) over WebSocket (/ws) and Socket.IO (/socket.io/). A message goes to every client of its
//! room whichever process or host holds it: through Redis pub/sub when `--redis-url` is set, else
//! through the cluster primary to every worker of this instance, else (fork mode) only to this
//! process's clients.

mod error;
mod frames;
mod limits;
mod relay;
mod rooms;
mod socket;
pub mod socketio;

use std::sync::Arc;

use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::config::Config;
use crate::infra::metrics::Metrics;
use crate::infra::redis::RedisLink;
use error::SendError;
pub(crate) use frames::valid_name;
pub(crate) use limits::Limits;
use relay::Relay;
use rooms::{Client, Rooms};
pub(crate) use socket::serve;

pub(crate) struct Hub {
    rooms: Arc<Rooms>,
    relay: Option<Relay>,
    pub(crate) limits: Limits,
    /// This process's Socket.IO polling sessions.
    pub(crate) sessions: socketio::Sessions,
    /// This process's counters: its chat sockets and messages.
    metrics: Metrics,
}

impl Hub {
    /// With Redis, starts the subscriber (it connects and reconnects in the background); in a
    /// cluster worker without Redis, the primary's bus (`bus`, the worker's end of it). Counts in
    /// `metrics`.
    pub(crate) fn new(
        config: &Config,
        metrics: Metrics,
        redis: Option<Arc<RedisLink>>,
        bus: Option<std::os::fd::OwnedFd>,
    ) -> Hub {
        let rooms = Arc::new(Rooms::new(config.chat_queue as usize));
        let relay = Relay::choose(redis, bus, &rooms);
        let sessions = socketio::Sessions::default();
        Hub { rooms, relay, limits: Limits::from(config), sessions, metrics }
    }

    /// A new chat client of this process, in no room yet.
    fn connect(&self) -> Client {
        self.rooms.connect()
    }

    /// Sends `frame` to every client of `room`, on every process when relayed. An error says
    /// whether it reached no one or may yet reach the room (the client is told which).
    async fn send(&self, room: &str, frame: String) -> Result<(), SendError> {
        match &self.relay {
            Some(relay) => relay.publish(room, frame).await,
            None => {
                self.rooms.deliver(room, Utf8Bytes::from(frame));
                Ok(())
            }
        }
    }

    /// Waits (at most `patience`) for the relay's first subscription, so a process announces itself
    /// ready only once its rooms reach the other processes; true without a relay.
    pub(crate) async fn wait_relay(&self, patience: std::time::Duration) -> bool {
        match &self.relay {
            Some(relay) => relay.wait_subscribed(patience).await,
            None => true,
        }
    }

    /// How frames cross processes, for the start-up log.
    pub(crate) fn fan_out(&self) -> &'static str {
        self.relay.as_ref().map_or("process-local", Relay::describe)
    }
}
