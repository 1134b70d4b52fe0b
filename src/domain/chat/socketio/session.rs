//! One Engine.IO session from open to close, on whichever transport carries it: a WebSocket from
//! the start, or HTTP long-polling (GETs take what is queued, POSTs bring packets) until the client
//! moves it onto a WebSocket (`2probe` / `3probe`, a noop to end the pending poll, `5`). The
//! server pings every [`PING_INTERVAL`]; a client that does not answer within [`PING_TIMEOUT`] is
//! gone.
//!
//! Frames from the rooms are taken from the socket's queue only when a transport can carry them
//! (always on a WebSocket, during a pending GET when polling), so a polling client that stops
//! polling fills its queue and is disconnected as too slow, exactly as a /ws client that stops
//! reading.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::events::{Ending, Socket};
use super::packet::{self, out, Engine};
use crate::domain::chat::error::ProtocolError;
use crate::domain::chat::socket::truncated;
use crate::domain::chat::Hub;
use crate::infra::slot::ConnectionSlot;

pub(crate) const PING_INTERVAL: Duration = Duration::from_millis(25_000);
pub(crate) const PING_TIMEOUT: Duration = Duration::from_millis(20_000);
/// Packets that may wait for a polling client's next GET (acknowledgements, pings; room frames
/// wait in the socket's queue instead). A client that provokes more without polling is too slow.
const MAX_WAITING_PACKETS: usize = 64;
/// Room frames sent in one long-poll answer at most.
const FRAMES_PER_POLL: usize = 64;
/// How long the last packets of a polling session wait for a GET to carry them, and a closing
/// WebSocket for its close to go out.
const CLOSE_DEADLINE: Duration = Duration::from_secs(1);

/// A WebSocket on an upgraded HTTP connection (TCP, or the unix socket of a forwarded upgrade).
pub(crate) type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// A WebSocket, with what keeps its connection counted (`--max-connections`, the drain) for as
/// long as it is held.
pub(crate) struct WsLink {
    pub(crate) ws: Ws,
    /// Held only to be dropped with the link: the connection's place is given back then.
    pub(crate) _open: ConnectionSlot,
}

/// What a polling request (or the WebSocket of an upgrade) brings its session.
pub(crate) enum Request {
    /// A GET: answered with the waiting packets (`\x1e` between them) once there are some.
    Poll(oneshot::Sender<Result<String, String>>),
    /// A POST's packets; answered once they are handled.
    Post(String, oneshot::Sender<()>),
    /// Boxed: a WebSocket is much bigger than the other requests.
    Upgrade(Box<WsLink>),
}

/// Why a session ends, which decides what the client is told.
enum End {
    /// The client closed (Engine.IO close, Socket.IO DISCONNECT, WebSocket Close).
    ClientClosed,
    /// The transport broke or the client stopped answering pings: nobody to tell.
    Vanished,
    Draining,
    TooSlow,
    /// A packet over the WebSocket's frame limit (four times the message limit).
    TooBig,
    Refused(ProtocolError),
}

enum Transport {
    WebSocket(WsLink),
    Polling(Polling),
}

struct Polling {
    requests: mpsc::Receiver<Request>,
    /// The pending GET, if any.
    waiting: Option<oneshot::Sender<Result<String, String>>>,
    /// A WebSocket the client is probing to move onto.
    probe: Option<WsLink>,
    /// Whether the probe was answered: every GET from then on is ended at once (with a noop if
    /// nothing else), since the client waits for its poll to end before it moves over.
    probed: bool,
}

impl Polling {
    fn is_waiting(&self) -> bool {
        self.waiting.as_ref().is_some_and(|waiting| !waiting.is_closed())
    }
}

/// What woke the session.
enum Woken {
    Stop,
    Kicked,
    Heartbeat,
    Frame(Option<String>),
    Text(String),
    Ended(End),
    Request(Option<Request>),
    Probe(Probed),
}

/// What came on the WebSocket being probed.
enum Probed {
    /// `2probe`.
    Probe,
    /// `5`: move onto it.
    Upgrade,
    /// A WebSocket ping or pong.
    Control,
    /// Anything else, or its end: the upgrade failed.
    Failed,
}

struct Session {
    hub: Arc<Hub>,
    socket: Socket,
    /// Packets for the client, sent at the end of each turn of the loop.
    outbox: Vec<String>,
    /// When the next ping is due, or (when `awaiting_pong`) when the client's pong is overdue.
    heartbeat: Instant,
    awaiting_pong: bool,
    opened: Instant,
}

