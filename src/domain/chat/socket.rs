//! One chat client's socket, from join to close: reads its messages (size, rate, shape), writes
//! what its room receives, pings it, and closes it with 1001 when the server drains.
//!
//! Every end but a vanished peer completes RFC 6455's closing handshake, so a browser reports
//! `wasClean` and the code: a client's Close is answered with the same code (tungstenite queues
//! that echo; it goes out on the next flush, as a Close sent after it would be refused); a
//! protocol error (1002), text that is not UTF-8 (1007) or a frame too big (1009) gets a Close
//! with its code. Then the server ends the TCP connection with its lingering close
//! (src/http/lingering.rs), so no unread input turns the close into a reset that could lose the
//! Close frame on its way.
//!
//! [`serve`] runs the parts side by side until the first of them ends the socket: [`write`] (room
//! frames and control frames out), [`read`] (the client's messages in), [`ping`] (the heartbeat),
//! the rooms' kick and the server's drain; [`End`] then decides the close, and [`close`] sends it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Notify};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::error::{Refusal, SendError};
use super::frames;
use super::limits::RateLimiter;
use super::Hub;

/// How long the close may take (the frame going out, then the client's last bytes) before the
/// connection is simply dropped.
const CLOSE_DEADLINE: Duration = Duration::from_secs(1);
/// Longest reason in a Close frame: its payload is at most 125 bytes, 2 of them the code.
const MAX_REASON_BYTES: usize = 123;
/// Frames for this client that are not room traffic (errors, pings) waiting at once; more are
/// dropped (a client that makes errors faster than it reads them loses some of them).
const CONTROL_QUEUE: usize = 8;

/// Serves one /ws socket of `name` in `room` until it ends (see the module's documentation),
/// announcing the join first and the leave last.
pub(crate) async fn serve<S>(
    hub: Arc<Hub>,
    ws: WebSocketStream<S>,
    room: String,
    name: String,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let member = Member { hub: &hub, room: &room, name: &name };
    // Counted in /metrics (app_chat_connections_*) for as long as the socket lives.
    let _counted = hub.metrics.chat_connected();
    let mut client = member.hub.connect();
    client.join(&room);
    let kicked = client.kicked();
    let (mut sink, mut stream) = ws.split();
    let control = Control::default();
    let heard = Heard::new();
    if let Err(problem) = member.send(frames::notice(&room, "join", &name)).await {
        // The client learns at once that the room cannot be reached, not on its first message.
        control.push(error_frame(&problem.to_string()));
    }

    let end = tokio::select! {
        end = write(&mut sink, &control, &mut client.frames) => end,
        end = read(&member, &mut stream, &control, &heard) => end,
        end = ping(&member.hub.limits.ping_interval, &control, &heard) => end,
        _ = kicked => End::TooSlow,
        _ = stop.wait_for(|stopped| *stopped) => End::Draining,
    };
    end.log(&member);
    // On the heap, as `send`'s future: what only the end needs is not held all the socket's life.
    let _ = Box::pin(tokio::time::timeout(CLOSE_DEADLINE, close(sink, stream, end))).await;
    drop(client);
    let _ = member.send(frames::notice(&room, "leave", &name)).await;
}

/// Who a socket is in the rooms: what its reader needs to pass a message on, borrowed from
/// [`serve`]'s arguments for the socket's life.
struct Member<'a> {
    hub: &'a Hub,
    room: &'a str,
    name: &'a str,
}

impl Member<'_> {
    /// Sends `frame` to the room through the hub in a future on the heap: the relay's (a Redis
    /// query) is kilobytes, and inline it would be part of every socket's task for all its life,
    /// though a socket spends almost all of it not sending.
    async fn send(&self, frame: String) -> Result<(), SendError> {
        Box::pin(self.hub.send(self.room, frame)).await
    }

    /// Acts on one text frame of the client: a message for the room if the rate and the frame
    /// allow it; else why not, for an error frame.
    async fn receive(&self, limiter: &mut RateLimiter, text: &str) -> Result<(), Refusal> {
        let limits = &self.hub.limits;
        if !limiter.allow() {
            return Err(Refusal::RateLimited { rate: limits.rate, burst: limits.burst });
        }
        let sent = frames::parse(text, limits.max_message_bytes)?;
        self.hub.metrics.chat_message();
        Ok(self.send(frames::message(self.room, self.name, &sent)).await?)
    }
}

/// Writes to the client, control frames first, then what its room delivers, until the client
/// cannot take more (or the rooms forgot it).
async fn write<S>(
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    control: &Control,
    frames: &mut mpsc::Receiver<Utf8Bytes>,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let message = tokio::select! {
            biased;
            message = control.next() => message,
            Some(frame) = frames.recv() => Message::Text(frame),
            else => return End::Broken,
        };
        if sink.send(message).await.is_err() {
            return End::Broken;
        }
    }
}

/// Reads the client's frames until one ends the socket: its Close, a protocol error, or the end
/// of the stream. Every frame counts as heard; a refused one is answered with an error frame and
/// the socket stays open.
async fn read<S>(
    member: &Member<'_>,
    stream: &mut SplitStream<WebSocketStream<S>>,
    control: &Control,
    heard: &Heard,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut limiter = RateLimiter::new(&member.hub.limits);
    while let Some(incoming) = stream.next().await {
        heard.now();
        let text = match incoming {
            Ok(Message::Text(text)) => text,
            Ok(Message::Binary(_)) => {
                control.push(error_frame("send text frames holding JSON, not binary"));
                continue;
            }
            Ok(Message::Close(_)) => return End::ClientClosed,
            Ok(_) => continue, // Pings are answered by tungstenite; pongs only count as heard.
            Err(error) => return End::from_error(error),
        };
        if let Err(refusal) = member.receive(&mut limiter, &text).await {
            control.push(error_frame(&refusal.to_string()));
        }
    }
    End::Broken
}

