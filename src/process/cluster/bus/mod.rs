//! The cluster bus, the primary's side: chat across the workers of one instance without Redis (as
//! Socket.IO's cluster adapter does for Node's cluster module). Each worker gets one end of a unix
//! stream socketpair at fd [`BUS_FD`]; what a worker writes there (a room and its chat frame, see
//! `infra::bus_wire`) the primary writes to every live worker, the sender included, and each worker delivers
//! it to its own clients of that room. The primary is one thread reading every worker, so every
//! worker sees one order, as Redis pub/sub gives.
//!
//! A worker slow to read never holds up the primary or the other workers: each worker has its own
//! queue in the primary, of at most [`QUEUE_BYTES`] beyond what its socket buffer holds. A worker
//! whose queue would overflow, or that writes a frame breaking the format, is cut off (its bus is
//! closed, so its sends fail with an error frame rather than reach no one silently) and replaced as
//! for --worker-max-memory: a new worker first, then the old one drained, its clients closed with
//! 1001 so they reconnect to a worker that is in step.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, Notify};
use tokio::task::AbortHandle;

use crate::infra::bus_wire as wire;

use super::machine::WorkerId;
use super::worker::Event;

/// Where a worker finds its end of the bus (the listener is fd 3).
pub(crate) const BUS_FD: RawFd = 4;
/// Set in a worker's environment when it has a bus at [`BUS_FD`].
pub(crate) const BUS_FD_ENV: &str = "APP_CLUSTER_BUS_FD";
/// Bytes the primary holds for one worker that has not read them yet, beyond its socket buffer:
/// thousands of ordinary messages, so only a worker that stopped reading (frozen, stuck) reaches it.
pub(crate) const QUEUE_BYTES: usize = 8 * 1024 * 1024;
/// What one write to a worker gathers, so a burst costs few system calls.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

pub(crate) struct Bus {
    links: Mutex<HashMap<WorkerId, Link>>,
    /// The supervisor's events: a worker cut off is reported as [`Event::Unfit`].
    events: mpsc::UnboundedSender<(WorkerId, Event)>,
}

/// One attached worker: its queue and the two tasks that move its bytes.
struct Link {
    slot: u16,
    pid: u32,
    outlet: Arc<Outlet>,
    reader: AbortHandle,
    writer: AbortHandle,
}

/// Frames waiting to be written to one worker.
#[derive(Default)]
struct Outlet {
    queue: Mutex<Queue>,
    wake: Notify,
}

#[derive(Default)]
struct Queue {
    frames: VecDeque<Bytes>,
    bytes: usize,
}

impl Bus {
    pub(crate) fn new(events: mpsc::UnboundedSender<(WorkerId, Event)>) -> Arc<Bus> {
        Arc::new(Bus { links: Mutex::default(), events })
    }