/// Serves a session that opened on a WebSocket (its open packet is sent here).
pub(crate) async fn serve_websocket(hub: Arc<Hub>, link: WsLink, sid: String, stop: watch::Receiver<bool>) {
    let open = super::open_packet(&sid, &[], &hub.limits);
    let mut session = Session::new(hub);
    session.outbox.push(open);
    session.run(Transport::WebSocket(link), stop).await;
}

/// Serves a polling session whose handshake the caller answers; its requests come on `requests`.
pub(crate) async fn serve_polling(
    hub: Arc<Hub>,
    requests: mpsc::Receiver<Request>,
    sid: String,
    stop: watch::Receiver<bool>,
) {
    let session = Session::new(hub.clone());
    session
        .run(Transport::Polling(Polling { requests, waiting: None, probe: None, probed: false }), stop)
        .await;
    hub.sessions.remove(&sid);
}

impl Session {
    fn new(hub: Arc<Hub>) -> Session {
        let now = Instant::now();
        Session {
            hub,
            socket: Socket::new(),
            outbox: Vec::new(),
            heartbeat: now + PING_INTERVAL,
            awaiting_pong: false,
            opened: now,
        }
    }

    async fn run(mut self, mut transport: Transport, mut stop: watch::Receiver<bool>) {
        let end = match self.flush(&mut transport).await {
            Ok(()) => self.serve(&mut transport, &mut stop).await,
            Err(end) => end,
        };
        // On the heap, as every part that runs rarely (a client's packet, a polling request, the
        // probe, the end): inline, the largest of them (a Redis publish is kilobytes) would be
        // part of every idle socket's task for all its life.
        Box::pin(self.finish(transport, end)).await;
        Box::pin(self.socket.leave_all(&self.hub)).await;
    }

    async fn serve(&mut self, transport: &mut Transport, stop: &mut watch::Receiver<bool>) -> End {
        loop {
            let can_deliver = match transport {
                Transport::WebSocket(_) => true,
                Transport::Polling(polling) => polling.is_waiting(),
            };
            let woken = tokio::select! {
                biased;
                _ = stop.wait_for(|stopped| *stopped) => Woken::Stop,
                _ = self.socket.kicked() => Woken::Kicked,
                _ = tokio::time::sleep_until(self.heartbeat) => Woken::Heartbeat,
                woken = next_inbound(transport) => woken,
                frame = self.socket.next_frame(), if can_deliver => Woken::Frame(frame),
            };
            let turn = match woken {
                Woken::Stop => Err(End::Draining),
                Woken::Kicked => Err(End::TooSlow),
                Woken::Heartbeat => self.beat(),
                Woken::Frame(None) => Err(End::Vanished),
                Woken::Frame(Some(frame)) => {
                    self.take_frames(frame);
                    Ok(())
                }
                Woken::Text(text) => Box::pin(self.receive(&text)).await,
                Woken::Ended(end) => Err(end),
                Woken::Request(None) => Err(End::Vanished),
                Woken::Request(Some(request)) => Box::pin(self.request(transport, request)).await,
                Woken::Probe(probed) => Box::pin(self.probe(transport, probed)).await,
            };
            if let Err(end) = turn {
                return end;
            }
            if let Err(end) = self.flush(transport).await {
                return end;
            }
        }
    }

    /// Puts a room frame in the outbox, and after it those already queued (a long-poll answer
    /// carries many), up to FRAMES_PER_POLL.
    fn take_frames(&mut self, frame: String) {
        self.outbox.push(frame);
        while self.outbox.len() < FRAMES_PER_POLL {
            let Some(frame) = self.socket.queued_frame() else { break };
            self.outbox.push(frame);
        }
    }

    /// The heartbeat: a ping when one is due; the end when the last one went unanswered, or
    /// when the client never sent CONNECT.
    fn beat(&mut self) -> Result<(), End> {
        if self.awaiting_pong {
            return Err(End::Vanished);
        }
        if !self.socket.is_connected() && self.opened.elapsed() >= PING_INTERVAL {
            return Err(End::Refused(ProtocolError::NoConnect(PING_INTERVAL.as_secs())));
        }
        self.outbox.push(out::PING.into());
        self.awaiting_pong = true;
        self.heartbeat = Instant::now() + PING_TIMEOUT;
        Ok(())
    }

    /// One Engine.IO packet from the client.
    async fn receive(&mut self, text: &str) -> Result<(), End> {
        match packet::engine(text).map_err(End::Refused)? {
            Engine::Message(message) => {
                self.socket.receive(&self.hub, message, &mut self.outbox).await.map_err(|ending| match ending
                {
                    Ending::Left => End::ClientClosed,
                    Ending::Refused(reason) => End::Refused(reason),
                })
            }
            Engine::Pong(_) => {
                // Heard: the next ping a full interval from now.
                self.awaiting_pong = false;
                self.heartbeat = Instant::now() + PING_INTERVAL;
                Ok(())
            }
            // Engine.IO 3 clients pinged the server; answering costs nothing.
            Engine::Ping(data) => {
                self.outbox.push(format!("3{data}"));
                Ok(())
            }
            Engine::Close => Err(End::ClientClosed),
            Engine::Upgrade | Engine::Noop => Ok(()),
        }
    }

