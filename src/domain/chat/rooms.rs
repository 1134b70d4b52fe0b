//! This process's side of the rooms: who is in which room, and delivery to them. A client (a /ws
//! socket in its one room, a Socket.IO socket in several) has ONE bounded queue for all its rooms,
//! so its frames keep one order and its memory one bound. Delivery never waits for a client: one
//! whose queue is full is told to go (its socket closes) rather than let memory grow or slow the
//! room down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::Utf8Bytes;

pub(crate) struct Rooms {
    members: Mutex<HashMap<String, HashMap<u64, Arc<Inbox>>>>,
    next_id: AtomicU64,
    queue: usize,
}

/// Where the frames for one client go, shared by every room it is in.
struct Inbox {
    queue: mpsc::Sender<Utf8Bytes>,
    /// Notified when the queue overflowed.
    kicked: Notify,
}

/// One client of this process, in any number of rooms; dropping it leaves them all.
pub(crate) struct Client {
    pub(crate) frames: mpsc::Receiver<Utf8Bytes>,
    inbox: Arc<Inbox>,
    joined: Vec<String>,
    id: u64,
    rooms: Arc<Rooms>,
}

impl Rooms {
    pub(crate) fn new(queue: usize) -> Rooms {
        Rooms { members: Mutex::default(), next_id: AtomicU64::new(0), queue }
    }

    /// A new client, in no room yet.
    pub(crate) fn connect(self: &Arc<Self>) -> Client {
        let (queue, frames) = mpsc::channel(self.queue);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let inbox = Arc::new(Inbox { queue, kicked: Notify::new() });
        Client { frames, inbox, joined: Vec::new(), id, rooms: self.clone() }
    }

    /// Queues `frame` for every member of `room` in this process.
    pub(crate) fn deliver(&self, room: &str, frame: Utf8Bytes) {
        let members = self.lock();
        let Some(room) = members.get(room) else { return };
        for inbox in room.values() {
            if let Err(mpsc::error::TrySendError::Full(_)) = inbox.queue.try_send(frame.clone()) {
                // A permit is stored if the socket is busy writing: it sees it next.
                inbox.kicked.notify_one();
            }
        }
    }

    fn remove(&self, room: &str, id: u64) {
        let mut members = self.lock();
        if let Some(inboxes) = members.get_mut(room) {
            inboxes.remove(&id);
            if inboxes.is_empty() {
                members.remove(room);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<u64, Arc<Inbox>>>> {
        self.members.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Client {
    /// Enters `room`; false if the client was in it already.
    pub(crate) fn join(&mut self, room: &str) -> bool {
        if self.is_in(room) {
            return false;
        }
        self.rooms.lock().entry(room.to_string()).or_default().insert(self.id, self.inbox.clone());
        self.joined.push(room.to_string());
        true
    }

    /// Leaves `room`; false if the client was not in it.
    pub(crate) fn leave(&mut self, room: &str) -> bool {
        let Some(at) = self.joined.iter().position(|joined| joined == room) else { return false };
        self.joined.swap_remove(at);
        self.rooms.remove(room, self.id);
        true
    }

    pub(crate) fn is_in(&self, room: &str) -> bool {
        self.joined.iter().any(|joined| joined == room)
    }

    /// The rooms the client is in, in no particular order.
    pub(crate) fn joined(&self) -> &[String] {
        &self.joined
    }

    /// Resolves when the client's queue overflowed: it reads too slowly for its rooms. The future
    /// holds no borrow of the client, so it can wait beside a read of `frames`.
    pub(crate) fn kicked(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let inbox = self.inbox.clone();
        async move { inbox.kicked.notified().await }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        for room in &self.joined {
            self.rooms.remove(room, self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_queue_serves_every_room_of_a_client() {
        let rooms = Arc::new(Rooms::new(4));
        let mut client = rooms.connect();
        assert!(client.join("a") && client.join("b") && !client.join("a"));
        rooms.deliver("a", "1".into());
        rooms.deliver("b", "2".into());
        rooms.deliver("c", "3".into());
        assert_eq!(client.frames.try_recv().unwrap().as_str(), "1");
        assert_eq!(client.frames.try_recv().unwrap().as_str(), "2");
        assert!(client.frames.try_recv().is_err());

        assert!(client.leave("a") && !client.leave("a"));
        rooms.deliver("a", "4".into());
        assert!(client.frames.try_recv().is_err());
        drop(client);
        assert!(rooms.lock().is_empty(), "rooms without members are forgotten");
    }
}
