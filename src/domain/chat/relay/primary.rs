//! A cluster worker's side of the primary's chat bus (cluster mode without `--redis-url`; the
//! primary's side is `process::cluster::bus`, the format both speak `crate::infra::bus_wire`). What
//! this worker's clients send is written to the primary, which writes it to every worker, this one
//! included; what comes back is delivered to this worker's clients, so every worker sees one order.
//!
//! The bus is the socket the primary left at fd 4 for this process. It is never reopened: a worker
//! whose bus closes (the primary cut it off as too slow to read, or is gone) is about to be
//! replaced, and meanwhile its sends fail with an error frame.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::domain::chat::error::SendError;
use crate::domain::chat::rooms::Rooms;
use crate::infra::bus_wire as wire;

/// Bytes of frames waiting for this worker's writer; a sender waits for room (at most
/// [`SEND_TIMEOUT`]). Counted in bytes, not frames, since a frame may be up to a MiB.
const OUTGOING_BYTES: usize = 8 * 1024 * 1024;
/// How long a send may wait for the writer before it is refused: the primary reads all the time,
/// so only a primary that is stuck (or stopped) makes it wait this long.
const SEND_TIMEOUT: Duration = Duration::from_secs(2);
const BUFFER_BYTES: usize = 64 * 1024;

/// A frame on its way to the primary, holding its share of [`OUTGOING_BYTES`] until written.
type Outgoing = (Bytes, OwnedSemaphorePermit);

pub(crate) struct PrimaryRelay {
    outgoing: mpsc::UnboundedSender<Outgoing>,
    /// OUTGOING_BYTES, as permits of one byte each.
    budget: Arc<Semaphore>,
    /// False once the bus closed either way.
    open: watch::Receiver<bool>,
}

impl PrimaryRelay {
    /// The relay over `bus`, the socket the primary handed this process (taken over, close-on-exec,
    /// at start-up by the process layer: `process/inherited.rs`).
    pub(crate) fn inherited(bus: OwnedFd, rooms: Arc<Rooms>) -> Option<PrimaryRelay> {
        let fd = bus.as_raw_fd();
        let stream = std::os::unix::net::UnixStream::from(bus);
        let stream = match stream.set_nonblocking(true).and_then(|()| UnixStream::from_std(stream)) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::error!(%error, fd, "the cluster bus cannot be used: chat stays in this worker");
                return None;
            }
        };
        let (read, write) = stream.into_split();
        let (outgoing, frames) = mpsc::unbounded_channel();
        let (closed, open) = watch::channel(true);
        let closed = Arc::new(closed);
        tokio::spawn(deliver(read, rooms, closed.clone()));
        tokio::spawn(write_out(write, frames, closed));
        Some(PrimaryRelay { outgoing, budget: Arc::new(Semaphore::new(OUTGOING_BYTES)), open })
    }

    pub(crate) fn connected(&self) -> bool {
        *self.open.borrow()
    }

    pub(crate) async fn publish(&self, room: &str, frame: String) -> Result<(), SendError> {
        if !self.connected() {
            return Err(SendError::BusClosed);
        }
        let encoded = wire::encode(room, &frame).map_err(SendError::BusFrame)?;
        // A frame is at most wire::MAX_FRAME_BYTES, well below OUTGOING_BYTES: it always fits.
        let size = encoded.len() as u32;
        match tokio::time::timeout(SEND_TIMEOUT, self.budget.clone().acquire_many_owned(size)).await {
            Ok(Ok(permit)) => self.outgoing.send((encoded, permit)).map_err(|_| SendError::BusClosed),
            Ok(Err(_)) => Err(SendError::BusClosed),
            Err(_) => Err(SendError::BusStuck(SEND_TIMEOUT)),
        }
    }
}

/// Delivers what the primary sends to this worker's clients, until the bus closes.
async fn deliver(mut read: OwnedReadHalf, rooms: Arc<Rooms>, closed: Arc<watch::Sender<bool>>) {
    let mut buffer = BytesMut::with_capacity(BUFFER_BYTES);
    let why = loop {
        match wire::decode(&mut buffer) {
            Ok(Some(frame)) => {
                match Utf8Bytes::try_from(frame.frame()) {
                    Ok(text) => rooms.deliver(frame.room(), text),
                    Err(_) => tracing::warn!("cluster bus: a frame that is not text"),
                }
                continue;
            }
            Ok(None) => {}
            Err(error) => break error.to_string(),
        }
        // Let the sockets write what was just queued before the next batch (as the Redis relay
        // does): in a burst the bus would otherwise fill every client's queue before any ran.
        tokio::task::yield_now().await;
        match read.read_buf(&mut buffer).await {
            Ok(0) => break "closed by the primary".to_string(),
            Ok(_) => {}
            Err(error) => break error.to_string(),
        }
    };
    closed.send_replace(false);
    tracing::warn!(
        "cluster bus lost ({why}): chat no longer crosses workers here until this worker is replaced"
    );
}

/// Writes this worker's frames to the primary in order, gathering those that wait into one write.
async fn write_out(
    write: OwnedWriteHalf,
    mut frames: mpsc::UnboundedReceiver<Outgoing>,
    closed: Arc<watch::Sender<bool>>,
) {
    let mut out = BufWriter::with_capacity(BUFFER_BYTES, write);
    'frames: while let Some(frame) = frames.recv().await {
        let mut next = Some(frame);
        // The permit goes once the frame is in the buffer: it is then bounded by the buffer.
        while let Some((frame, _permit)) = next {
            if out.write_all(&frame).await.is_err() {
                break 'frames;
            }
            next = frames.try_recv().ok();
        }
        if out.flush().await.is_err() {
            break;
        }
    }
    closed.send_replace(false);
}
