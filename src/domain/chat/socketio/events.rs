//! One Socket.IO socket's chat, whatever carries it: CONNECT with `auth: { name }`, then the events
//! `join`, `leave` and `message`, each acknowledged `{"ok": true}` or `{"error": "..."}`. What the
//! rooms deliver (the /ws JSON frames, see CONTRACTS) goes out as the events `message` and
//! `presence` with the same objects, so both protocols share one room namespace.

use serde::Deserialize;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::packet::{self, out, Kind};
use crate::domain::chat::error::{AuthError, EventError, ProtocolError};
use crate::domain::chat::limits::RateLimiter;
use crate::domain::chat::rooms::Client;
use crate::domain::chat::{frames, Hub};
use crate::infra::metrics::ChatConnection;

/// Why a packet ends the socket.
#[derive(Debug)]
pub(crate) enum Ending {
    /// The client said DISCONNECT.
    Left,
    /// The client broke the protocol; it is told why ([`Socket::farewell`]) and disconnected.
    Refused(ProtocolError),
}

pub(crate) struct Socket {
    connected: Option<Connected>,
}

/// A socket past its CONNECT: a name, and a place in the rooms.
struct Connected {
    name: String,
    client: Client,
    limiter: RateLimiter,
    _counted: ChatConnection,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sent {
    room: String,
    text: String,
}

impl Socket {
    pub(crate) fn new() -> Socket {
        Socket { connected: None }
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.connected.is_some()
    }

    /// The next frame the rooms deliver to this socket, as the Engine.IO packet that carries it
    /// (never resolves before CONNECT).
    pub(crate) async fn next_frame(&mut self) -> Option<String> {
        match &mut self.connected {
            Some(connected) => connected.client.frames.recv().await.map(|frame| as_event(&frame)),
            None => std::future::pending().await,
        }
    }

    /// A frame already queued, if any (to send several in one long-poll answer).
    pub(crate) fn queued_frame(&mut self) -> Option<String> {
        let connected = self.connected.as_mut()?;
        connected.client.frames.try_recv().ok().map(|frame| as_event(&frame))
    }

    /// Resolves when the rooms found this socket's queue full (never before CONNECT).
    pub(crate) fn kicked(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let kicked = self.connected.as_ref().map(|connected| connected.client.kicked());
        async move {
            match kicked {
                Some(kicked) => kicked.await,
                None => std::future::pending().await,
            }
        }
    }

    /// Acts on one Socket.IO packet; what the server answers is pushed to `outbox`. An `Err`
    /// ends the socket.
    pub(crate) async fn receive(
        &mut self,
        hub: &Hub,
        text: &str,
        outbox: &mut Vec<String>,
    ) -> Result<(), Ending> {
        let packet = packet::socket(text).map_err(Ending::Refused)?;
        if packet.namespace != "/" {
            // As the Node server answers a namespace it does not have; the socket stays open.
            if packet.kind == Kind::Connect {
                outbox.push(out::connect_error(packet.namespace, "Invalid namespace"));
                return Ok(());
            }
            return Err(Ending::Refused(ProtocolError::Namespace(packet.namespace.into())));
        }
        match (packet.kind, &mut self.connected) {
            (Kind::Connect, None) => {
                self.connect(hub, packet.data, outbox);
                Ok(())
            }
            (Kind::Connect, Some(_)) => Err(Ending::Refused(ProtocolError::ConnectTwice)),
            (_, None) => Err(Ending::Refused(ProtocolError::NotConnected)),
            (Kind::Disconnect, Some(_)) => Err(Ending::Left),
            (Kind::Ack, Some(_)) => Err(Ending::Refused(ProtocolError::Ack)),
            (Kind::Event, Some(connected)) => {
                let reply = connected.event(hub, text.len(), packet.data).await;
                match (packet.ack, reply) {
                    (Some(id), reply) => outbox.push(out::ack(id, &reply)),
                    // Without an acknowledgement to carry it, a refusal still reaches the client.
                    (None, reply) if reply.get("error").is_some() => {
                        outbox.push(out::event("error", &reply.to_string()))
                    }
                    (None, _) => {}
                }
                Ok(())
            }
        }
    }

    /// CONNECT: the socket gets its name and a place in the rooms, or (a name that is not one) a
    /// CONNECT_ERROR that says why, and may try again.
    fn connect(&mut self, hub: &Hub, auth: &str, outbox: &mut Vec<String>) {
        match connect_name(auth) {
            Ok(name) => {
                let connected = Connected {
                    name,
                    client: hub.connect(),
                    limiter: RateLimiter::new(&hub.limits),
                    _counted: hub.metrics.chat_connected(),
                };
                self.connected = Some(connected);
                outbox.push(out::connected(&super::random_id()));
            }
            Err(problem) => outbox.push(out::connect_error("/", &problem.to_string())),
        }
    }

    /// The last packets of a socket the server ends: an `error` event with the reason (the same
    /// `{"error": ...}` as /ws sends) and DISCONNECT; before CONNECT, a CONNECT_ERROR with it.
    pub(crate) fn farewell(&self, reason: &str, outbox: &mut Vec<String>) {
        if self.is_connected() {
            outbox.push(out::event("error", &frames::error(reason)));
            outbox.push(out::DISCONNECT.into());
        } else {
            outbox.push(out::connect_error("/", reason));
        }
    }