/// Pings the client every `interval` (borrowed, as everything the socket holds for its life: a
/// pointer is smaller than a copy); ends the socket once nothing was heard from it for two.
async fn ping(interval: &Duration, control: &Control, heard: &Heard) -> End {
    let mut ticks = tokio::time::interval(*interval);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        if heard.silent_for() > *interval * 2 {
            return End::Silent;
        }
        control.push(Message::Ping(Default::default()));
    }
}

/// Ends the socket as `end` decides: its Close frame (or the flush of tungstenite's echo of the
/// client's), then, when the client can take a clean end, FIN through the upgrade to the
/// connection's lingering close, which reads the client's last bytes (its own Close) until it
/// closes too.
async fn close<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    stream: SplitStream<WebSocketStream<S>>,
    end: End,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let sent = match end.close_frame() {
        Some(frame) => sink.send(Message::Close(Some(frame))).await,
        None => sink.flush().await,
    };
    if end.ends_cleanly() && sent.is_ok() {
        if let Ok(ws) = sink.reunite(stream) {
            let _ = ws.into_inner().shutdown().await;
        }
    }
}

/// When the client was last heard from: the reader notes every frame, the pinger reads it. Kept
/// as milliseconds since the socket opened in an atomic, as both run in the socket's one task.
struct Heard {
    started: Instant,
    last: AtomicU64,
}

impl Heard {
    fn new() -> Heard {
        Heard { started: Instant::now(), last: AtomicU64::new(0) }
    }

    /// The client was heard from just now.
    fn now(&self) {
        self.last.store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long the client has been silent.
    fn silent_for(&self) -> Duration {
        let heard = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(heard)
    }
}

/// The queue of frames for the client that are not room traffic. Not an mpsc channel: its first
/// block (32 messages, 2 KiB) would be held by every socket from the start, idle or not; this
/// holds nothing until a frame is queued.
#[derive(Default)]
struct Control {
    queue: Mutex<VecDeque<Message>>,
    queued: Notify,
}

impl Control {
    fn push(&self, message: Message) {
        let mut queue = self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if queue.len() < CONTROL_QUEUE {
            queue.push_back(message);
            self.queued.notify_one();
        }
    }

    /// The next queued frame (cancel-safe: a frame is taken only when returned).
    async fn next(&self) -> Message {
        loop {
            let next = self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop_front();
            if let Some(message) = next {
                return message;
            }
            // A push since the check left a permit, so this returns at once.
            self.queued.notified().await;
        }
    }
}

/// Why a socket ends, which decides the close frame it gets (none when the peer cannot take one).
enum End {
    ClientClosed,
    Draining,
    TooSlow,
    Silent,
    /// The client broke the protocol: the code (1002, 1007, 1009) and why.
    Failed(CloseCode, String),
    Broken,
}

impl End {
    /// How a read error ends the socket.
    fn from_error(error: WsError) -> End {
        match error {
            WsError::Capacity(_) => End::Failed(CloseCode::Size, "message too big".into()),
            WsError::Utf8(_) => End::Failed(CloseCode::Invalid, "text frame is not valid UTF-8".into()),
            // The peer went away without a Close: nobody to send one to.
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => End::Broken,
            WsError::Protocol(problem) => End::Failed(CloseCode::Protocol, problem.to_string()),
            _ => End::Broken,
        }
    }

    /// The Close frame the server sends; none when the client closed (tungstenite queued the
    /// echo of its Close) or cannot be reached.
    fn close_frame(&self) -> Option<CloseFrame> {
        let close = |code: CloseCode, reason: &str| CloseFrame { code, reason: truncated(reason).into() };
        match self {
            End::Draining => Some(close(CloseCode::Away, "server shutting down; reconnect")),
            End::TooSlow => Some(close(CloseCode::Policy, "too slow: messages queued beyond the limit")),
            End::Failed(code, problem) => Some(close(*code, problem)),
            End::ClientClosed | End::Silent | End::Broken => None,
        }
    }

    /// Whether the closing handshake is completed: not with a client that is silent or gone.
    fn ends_cleanly(&self) -> bool {
        !matches!(self, End::Silent | End::Broken)
    }

    /// Logs the ends an operator may want to know of.
    fn log(&self, member: &Member) {
        let (room, name) = (member.room, member.name);
        match self {
            End::TooSlow => {
                tracing::info!(%room, %name, "chat client too slow: its queue filled; disconnected")
            }
            End::Failed(_, problem) => {
                tracing::debug!(%room, %name, %problem, "chat client broke the protocol; closing")
            }
            _ => {}
        }
    }
}

/// `reason` cut to what a Close frame holds, at a character boundary.
pub(super) fn truncated(reason: &str) -> &str {
    let mut end = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

fn error_frame(problem: &str) -> Message {
    Message::text(frames::error(problem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit_a_control_frame() {
        assert_eq!(truncated("short"), "short");
        let long = "é".repeat(100);
        let cut = truncated(&long);
        assert!(cut.len() <= MAX_REASON_BYTES && long.starts_with(cut), "{}", cut.len());
    }
}