    /// A socketpair for a worker about to start: the primary's end, and the worker's, numbered 10 or
    /// more (close-on-exec) so that moving the listener to fd 3 in the child cannot overwrite it.
    pub(crate) fn pair() -> io::Result<(std::os::unix::net::UnixStream, OwnedFd)> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        // SAFETY: fcntl on an fd we own; the result, when valid, is a new fd that we then own.
        let moved = unsafe { libc::fcntl(theirs.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
        if moved < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `moved` was just returned by fcntl and is owned by no one else.
        Ok((ours, unsafe { OwnedFd::from_raw_fd(moved) }))
    }

    /// Starts moving worker `id`'s frames: what it writes goes to every worker, and every frame
    /// reaches it from now on.
    pub(crate) fn attach(
        self: &Arc<Self>,
        id: WorkerId,
        slot: u16,
        pid: u32,
        ours: std::os::unix::net::UnixStream,
    ) {
        let stream = match ours.set_nonblocking(true).and_then(|()| UnixStream::from_std(ours)) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::error!(worker = slot, pid, %error, "cluster bus: cannot poll the worker's end; replacing it");
                let _ = self.events.send((id, Event::Unfit));
                return;
            }
        };
        let (read, write) = stream.into_split();
        let outlet = Arc::new(Outlet::default());
        // Held while the tasks are spawned: nothing is published before the link is in the map.
        let mut links = self.lock();
        let reader = tokio::spawn(self.clone().read_from(id, read)).abort_handle();
        let writer = tokio::spawn(write_to(outlet.clone(), write)).abort_handle();
        links.insert(id, Link { slot, pid, outlet, reader, writer });
    }

    /// Forgets worker `id` (it exited), closing its end.
    pub(crate) fn detach(&self, id: WorkerId) {
        if let Some(link) = self.lock().remove(&id) {
            link.stop();
        }
    }

    /// Reads worker `id`'s frames and publishes each, until it closes its end or breaks the format.
    async fn read_from(self: Arc<Self>, id: WorkerId, mut read: OwnedReadHalf) {
        let mut buffer = BytesMut::with_capacity(WRITE_BUFFER_BYTES);
        let broken = loop {
            match wire::decode(&mut buffer) {
                Ok(Some(frame)) => {
                    self.publish(frame.bytes);
                    continue;
                }
                Ok(None) => {}
                Err(error) => break Some(error.to_string()),
            }
            // Let the writers send what was just queued before reading more: in a burst the queues
            // would otherwise fill before any writer ran, and healthy workers would be cut off.
            tokio::task::yield_now().await;
            match read.read_buf(&mut buffer).await {
                Ok(0) => break None, // The worker is gone: its exit is reported by its watcher.
                Ok(_) => {}
                Err(error) => break Some(format!("reading its bus failed: {error}")),
            }
        };
        match broken {
            Some(why) => self.cut(id, why),
            None => self.detach(id),
        }
    }

    /// Queues one encoded frame for every attached worker; cuts off those whose queue is full.
    fn publish(&self, frame: Bytes) {
        let behind: Vec<WorkerId> =
            self.lock().iter().filter(|(_, link)| !link.outlet.push(&frame)).map(|(id, _)| *id).collect();
        for id in behind {
            self.cut(id, format!("it fell more than {QUEUE_BYTES} bytes behind"));
        }
    }

    /// Closes worker `id`'s bus and asks the supervisor to replace it.
    fn cut(&self, id: WorkerId, why: String) {
        if let Some(link) = self.lock().remove(&id) {
            tracing::warn!(
                worker = link.slot,
                pid = link.pid,
                "cluster bus: cutting the worker off ({why}); replacing it"
            );
            link.stop();
            let _ = self.events.send((id, Event::Unfit));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WorkerId, Link>> {
        self.links.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Link {
    /// Ends both tasks, which drops both halves: the worker reads the end of its bus.
    fn stop(&self) {
        self.reader.abort();
        self.writer.abort();
    }
}

impl Outlet {
    /// Queues `frame` unless that would put the queue over [`QUEUE_BYTES`].
    fn push(&self, frame: &Bytes) -> bool {
        let mut queue = self.lock();
        if queue.bytes + frame.len() > QUEUE_BYTES {
            return false;
        }
        queue.bytes += frame.len();
        queue.frames.push_back(frame.clone());
        drop(queue);
        // Stores a permit when the writer is busy: it finds the frame on its next look.
        self.wake.notify_one();
        true
    }

    fn pop(&self) -> Option<Bytes> {
        let mut queue = self.lock();
        let frame = queue.frames.pop_front()?;
        queue.bytes -= frame.len();
        Some(frame)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Writes a worker's queued frames in order, as fast as it reads them.
async fn write_to(outlet: Arc<Outlet>, write: OwnedWriteHalf) {
    let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, write);
    loop {
        while let Some(frame) = outlet.pop() {
            if out.write_all(&frame).await.is_err() {
                return; // The worker is gone; its reader sees the end too.
            }
        }
        if out.flush().await.is_err() {
            return;
        }
        outlet.wake.notified().await;
    }
}

#[cfg(test)]
mod tests;