    /// Leaves every room, telling each (after leaving, so the socket gets no notice of its own).
    pub(crate) async fn leave_all(self, hub: &Hub) {
        let Some(connected) = self.connected else { return };
        let Connected { name, client, .. } = connected;
        let rooms = client.joined().to_vec();
        drop(client);
        for room in rooms {
            let _ = hub.send(&room, frames::notice(&room, "leave", &name)).await;
        }
    }
}

impl Connected {
    /// Runs one event; the acknowledgement it earns.
    async fn event(&mut self, hub: &Hub, size: usize, data: &str) -> Value {
        let limits = hub.limits;
        if size > limits.max_message_bytes {
            return refusal(EventError::TooBig { size, limit: limits.max_message_bytes });
        }
        if !self.limiter.allow() {
            return refusal(EventError::RateLimited { rate: limits.rate, burst: limits.burst });
        }
        let outcome = match serde_json::from_str::<Vec<Value>>(data) {
            Ok(args) => match args.split_first() {
                Some((Value::String(event), args)) => self.run(hub, event, args).await,
                _ => Err(EventError::Unnamed),
            },
            Err(problem) => Err(EventError::NotAnArray(problem)),
        };
        match outcome {
            Ok(()) => json!({ "ok": true }),
            Err(problem) => refusal(problem),
        }
    }

    async fn run(&mut self, hub: &Hub, event: &str, args: &[Value]) -> Result<(), EventError> {
        match (event, args) {
            ("join", [Value::String(room)]) => self.join(hub, room).await,
            ("leave", [Value::String(room)]) => self.leave(hub, room).await,
            ("message", [message]) => self.message(hub, message).await,
            ("join" | "leave", _) => Err(EventError::RoomArgument(event.into())),
            ("message", _) => Err(EventError::MessageArgument),
            _ => Err(EventError::Unknown(event.into())),
        }
    }

    /// `join`: enters the room (at most `--chat-rooms-per-socket` at once) and tells it.
    async fn join(&mut self, hub: &Hub, room: &str) -> Result<(), EventError> {
        let room = frames::valid_name("room", Some(room))?;
        if self.client.is_in(&room) {
            return Ok(());
        }
        let most = hub.limits.rooms_per_socket;
        if self.client.joined().len() >= most {
            return Err(EventError::TooManyRooms(most));
        }
        self.client.join(&room);
        let told = hub.send(&room, frames::notice(&room, "join", &self.name)).await;
        if told.is_err() {
            // Not announced, so not joined: the client may try again.
            self.client.leave(&room);
        }
        Ok(told?)
    }

    /// `leave`: leaves the room and tells it.
    async fn leave(&mut self, hub: &Hub, room: &str) -> Result<(), EventError> {
        if !self.client.leave(room) {
            return Err(EventError::NotInRoom(room.into()));
        }
        Ok(hub.send(room, frames::notice(room, "leave", &self.name)).await?)
    }

    /// `message`: `{"room", "text"}` to a room the socket is in.
    async fn message(&mut self, hub: &Hub, message: &Value) -> Result<(), EventError> {
        let sent = Sent::deserialize(message).map_err(EventError::NotAMessage)?;
        if !self.client.is_in(&sent.room) {
            return Err(EventError::NotJoined(sent.room));
        }
        if sent.text.trim().is_empty() {
            return Err(EventError::EmptyText);
        }
        hub.metrics.chat_message();
        Ok(hub.send(&sent.room, frames::message(&sent.room, &self.name, &sent.text)).await?)
    }
}

fn refusal(problem: EventError) -> Value {
    json!({ "error": problem.to_string() })
}

/// The name in CONNECT's auth object, checked as /ws checks its `name`.
fn connect_name(data: &str) -> Result<String, AuthError> {
    let auth: Value = match data {
        "" => Value::Null,
        data => serde_json::from_str(data).map_err(AuthError::NotJson)?,
    };
    match auth.get("name") {
        None | Some(Value::Null) => Err(AuthError::NoName),
        Some(Value::String(name)) => Ok(frames::valid_name("name", Some(name))?),
        Some(_) => Err(AuthError::NotAString),
    }
}

/// A room's frame as the event that carries it: presence notices are the frames with an `event`
/// field, which comes first in their text (serde_json writes keys in order; see CONTRACTS.md).
fn as_event(frame: &Utf8Bytes) -> String {
    let event = if frame.as_str().starts_with(r#"{"event":"#) { "presence" } else { "message" };
    out::event(event, frame.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_comes_from_the_auth_object() {
        assert_eq!(connect_name(r#"{"name":"alice"}"#).ok(), Some("alice".into()));
        let error = |auth| connect_name(auth).unwrap_err().to_string();
        assert_eq!(error(""), r#"name is required: connect with auth: { name: "..." }"#);
        assert!(error(r#"{"name":7}"#).contains("string"));
        assert!(error(r#"{"name":"a b"}"#).contains("letters"));
        assert!(error("{").contains("JSON"));
    }

    #[test]
    fn room_frames_become_their_events() {
        let notice = frames::notice("lobby", "join", "alice");
        assert!(as_event(&notice.into()).starts_with(r#"42["presence",{"event":"join""#));
        let message = frames::message("lobby", "alice", "hi");
        assert!(as_event(&message.into()).starts_with(r#"42["message",{"from":"alice""#));
    }
}