    async fn request(&mut self, transport: &mut Transport, request: Request) -> Result<(), End> {
        let Transport::Polling(polling) = transport else { return Ok(()) };
        match request {
            Request::Poll(answer) => {
                if polling.is_waiting() {
                    // Engine.IO allows one GET at a time; a second means a confused client.
                    let _ =
                        answer.send(Err("a second GET while one is pending; the session is closed".into()));
                    return Err(End::Refused(ProtocolError::OverlappingPolls));
                }
                polling.waiting = Some(answer);
                Ok(())
            }
            Request::Post(payload, answer) => {
                let mut turn = Ok(());
                for text in payload.split('\x1e') {
                    turn = Box::pin(self.receive(text)).await;
                    if turn.is_err() {
                        break;
                    }
                }
                let _ = answer.send(());
                turn
            }
            Request::Upgrade(link) => {
                polling.probe = Some(*link);
                Ok(())
            }
        }
    }

    /// A packet on the WebSocket the client probes: `2probe` is answered `3probe` (and the pending
    /// GET is ended with a noop so the client can pause polling); `5` moves the session onto it.
    async fn probe(&mut self, transport: &mut Transport, probed: Probed) -> Result<(), End> {
        let Transport::Polling(polling) = transport else { return Ok(()) };
        let Some(link) = polling.probe.as_mut() else { return Ok(()) };
        match probed {
            Probed::Probe => {
                let answered =
                    tokio::time::timeout(PING_TIMEOUT, link.ws.send(Message::text(out::PROBE_ANSWER))).await;
                match answered {
                    Ok(Ok(())) => polling.probed = true,
                    _ => polling.probe = None,
                }
            }
            Probed::Upgrade => {
                let Some(link) = polling.probe.take() else { return Ok(()) };
                if let Some(waiting) = polling.waiting.take() {
                    let _ = waiting.send(Ok(out::NOOP.into()));
                }
                *transport = Transport::WebSocket(link);
            }
            Probed::Control => {}
            Probed::Failed => {
                polling.probe = None;
                polling.probed = false;
            }
        }
        Ok(())
    }

    /// Sends the outbox: on a WebSocket at once (a client that does not take it within
    /// PING_TIMEOUT is too slow), when polling to the pending GET if there is one.
    async fn flush(&mut self, transport: &mut Transport) -> Result<(), End> {
        if let Transport::Polling(polling) = transport {
            if polling.probed && polling.is_waiting() && self.outbox.is_empty() {
                self.outbox.push(out::NOOP.into());
            }
        }
        if self.outbox.is_empty() {
            return Ok(());
        }
        match transport {
            Transport::WebSocket(link) => self.flush_websocket(link).await,
            Transport::Polling(polling) => self.flush_polling(polling),
        }
    }

    /// Sends the outbox on the WebSocket. A client that does not read blocks the write; its
    /// queue filling meanwhile ends it at once, as on /ws.
    async fn flush_websocket(&mut self, link: &mut WsLink) -> Result<(), End> {
        let sent = tokio::time::timeout(PING_TIMEOUT, async {
            for packet in self.outbox.drain(..) {
                link.ws.feed(Message::text(packet)).await?;
            }
            link.ws.flush().await
        });
        tokio::select! {
            sent = sent => match sent {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(End::Vanished),
                Err(_) => Err(End::TooSlow),
            },
            _ = self.socket.kicked() => Err(End::TooSlow),
        }
    }

    /// Answers the pending GET, if any, with the outbox; a client that lets more than
    /// MAX_WAITING_PACKETS wait is too slow.
    fn flush_polling(&mut self, polling: &mut Polling) -> Result<(), End> {
        if polling.is_waiting() {
            let payload = self.outbox.join("\x1e");
            self.outbox.clear();
            if let Some(Err(Ok(payload))) = polling.waiting.take().map(|waiting| waiting.send(Ok(payload))) {
                // The GET went away meanwhile: the next one takes it.
                self.outbox.push(payload);
            }
        }
        if self.outbox.len() > MAX_WAITING_PACKETS {
            return Err(End::TooSlow);
        }
        Ok(())
    }

