//! This process's side of the rooms: who is in which room, and delivery to them. Each client has a
//! bounded queue; delivery never waits for a client: one whose queue is full is told to go (its
//! socket closes) rather than let memory grow or slow the room down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::Utf8Bytes;

pub struct Rooms {
    members: Mutex<HashMap<String, HashMap<u64, Member>>>,
    next_id: AtomicU64,
    queue: usize,
}

struct Member {
    queue: mpsc::Sender<Utf8Bytes>,
    kicked: Arc<Notify>,
}

/// One client in one room; leaving is dropping it.
pub struct Membership {
    pub frames: mpsc::Receiver<Utf8Bytes>,
    /// Notified when the client's queue overflowed.
    pub kicked: Arc<Notify>,
    room: String,
    id: u64,
    rooms: Arc<Rooms>,
}

impl Rooms {
    pub fn new(queue: usize) -> Rooms {
        Rooms { members: Mutex::default(), next_id: AtomicU64::new(0), queue }
    }

    pub fn join(self: &Arc<Self>, room: &str) -> Membership {
        let (queue, frames) = mpsc::channel(self.queue);
        let kicked = Arc::new(Notify::new());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let member = Member { queue, kicked: kicked.clone() };
        self.lock().entry(room.to_string()).or_default().insert(id, member);
        Membership { frames, kicked, room: room.to_string(), id, rooms: self.clone() }
    }

    /// Queues `frame` for every member of `room` in this process.
    pub fn deliver(&self, room: &str, frame: Utf8Bytes) {
        let members = self.lock();
        let Some(room) = members.get(room) else { return };
        for member in room.values() {
            if let Err(mpsc::error::TrySendError::Full(_)) = member.queue.try_send(frame.clone()) {
                // A permit is stored if the socket is busy writing: it sees it next.
                member.kicked.notify_one();
            }
        }
    }

    pub fn connections(&self) -> usize {
        self.lock().values().map(HashMap::len).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<u64, Member>>> {
        self.members.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut members = self.rooms.lock();
        if let Some(room) = members.get_mut(&self.room) {
            room.remove(&self.id);
            if room.is_empty() {
                members.remove(&self.room);
            }
        }
    }
}
