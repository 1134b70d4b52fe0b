//! One chat client's socket, from join to close: reads its messages (size, rate, shape), writes
//! what its room receives, pings it, and closes it with 1001 when the server drains.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::frames;
use super::limits::RateLimiter;
use crate::state::AppState;

/// How long a close frame may take to go out before the connection is simply dropped.
const CLOSE_DEADLINE: Duration = Duration::from_secs(1);

/// Why a socket ends, and the close frame it gets (none when the peer cannot take one).
enum End {
    ClientClosed,
    Draining,
    TooSlow,
    Silent,
    TooBig,
    Broken,
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
    let mut membership = hub.join(&room);
    let (mut sink, mut stream) = ws.split();
    // Frames for this client that are not room traffic (errors, pings): small, and dropped when full.
    let (control_tx, mut control) = mpsc::channel::<Message>(8);
    let started = Instant::now();
    let last_heard = AtomicU64::new(0);
    if let Err(problem) = hub.send(&room, frames::notice(&room, "join", &name)).await {
        // The client learns at once that the room cannot be reached, not on its first message.
        let _ = control_tx.try_send(error_frame(&problem));
    }

    let writer = async {
        loop {
            let message = tokio::select! {
                biased;
                Some(message) = control.recv() => message,
                Some(frame) = membership.frames.recv() => Message::Text(frame),
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
                    let _ = control_tx.try_send(error_frame("send text frames holding JSON, not binary"));
                    continue;
                }
                Ok(Message::Close(_)) => return End::ClientClosed,
                Ok(_) => continue, // Pings are answered by tungstenite; pongs only count as heard.
                Err(WsError::Capacity(_)) => return End::TooBig,
                Err(_) => return End::Broken,
            };
            if !limiter.allow() {
                let refusal = format!(
                    "rate limit: at most {} messages a second (bursts of {})",
                    limits.rate, limits.burst
                );
                let _ = control_tx.try_send(error_frame(&refusal));
                continue;
            }
            let sent = match frames::parse(&text, limits.max_message_bytes) {
                Ok(sent) => {
                    app.metrics.chat_message();
                    hub.send(&room, frames::message(&room, &name, &sent)).await
                }
                Err(refusal) => Err(refusal),
            };
            if let Err(problem) = sent {
                let _ = control_tx.try_send(error_frame(&problem));
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
            let _ = control_tx.try_send(Message::Ping(Default::default()));
        }
    };

    let end = tokio::select! {
        end = writer => end,
        end = reader => end,
        end = pinger => end,
        _ = membership.kicked.notified() => End::TooSlow,
        _ = stop.wait_for(|stopped| *stopped) => End::Draining,
    };
    let close = |code: CloseCode, reason: &'static str| Some(CloseFrame { code, reason: reason.into() });
    let frame = match end {
        End::Draining => close(CloseCode::Away, "server shutting down; reconnect"),
        End::TooSlow => {
            tracing::info!(%room, %name, "chat client too slow: its queue filled; disconnected");
            close(CloseCode::Policy, "too slow: messages queued beyond the limit")
        }
        End::TooBig => close(CloseCode::Size, "message too big"),
        End::ClientClosed => close(CloseCode::Normal, ""),
        End::Silent | End::Broken => None,
    };
    if let Some(frame) = frame {
        let _ = tokio::time::timeout(CLOSE_DEADLINE, sink.send(Message::Close(Some(frame)))).await;
    }
    drop(membership);
    let _ = hub.send(&room, frames::notice(&room, "leave", &name)).await;
}

fn error_frame(problem: &str) -> Message {
    Message::text(frames::error(problem))
}