    /// Tells the client why it ends (when it can be told) and closes the transport.
    async fn finish(&mut self, transport: Transport, end: End) {
        let (code, reason) = end.close();
        end.log(&reason);
        if matches!(end, End::TooSlow | End::TooBig | End::Refused(_)) {
            self.socket.farewell(&reason, &mut self.outbox);
        }
        match transport {
            Transport::WebSocket(link) => {
                if matches!(end, End::Vanished) {
                    return;
                }
                // The echo of the client's Close is queued by tungstenite: no frame of ours.
                let frame = match end {
                    End::ClientClosed => None,
                    _ => Some(CloseFrame { code, reason: truncated(&reason).into() }),
                };
                let _ = tokio::time::timeout(CLOSE_DEADLINE, self.close_websocket(link, frame)).await;
            }
            Transport::Polling(polling) => {
                if matches!(end, End::Vanished | End::ClientClosed) {
                    return;
                }
                // Engine.IO close: a polling client ends its session on it.
                self.outbox.push(out::CLOSE.into());
                let _ = tokio::time::timeout(CLOSE_DEADLINE, self.close_polling(polling)).await;
            }
        }
    }

    /// The last packets on the WebSocket, then its Close (or the flush of the echo of the
    /// client's), then FIN through the upgrade to the connection's lingering close.
    async fn close_websocket(&mut self, mut link: WsLink, frame: Option<CloseFrame>) -> Result<(), WsError> {
        for packet in self.outbox.drain(..) {
            link.ws.feed(Message::text(packet)).await?;
        }
        match frame {
            Some(frame) => link.ws.send(Message::Close(Some(frame))).await?,
            None => link.ws.flush().await?,
        }
        let _ = link.ws.get_mut().shutdown().await;
        Ok(())
    }

    /// The last packets, to the next GET of a polling client (POSTs meanwhile are answered and
    /// dropped).
    async fn close_polling(&mut self, mut polling: Polling) {
        while !polling.is_waiting() {
            match polling.requests.recv().await {
                Some(Request::Poll(answer)) => polling.waiting = Some(answer),
                Some(Request::Post(_, answer)) => drop(answer.send(())),
                Some(Request::Upgrade(_)) => {}
                None => return,
            }
        }
        if let Some(waiting) = polling.waiting.take() {
            let _ = waiting.send(Ok(self.outbox.join("\x1e")));
        }
    }
}

impl End {
    /// The close code and reason the client is told (when it can be).
    fn close(&self) -> (CloseCode, String) {
        match self {
            End::Draining => (CloseCode::Away, "server shutting down; reconnect".to_string()),
            End::TooSlow => (CloseCode::Policy, "too slow: messages queued beyond the limit".to_string()),
            End::TooBig => (CloseCode::Size, "packet too big".to_string()),
            End::Refused(reason) => (CloseCode::Policy, reason.to_string()),
            End::ClientClosed | End::Vanished => (CloseCode::Normal, String::new()),
        }
    }

    /// Logs the ends an operator may want to know of.
    fn log(&self, reason: &str) {
        match self {
            End::TooSlow => tracing::info!("socket.io client too slow: its queue filled; disconnected"),
            End::TooBig | End::Refused(_) => tracing::debug!(%reason, "socket.io client broke the protocol"),
            _ => {}
        }
    }
}

/// The next thing the transport brings: a WebSocket's packet, or a polling request or a packet on
/// the WebSocket being probed.
async fn next_inbound(transport: &mut Transport) -> Woken {
    match transport {
        Transport::WebSocket(link) => loop {
            match link.ws.next().await {
                Some(Ok(Message::Text(text))) => return Woken::Text(text.as_str().to_string()),
                Some(Ok(Message::Binary(_))) => return Woken::Ended(End::Refused(ProtocolError::Binary)),
                Some(Ok(Message::Close(_))) => return Woken::Ended(End::ClientClosed),
                Some(Ok(_)) => continue,
                Some(Err(WsError::Capacity(_))) => return Woken::Ended(End::TooBig),
                Some(Err(WsError::Utf8(_))) => return Woken::Ended(End::Refused(ProtocolError::NotUtf8)),
                Some(Err(_)) | None => return Woken::Ended(End::Vanished),
            }
        },
        Transport::Polling(Polling { requests, probe, .. }) => {
            let probe = async {
                let Some(link) = probe.as_mut() else { return std::future::pending().await };
                match link.ws.next().await {
                    Some(Ok(Message::Text(text))) if text.as_str() == "2probe" => Probed::Probe,
                    Some(Ok(Message::Text(text))) if text.as_str() == "5" => Probed::Upgrade,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Probed::Control,
                    _ => Probed::Failed,
                }
            };
            tokio::select! {
                request = requests.recv() => Woken::Request(request),
                probed = probe => Woken::Probe(probed),
            }
        }
    }
}
