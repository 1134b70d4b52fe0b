//! One chat client's socket, from join to close: reads its messages (size, rate, shape), writes
//! what its room receives, pings it, and closes it with 1001 when the server drains.
//!
//! Every end but a vanished peer completes RFC 6455's closing handshake, so a browser reports
//! `wasClean` and the code: a client's Close is answered with the same code (tungstenite queues
//! that echo; it goes out on the next flush, as a Close sent after it would be refused); a
//! protocol error (1002), text that is not UTF-8 (1007) or a frame too big (1009) gets a Close
//! with its code. Then the server ends the TCP connection with its lingering close
//! (src/lingering.rs), so no unread input turns the close into a reset that could lose the Close
//! frame on its way.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{watch, Notify};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::frames;
use super::limits::RateLimiter;
use super::Hub;
use crate::http::state::AppState;

/// How long the close may take (the frame going out, then the client's last bytes) before the
/// connection is simply dropped.
const CLOSE_DEADLINE: Duration = Duration::from_secs(1);
/// Longest reason in a Close frame: its payload is at most 125 bytes, 2 of them the code.
const MAX_REASON_BYTES: usize = 123;
/// Frames for this client that are not room traffic (errors, pings) waiting at once; more are
/// dropped (a client that makes errors faster than it reads them loses some of them).
const CONTROL_QUEUE: usize = 8;

/// The queue of those frames. Not an mpsc channel: its first block (32 messages, 2 KiB) would be
/// held by every socket from the start, idle or not; this holds nothing until a frame is queued.
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

/// Why a socket ends, and the close frame it gets (none when the peer cannot take one).
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
}

pub async fn serve<S>(
    app: Arc<AppState>,
    ws: WebSocketStream<S>,
    room: String,
    name: String,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let hub = &app.chat;
    let limits = hub.limits;
    // Counted in /metrics (app_chat_connections_*) for as long as the socket lives.
    let _counted = app.metrics.chat_connected();
    let mut client = hub.connect();
    client.join(&room);
    let kicked = client.kicked();
    let (mut sink, mut stream) = ws.split();
    let control = Control::default();
    let started = Instant::now();
    let last_heard = AtomicU64::new(0);
    if let Err(problem) = send(hub, &room, frames::notice(&room, "join", &name)).await {
        // The client learns at once that the room cannot be reached, not on its first message.
        control.push(error_frame(&problem));
    }

    let writer = async {
        loop {
            let message = tokio::select! {
                biased;
                message = control.next() => message,
                Some(frame) = client.frames.recv() => Message::Text(frame),
                else => return End::Broken,
            };
            if sink.send(message).await.is_err() {
                return End::Broken;
            }
        }
    };
    let reader = async {
        let mut limiter = RateLimiter::new(&limits);
        while let Some(incoming) = stream.next().await {
            last_heard.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
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
            if !limiter.allow() {
                let refusal = format!(
                    "rate limit: at most {} messages a second (bursts of {})",
                    limits.rate, limits.burst
                );
                control.push(error_frame(&refusal));
                continue;
            }
            let sent = match frames::parse(&text, limits.max_message_bytes) {
                Ok(sent) => {
                    app.metrics.chat_message();
                    send(hub, &room, frames::message(&room, &name, &sent)).await
                }
                Err(refusal) => Err(refusal),
            };
            if let Err(problem) = sent {
                control.push(error_frame(&problem));
            }
        }
        End::Broken
    };
    let pinger = async {
        let mut ticks = tokio::time::interval(limits.ping_interval);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let heard = Duration::from_millis(last_heard.load(Ordering::Relaxed));
            if started.elapsed().saturating_sub(heard) > limits.ping_interval * 2 {
                return End::Silent;
            }
            control.push(Message::Ping(Default::default()));
        }
    };

    let end = tokio::select! {
        end = writer => end,
        end = reader => end,
        end = pinger => end,
        _ = kicked => End::TooSlow,
        _ = stop.wait_for(|stopped| *stopped) => End::Draining,
    };
    let close = |code: CloseCode, reason: &str| CloseFrame { code, reason: truncated(reason).into() };
    let ends_cleanly = !matches!(end, End::Silent | End::Broken);
    let frame = match end {
        End::Draining => Some(close(CloseCode::Away, "server shutting down; reconnect")),
        End::TooSlow => {
            tracing::info!(%room, %name, "chat client too slow: its queue filled; disconnected");
            Some(close(CloseCode::Policy, "too slow: messages queued beyond the limit"))
        }
        End::Failed(code, problem) => {
            tracing::debug!(%room, %name, %problem, "chat client broke the protocol; closing");
            Some(close(code, &problem))
        }
        End::ClientClosed | End::Silent | End::Broken => None,
    };
    // On the heap, as `send`'s future: what only the end needs is not held all the socket's life.
    let _ = Box::pin(tokio::time::timeout(CLOSE_DEADLINE, async {
        let sent = match frame {
            Some(frame) => sink.send(Message::Close(Some(frame))).await,
            // The echo of the client's Close, queued by tungstenite.
            None => sink.flush().await,
        };
        if ends_cleanly && sent.is_ok() {
            if let Ok(ws) = sink.reunite(stream) {
                // Through the upgrade to the connection's LingeringClose: FIN, then the client's
                // last bytes (its own Close) read until it closes too.
                let _ = ws.into_inner().shutdown().await;
            }
        }
    }))
    .await;
    drop(client);
    let _ = send(hub, &room, frames::notice(&room, "leave", &name)).await;
}

/// Sends `frame` to `room` through the hub in a future on the heap: the relay's (a Redis query) is
/// kilobytes, and inline it would be part of every socket's task for all its life, though a socket
/// spends almost all of it not sending.
async fn send(hub: &Hub, room: &str, frame: String) -> Result<(), String> {
    Box::pin(hub.send(room, frame)).await
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
