//! Socket.IO v4 (Engine.IO 4, Socket.IO protocol 5) at `/socket.io/`, written here over the same
//! WebSocket plumbing as /ws rather than taken from socketioxide: its sockets are then clients of
//! the same [`Rooms`](super::rooms::Rooms) as /ws sockets, so the Redis relay (and anything else
//! that calls `Rooms::deliver`), the limits and the metrics apply to both unchanged, the session
//! id can name the worker that owns a polling session, and an idle socket's memory stays ours to
//! keep small.
//!
//! - packet.rs: the text of both protocol layers;
//! - events.rs: one socket's chat (CONNECT with `auth: { name }`, join, leave, message, acks);
//! - session.rs: one Engine.IO session on its transports (WebSocket, long-polling, the upgrade),
//!   with the heartbeat.

mod events;
mod packet;
mod session;

use std::collections::HashMap;
use std::sync::Mutex;

use rand::distributions::{Alphanumeric, DistString};
use tokio::sync::mpsc;

pub(crate) use session::{serve_polling, serve_websocket, Request, Ws, WsLink, PING_INTERVAL, PING_TIMEOUT};

/// Random characters in a session id: about 119 bits, not to be guessed.
const SID_RANDOM_CHARS: usize = 20;

/// The polling sessions of this process, by session id: where their requests go.
#[derive(Default)]
pub(crate) struct Sessions {
    open: Mutex<HashMap<String, mpsc::Sender<Request>>>,
}

impl Sessions {
    /// A new polling session's id and where its requests arrive.
    pub(crate) fn open(&self, worker: Option<u16>) -> (String, mpsc::Receiver<Request>) {
        let sid = new_sid(worker);
        // Few requests of one session are in flight at once: one GET, a POST, an upgrade.
        let (requests, incoming) = mpsc::channel(4);
        self.lock().insert(sid.clone(), requests);
        (sid, incoming)
    }

    /// Where the requests of session `sid` go, if it is open in this process.
    pub(crate) fn get(&self, sid: &str) -> Option<mpsc::Sender<Request>> {
        self.lock().get(sid).cloned()
    }

    pub(crate) fn count(&self) -> usize {
        self.lock().len()
    }

    fn remove(&self, sid: &str) {
        self.lock().remove(sid);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<Request>>> {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A session id: `w<worker>-<random>` in a cluster worker (so any worker can tell whose session
/// a polling request belongs to), `<random>` in fork mode.
pub(crate) fn new_sid(worker: Option<u16>) -> String {
    match worker {
        Some(worker) => format!("w{worker}-{}", random_id()),
        None => random_id(),
    }
}

/// The cluster worker that owns session `sid`; `None` for a fork-mode session (or a malformed id,
/// which no worker owns and every one answers as unknown).
pub fn owner_of(sid: &str) -> Option<u16> {
    let (worker, _) = sid.strip_prefix('w')?.split_once('-')?;
    worker.parse().ok()
}

fn random_id() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), SID_RANDOM_CHARS)
}

/// The Engine.IO handshake of session `sid`, offering `upgrades`.
pub(crate) fn open_packet(sid: &str, upgrades: &[&str], limits: &super::Limits) -> String {
    let ms = |duration: std::time::Duration| duration.as_millis() as u64;
    packet::out::open(sid, upgrades, ms(PING_INTERVAL), ms(PING_TIMEOUT), max_payload(limits))
}

/// The largest Engine.IO payload the server reads, announced in the handshake (`maxPayload`): the
/// WebSocket frame limit of /ws, four times `--chat-max-message-bytes`. A packet above the message
/// limit but within this one gets an error acknowledgement; above this one, the socket is closed.
pub(crate) fn max_payload(limits: &super::Limits) -> usize {
    limits.max_message_bytes * 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_id_names_its_worker() {
        let sid = new_sid(Some(3));
        assert_eq!(owner_of(&sid), Some(3));
        assert_eq!(owner_of(&new_sid(None)), None);
        assert_eq!(owner_of("wx-abc"), None);
        assert_eq!(owner_of("w70000-abc"), None);
        assert_ne!(new_sid(None), new_sid(None));
    }
}
