//! Why chat refuses something, as types: a name (a 400 before the upgrade, a refused join or
//! CONNECT), a message or an event (an error frame or acknowledgement; the socket stays open), or
//! a send the relay could not make. Each Display text is what the client reads, so tests and
//! clients rely on it word for word.

use std::time::Duration;

use thiserror::Error;

use super::frames::MAX_NAME_CHARS;
use crate::infra::bus_wire::WireError;

/// A room or user name that is not one (`what` says which: `room` or `name`).
#[derive(Debug, Error, PartialEq)]
pub(crate) enum NameError {
    #[error("{what} is required (?room=NAME&name=USER)")]
    Missing { what: &'static str },
    #[error("{what} must have 1 to {MAX_NAME_CHARS} characters, not {chars}")]
    Length { what: &'static str, chars: usize },
    #[error("{what} may hold letters, digits, `-`, `_` and `.`, not {bad:?}")]
    Character { what: &'static str, bad: char },
}

/// A frame that did not reach its room, and whether it may still: the sender is told which, so it
/// knows whether a plain retry may deliver it twice.
#[derive(Debug, Error)]
pub(crate) enum SendError {
    #[error("chat relay (Redis) is unreachable; message not delivered, try again shortly")]
    RedisUnreachable,
    #[error(
        "chat relay (Redis) did not answer in time; delivery unknown: the message may still reach the room"
    )]
    RedisUnknown,
    #[error(
        "chat bus to the cluster primary is closed; message not delivered, reconnect to reach another worker"
    )]
    BusClosed,
    #[error("message not delivered: {0}")]
    BusFrame(WireError),
    #[error("chat bus to the cluster primary took over {0:?}; message not delivered, try again shortly")]
    BusStuck(Duration),
}

/// A /ws client's frame that is not passed on; the client gets it as an error frame.
#[derive(Debug, Error)]
pub(crate) enum Refusal {
    #[error("rate limit: at most {rate} messages a second (bursts of {burst})")]
    RateLimited { rate: u32, burst: u32 },
    #[error("message of {size} bytes is larger than the limit of {limit} bytes")]
    TooBig { size: usize, limit: usize },
    #[error("send a JSON object {{\"text\": \"...\"}}: {0}")]
    NotJson(serde_json::Error),
    #[error("text must not be empty")]
    EmptyText,
    #[error(transparent)]
    NotSent(#[from] SendError),
}

/// A Socket.IO event that is refused; the client reads why in its acknowledgement (or, without
/// one, in an `error` event), and the socket stays open.
#[derive(Debug, Error)]
pub(crate) enum EventError {
    #[error("packet of {size} bytes is larger than the limit of {limit} bytes")]
    TooBig { size: usize, limit: usize },
    #[error("rate limit: at most {rate} events a second (bursts of {burst})")]
    RateLimited { rate: u32, burst: u32 },
    #[error("an event is a JSON array: {0}")]
    NotAnArray(serde_json::Error),
    #[error("an event is a JSON array that starts with its name")]
    Unnamed,
    #[error("unknown event {0:?}: the events are join, leave and message")]
    Unknown(String),
    /// `join` or `leave` without exactly one string.
    #[error("{0} takes one argument: the room's name")]
    RoomArgument(String),
    #[error("message takes one argument: {{\"room\", \"text\"}}")]
    MessageArgument,
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("a socket may be in at most {0} rooms; leave one first")]
    TooManyRooms(usize),
    #[error("not in room {0:?}")]
    NotInRoom(String),
    #[error("send {{\"room\": \"...\", \"text\": \"...\"}}: {0}")]
    NotAMessage(serde_json::Error),
    #[error("join room {0:?} before sending to it")]
    NotJoined(String),
    #[error("text must not be empty")]
    EmptyText,
    #[error(transparent)]
    NotSent(#[from] SendError),
}

/// How a Socket.IO client names itself, in the errors of a CONNECT that does not.
const HOW: &str = "connect with auth: { name: \"...\" }";

/// A CONNECT whose auth object gives no usable name; answered with CONNECT_ERROR.
#[derive(Debug, Error)]
pub(crate) enum AuthError {
    #[error("the auth is not JSON ({0}): {HOW}")]
    NotJson(serde_json::Error),
    #[error("name is required: {HOW}")]
    NoName,
    #[error("name must be a string: {HOW}")]
    NotAString,
    #[error(transparent)]
    Name(#[from] NameError),
}

/// How a Socket.IO client broke the protocol: the reason it is disconnected with (in its `error`
/// event or CONNECT_ERROR, and in the WebSocket's Close).
#[derive(Debug, Error, PartialEq)]
pub(crate) enum ProtocolError {
    #[error("an empty Engine.IO packet")]
    EmptyEnginePacket,
    #[error("{0:?} is not an Engine.IO packet type a client sends")]
    EnginePacketType(char),
    /// An Engine.IO binary packet, or a binary WebSocket frame.
    #[error("binary packets are not accepted: send text")]
    Binary,
    #[error("text frame is not valid UTF-8")]
    NotUtf8,
    #[error("an empty Socket.IO packet")]
    EmptySocketPacket,
    #[error("{0:?} is not a Socket.IO packet type a client sends")]
    SocketPacketType(char),
    #[error("binary packets are not accepted: send JSON without binary data")]
    BinaryEvent,
    #[error("an acknowledgement id beyond 64 bits")]
    AckId,
    #[error("namespace {0} is not served: use /")]
    Namespace(String),
    #[error("send CONNECT (with auth: {{ name }}) before anything else")]
    NotConnected,
    #[error("CONNECT sent twice")]
    ConnectTwice,
    #[error("the server asks for no acknowledgements")]
    Ack,
    #[error("no Socket.IO CONNECT within {0} s of opening")]
    NoConnect(u64),
    /// Engine.IO allows one GET at a time.
    #[error("overlapping GET requests")]
    OverlappingPolls,
}
