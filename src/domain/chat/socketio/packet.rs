//! The two layers of a Socket.IO connection as text: Engine.IO v4 packets (a type digit, then the
//! data: `0` open, `1` close, `2` ping, `3` pong, `4` message, `5` upgrade, `6` noop) and, inside an
//! Engine.IO message, Socket.IO v5 packets (`<type>[<namespace>,][<ack id>][<JSON>]`, types `0`
//! CONNECT, `1` DISCONNECT, `2` EVENT, `3` ACK, `4` CONNECT_ERROR, `5`/`6` binary ones).
//!
//! Only what this server speaks is parsed: text packets on the main namespace `/`. Binary packets
//! (which would be followed by attachments) are recognised to be refused.

use serde_json::{json, Value};

use crate::domain::chat::error::ProtocolError;

/// An Engine.IO packet from a client, borrowed from its frame or payload.
#[derive(Debug, PartialEq)]
pub(crate) enum Engine<'a> {
    Close,
    Ping(&'a str),
    Pong(&'a str),
    Message(&'a str),
    Upgrade,
    Noop,
}

pub(crate) fn engine(packet: &str) -> Result<Engine<'_>, ProtocolError> {
    let mut chars = packet.chars();
    let kind = chars.next().ok_or(ProtocolError::EmptyEnginePacket)?;
    let data = chars.as_str();
    match kind {
        '1' => Ok(Engine::Close),
        '2' => Ok(Engine::Ping(data)),
        '3' => Ok(Engine::Pong(data)),
        '4' => Ok(Engine::Message(data)),
        '5' => Ok(Engine::Upgrade),
        '6' => Ok(Engine::Noop),
        'b' => Err(ProtocolError::Binary),
        _ => Err(ProtocolError::EnginePacketType(kind)),
    }
}

/// A Socket.IO packet from a client.
#[derive(Debug, PartialEq)]
pub(crate) struct Packet<'a> {
    pub(crate) kind: Kind,
    /// `/` when the packet names no namespace.
    pub(crate) namespace: &'a str,
    pub(crate) ack: Option<u64>,
    /// The JSON that follows, unparsed (empty when there is none).
    pub(crate) data: &'a str,
}

#[derive(Debug, PartialEq, Clone, Copy)]
pub(crate) enum Kind {
    Connect,
    Disconnect,
    Event,
    Ack,
}

/// Splits a Socket.IO packet into its parts; the JSON is left for the caller (after the size check).
pub(crate) fn socket(packet: &str) -> Result<Packet<'_>, ProtocolError> {
    let mut chars = packet.chars();
    let kind = match chars.next() {
        Some('0') => Kind::Connect,
        Some('1') => Kind::Disconnect,
        Some('2') => Kind::Event,
        Some('3') => Kind::Ack,
        Some('5' | '6') => return Err(ProtocolError::BinaryEvent),
        Some(other) => return Err(ProtocolError::SocketPacketType(other)),
        None => return Err(ProtocolError::EmptySocketPacket),
    };
    let mut rest = chars.as_str();
    let mut namespace = "/";
    if rest.starts_with('/') {
        let (name, after) = rest.split_once(',').unwrap_or((rest, ""));
        namespace = name;
        rest = after;
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let ack = match digits {
        0 => None,
        _ => Some(rest[..digits].parse().map_err(|_| ProtocolError::AckId)?),
    };
    Ok(Packet { kind, namespace, ack, data: &rest[digits..] })
}

/// What the server sends, as Engine.IO text packets.
pub(crate) mod out {
    use super::*;

    pub(crate) const PING: &str = "2";
    pub(crate) const PROBE_ANSWER: &str = "3probe";
    pub(crate) const NOOP: &str = "6";
    pub(crate) const CLOSE: &str = "1";

    /// The Engine.IO handshake (`0{...}`): the session id, the transports it may move to, the
    /// heartbeat and the largest payload the server reads.
    pub(crate) fn open(
        sid: &str,
        upgrades: &[&str],
        ping_interval_ms: u64,
        ping_timeout_ms: u64,
        max_payload: usize,
    ) -> String {
        let handshake = json!({
            "sid": sid,
            "upgrades": upgrades,
            "pingInterval": ping_interval_ms,
            "pingTimeout": ping_timeout_ms,
            "maxPayload": max_payload,
        });
        format!("0{handshake}")
    }

    /// CONNECT accepted: the socket's own id.
    pub(crate) fn connected(socket_id: &str) -> String {
        format!("40{}", json!({ "sid": socket_id }))
    }

    /// CONNECT refused, for `namespace`; `socket.io-client` emits `connect_error` with `message`.
    pub(crate) fn connect_error(namespace: &str, message: &str) -> String {
        let body = json!({ "message": message });
        match namespace {
            "/" => format!("44{body}"),
            _ => format!("44{namespace},{body}"),
        }
    }

    /// The server ends the socket (the client's reason: "io server disconnect").
    pub(crate) const DISCONNECT: &str = "41";

    /// An event whose one argument is `json`, already encoded (frames from the rooms are).
    pub(crate) fn event(name: &str, json: &str) -> String {
        format!("42[\"{name}\",{json}]")
    }

    pub(crate) fn ack(id: u64, reply: &Value) -> String {
        format!("43{id}[{reply}]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_packets_are_told_apart() {
        assert_eq!(engine("40"), Ok(Engine::Message("0")));
        assert_eq!(engine("2probe"), Ok(Engine::Ping("probe")));
        assert_eq!(engine("3"), Ok(Engine::Pong("")));
        assert_eq!(engine("5"), Ok(Engine::Upgrade));
        assert!(engine("").is_err());
        assert!(engine("bAAEC").unwrap_err().to_string().contains("binary"));
        assert!(engine("0{}").is_err(), "a client never opens");
    }

    #[test]
    fn socket_packets_split_into_namespace_ack_and_data() {
        let event = socket(r#"212["join","lobby"]"#).unwrap();
        assert_eq!(
            event,
            Packet { kind: Kind::Event, namespace: "/", ack: Some(12), data: r#"["join","lobby"]"# }
        );
        let connect = socket(r#"0/admin,{"name":"a"}"#).unwrap();
        assert_eq!(
            (connect.kind, connect.namespace, connect.data),
            (Kind::Connect, "/admin", r#"{"name":"a"}"#)
        );
        assert_eq!(socket("1/admin").unwrap().namespace, "/admin");
        assert_eq!(socket("0").unwrap(), Packet { kind: Kind::Connect, namespace: "/", ack: None, data: "" });
        let binary = socket(r#"51-["up",{"_placeholder":true,"num":0}]"#).unwrap_err();
        assert_eq!(binary.to_string(), "binary packets are not accepted: send JSON without binary data");
        assert!(socket("9").is_err());
        assert!(socket("299999999999999999999999[]").is_err());
    }

    #[test]
    fn server_packets_are_what_the_client_parses() {
        assert_eq!(out::event("message", r#"{"a":1}"#), r#"42["message",{"a":1}]"#);
        assert_eq!(out::ack(3, &json!({ "ok": true })), r#"433[{"ok":true}]"#);
        assert_eq!(out::connect_error("/x", "no"), r#"44/x,{"message":"no"}"#);
        assert!(out::open("s", &["websocket"], 25000, 20000, 10).starts_with(r#"0{"#));
    }
}
