//! A chat client for tests: a WebSocket (tungstenite) on its own thread, so a test sends and
//! receives without ever blocking the socket; frames arrive as JSON values.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

use super::PATIENCE;

pub struct ChatClient {
    outgoing: mpsc::Sender<Message>,
    incoming: mpsc::Receiver<Event>,
    /// Set once the socket closed: the server's close frame, if it sent one.
    pub closed: Option<Option<CloseFrame>>,
}

pub enum Event {
    Frame(Value),
    Closed(Option<CloseFrame>),
}

/// Opens a raw chat socket (nobody reads it unless the test does).
pub fn open(addr: SocketAddr, room: &str, name: &str) -> WebSocket<TcpStream> {
    upgrade(TcpStream::connect(addr).unwrap(), addr, room, name)
}

/// Opens a chat socket on a connection that first asks `/info`: the pid of the process that
/// holds the socket (the same connection, so the same cluster worker).
pub fn open_telling_pid(addr: SocketAddr, room: &str, name: &str) -> (WebSocket<TcpStream>, i32) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(format!("GET /info HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).unwrap();
    let info = super::read_framed_response(&mut stream).unwrap();
    assert_eq!(info.status, 200, "{}", info.body);
    let pid = info.json()["pid"].as_i64().unwrap() as i32;
    (upgrade(stream, addr, room, name), pid)
}

/// The `/ws` URL that joins `room` as `name`, the query encoded as a browser's form would be.
pub fn url(addr: SocketAddr, room: &str, name: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("room", room)
        .append_pair("name", name)
        .finish();
    format!("ws://{addr}/ws?{query}")
}

fn upgrade(stream: TcpStream, addr: SocketAddr, room: &str, name: &str) -> WebSocket<TcpStream> {
    let url = url(addr, room, name);
    let (socket, response) =
        tungstenite::client(url, stream).unwrap_or_else(|e| panic!("chat handshake: {e}"));
    assert_eq!(response.status(), 101);
    socket
}

impl ChatClient {
    /// Joins `room` as `name` and waits for its own join notice (so it is surely in the room).
    pub fn join(addr: SocketAddr, room: &str, name: &str) -> ChatClient {
        let mut client = Self::join_only(addr, room, name);
        client.expect(&format!("{name}'s own join notice"), |f| f["event"] == "join" && f["name"] == name);
        client
    }

    /// Joins as `join` does, and says which process (cluster worker) holds the socket.
    pub fn join_telling_pid(addr: SocketAddr, room: &str, name: &str) -> (ChatClient, i32) {
        let (socket, pid) = open_telling_pid(addr, room, name);
        let mut client = Self::over(socket);
        client.expect(&format!("{name}'s own join notice"), |f| f["event"] == "join" && f["name"] == name);
        (client, pid)
    }

    /// Opens the socket without waiting for anything.
    pub fn join_only(addr: SocketAddr, room: &str, name: &str) -> ChatClient {
        Self::over(open(addr, room, name))
    }

    fn over(mut socket: WebSocket<TcpStream>) -> ChatClient {
        socket.get_mut().set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        let (outgoing, to_send) = mpsc::channel::<Message>();
        let (received, incoming) = mpsc::channel();
        std::thread::spawn(move || loop {
            loop {
                match to_send.try_recv() {
                    Ok(message) => {
                        if socket.send(message).is_err() {
                            return;
                        }
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                    // The client was dropped: leave as a browser tab closing would.
                    Err(mpsc::TryRecvError::Disconnected) => {
                        let _ = socket.close(None);
                        let _ = socket.flush();
                        return;
                    }
                }
            }
            match socket.read() {
                Ok(Message::Text(text)) => {
                    let frame =
                        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
                    if received.send(Event::Frame(frame)).is_err() {
                        return;
                    }
                }
                Ok(Message::Close(frame)) => {
                    let _ = received.send(Event::Closed(frame));
                    return;
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    let _ = received.send(Event::Closed(None));
                    return;
                }
            }
        });
        ChatClient { outgoing, incoming, closed: None }
    }

    pub fn say(&self, text: &str) {
        self.send(Message::text(serde_json::json!({ "text": text }).to_string()));
    }

    pub fn send(&self, message: Message) {
        self.outgoing.send(message).expect("the chat socket is closed");
    }

    /// The next frame that satisfies `wanted` (others are skipped), failing after PATIENCE.
    pub fn expect(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        self.try_expect(PATIENCE, wanted).unwrap_or_else(|| panic!("no frame within {PATIENCE:?}: {what}"))
    }

    pub fn try_expect(&mut self, patience: Duration, wanted: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + patience;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.incoming.recv_timeout(left) {
                Ok(Event::Frame(frame)) if wanted(&frame) => return Some(frame),
                Ok(Event::Frame(_)) => {}
                Ok(Event::Closed(frame)) => {
                    self.closed = Some(frame);
                    return None;
                }
                Err(_) => return None,
            }
        }
    }

    /// Waits for the server's close frame and returns it.
    pub fn expect_close(&mut self) -> Option<CloseFrame> {
        let deadline = Instant::now() + PATIENCE;
        while self.closed.is_none() {
            assert!(Instant::now() < deadline, "the socket was not closed within {PATIENCE:?}");
            let _ = self.try_expect(Duration::from_millis(100), |_| false);
        }
        self.closed.clone().unwrap()
    }
}

/// Flags for a slow-client test: a short queue, no rate limit in the way, big messages.
pub const SLOW_CLIENT_ARGS: [&str; 8] = [
    "--chat-queue",
    "8",
    "--chat-rate",
    "10000",
    "--chat-burst",
    "10000",
    "--chat-max-message-bytes",
    "65536",
];

/// `fast` (in a room with a client that does not read) sends big messages, reading its own echo
/// so only the other falls behind, until `app` logs `logged` (the disconnect); false if it never
/// did within 1,000 messages (64 MB, far beyond what the socket buffers hold).
pub fn flood_until_logged(app: &super::App, fast: &mut ChatClient, logged: &str) -> bool {
    let text = "x".repeat(60_000);
    for _ in 0..1000 {
        fast.say(&text);
        fast.expect("its own message back", |f| f["from"] == "fast");
        if app.logs().contains(logged) {
            return true;
        }
    }
    false
}

/// A frame as a client would write it, with `first_byte` (FIN, RSV1-3, opcode) as given and the
/// payload masked unless `masked` is false: for frames the server must refuse.
pub fn raw_frame(first_byte: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut frame = vec![first_byte];
    match payload.len() {
        len @ 0..=125 => frame.push(mask_bit | len as u8),
        len => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
    }
    let key = [0x37, 0xfa, 0x21, 0x3d];
    if masked {
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, byte)| byte ^ key[i % 4]));
    } else {
        frame.extend_from_slice(payload);
    }
    frame
}

/// How the server ended `socket`: the code of its Close frame (None if it sent none), and whether
/// it then closed the TCP connection cleanly (no reset).
pub fn server_close(socket: &mut WebSocket<TcpStream>) -> (Option<CloseCode>, bool) {
    socket.get_mut().set_read_timeout(Some(PATIENCE)).unwrap();
    let code = loop {
        match socket.read() {
            Ok(Message::Close(frame)) => break frame.map(|frame| frame.code),
            Ok(_) => continue,
            Err(_) => return (None, false),
        }
    };
    // The client's side of the handshake (tungstenite queued its Close reply), then the end.
    let _ = socket.flush();
    let clean = matches!(socket.read(), Err(tungstenite::Error::ConnectionClosed));
    (code, clean)
}
