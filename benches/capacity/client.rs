//! The load client's sockets: one chat member over `/ws` (this project's JSON frames) or over
//! Socket.IO v4 on its WebSocket transport (Engine.IO 4 framing: `0` open, `40` connect, `42` event,
//! `43` ack, `2`/`3` ping/pong), so the same load drives our server and Node's Socket.IO alike.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{client_async_with_config, WebSocketStream};

/// The longest a handshake (WebSocket and, for Socket.IO, connect and join) may take.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Protocol {
    /// `GET /ws?room=&name=`: joined by the handshake.
    Ws,
    /// `GET /socket.io/?EIO=4&transport=websocket`, `auth: {name}`, then `join` acknowledged.
    SocketIo,
}

impl Protocol {
    pub fn parse(word: &str) -> Option<Protocol> {
        match word {
            "ws" => Some(Protocol::Ws),
            "socketio" => Some(Protocol::SocketIo),
            _ => None,
        }
    }
}

pub type Socket = WebSocketStream<TcpStream>;

/// What a member read from its socket.
pub enum Incoming {
    /// A chat message's text.
    Message(String),
    /// Something to answer at once (an Engine.IO ping's pong).
    Reply(&'static str),
    /// Anything else: presence, acknowledgements.
    Other,
}

/// Connects from `source` (a loopback address of its own, so 10,000 sockets need not share one
/// address's ephemeral ports) and joins `room` as `name`.
pub async fn join(
    protocol: Protocol,
    server: SocketAddr,
    source: IpAddr,
    room: &str,
    name: &str,
) -> Result<Socket, String> {
    tokio::time::timeout(HANDSHAKE_DEADLINE, async {
        let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
        socket.bind(SocketAddr::new(source, 0)).map_err(|e| format!("bind {source}: {e}"))?;
        let stream = socket.connect(server).await.map_err(|e| format!("connect {server}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        // tungstenite's default read buffer is 128 KiB, zeroed on every read: 10,000 of them would
        // make the client the bottleneck (and a 1.3 GB one).
        let config = WebSocketConfig::default().read_buffer_size(4096);
        let url = match protocol {
            Protocol::Ws => format!("ws://{server}/ws?room={room}&name={name}"),
            Protocol::SocketIo => format!("ws://{server}/socket.io/?EIO=4&transport=websocket"),
        };
        let (mut socket, _) =
            client_async_with_config(url, stream, Some(config)).await.map_err(|e| e.to_string())?;
        if protocol == Protocol::SocketIo {
            socket_io_join(&mut socket, room, name).await?;
        }
        Ok(socket)
    })
    .await
    .map_err(|_| format!("no handshake within {HANDSHAKE_DEADLINE:?}"))?
}

/// Engine.IO open, Socket.IO connect with `auth: {name}`, `join` with ack id 0, its `{ok: true}`.
async fn socket_io_join(socket: &mut Socket, room: &str, name: &str) -> Result<(), String> {
    expect(socket, |text| text.starts_with('0')).await?;
    send(socket, format!("40{}", serde_json::json!({ "name": name }))).await?;
    expect(socket, |text| text.starts_with("40") || text.starts_with("44")).await.and_then(|text| {
        if text.starts_with("44") {
            Err(format!("connect refused: {text}"))
        } else {
            Ok(text)
        }
    })?;
    send(socket, format!("420{}", serde_json::json!(["join", room]))).await?;
    let ack = expect(socket, |text| text.starts_with("430")).await?;
    if !ack.contains("\"ok\":true") {
        return Err(format!("join refused: {ack}"));
    }
    Ok(())
}

/// Reads until a text frame `wanted` accepts (answering pings meanwhile).
async fn expect(socket: &mut Socket, wanted: impl Fn(&str) -> bool) -> Result<String, String> {
    while let Some(frame) = socket.next().await {
        match frame.map_err(|e| e.to_string())? {
            Message::Text(text) if wanted(&text) => return Ok(text.to_string()),
            Message::Text(text) if text.as_str() == "2" => send(socket, "3".into()).await?,
            Message::Close(frame) => return Err(format!("closed: {frame:?}")),
            _ => {}
        }
    }
    Err("the socket ended".into())
}

async fn send(socket: &mut Socket, text: String) -> Result<(), String> {
    socket.send(Message::text(text)).await.map_err(|e| e.to_string())
}

/// The frame that sends `text` to `room`.
pub fn message(protocol: Protocol, room: &str, text: &str) -> Message {
    let body = match protocol {
        Protocol::Ws => serde_json::json!({ "text": text }).to_string(),
        Protocol::SocketIo => format!("42{}", serde_json::json!(["message", { "room": room, "text": text }])),
    };
    Message::text(body)
}

/// What a received text frame is.
pub fn read(protocol: Protocol, frame: &str) -> Incoming {
    let event = match protocol {
        Protocol::Ws => serde_json::from_str::<serde_json::Value>(frame).ok(),
        Protocol::SocketIo => {
            if frame == "2" {
                return Incoming::Reply("3");
            }
            let Some(payload) = frame.strip_prefix("42") else { return Incoming::Other };
            let Ok(serde_json::Value::Array(parts)) = serde_json::from_str(payload) else {
                return Incoming::Other;
            };
            if parts.first().and_then(|p| p.as_str()) != Some("message") {
                return Incoming::Other;
            }
            parts.into_iter().nth(1)
        }
    };
    match event.as_ref().and_then(|e| e["text"].as_str()) {
        Some(text) => Incoming::Message(text.to_string()),
        None => Incoming::Other,
    }
}
