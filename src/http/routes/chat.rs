//! `GET /ws?room=NAME&name=USER`: the WebSocket handshake of a chat socket. Names are checked before
//! upgrading, so a bad one is a plain 400 the client can read.

use hyper::header::{
    HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::domain::chat;
use crate::http::context::{Connection, Ctx};
use crate::http::error::{chat_refused, HttpError};
use crate::http::response::{Answer, Body};

pub(crate) async fn upgrade<B>(ctx: &Ctx, req: Request<B>) -> Answer {
    let room = chat::valid_name("room", ctx.query.get("room")).map_err(chat_refused)?;
    let name = chat::valid_name("name", ctx.query.get("name")).map_err(chat_refused)?;
    let hub = ctx.app.chat.clone();
    let max_message_bytes = hub.limits.max_message_bytes;
    accept_websocket(ctx, req, max_message_bytes, move |ws, connection| async move {
        // Kept until the socket ends: the connection stays counted and the drain waits for it.
        let Connection { stop, open, .. } = connection;
        chat::serve(hub, ws, room, name, stop).await;
        drop(open);
    })
}

/// A WebSocket connection on `req`'s upgrade, served by `serve` once the 101 went out; else the
/// 4xx that says what is missing. `serve` gets the request's connection, to watch the stop and
/// keep the connection counted for as long as it holds `open`.
pub(crate) fn accept_websocket<B, F, Served>(
    ctx: &Ctx,
    mut req: Request<B>,
    max_message_bytes: usize,
    serve: F,
) -> Answer
where
    F: FnOnce(chat::socketio::Ws, Connection) -> Served + Send + 'static,
    Served: std::future::Future<Output = ()> + Send,
{
    let headers = req.headers();
    let has_token = |name, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|part| part.trim().eq_ignore_ascii_case(token)))
    };
    if !has_token(UPGRADE, "websocket") || !has_token(CONNECTION, "upgrade") {
        return Err(HttpError::UpgradeRequired);
    }
    if headers.get(SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
        return Err(HttpError::BadRequest("only WebSocket version 13 is spoken".into()));
    }
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else {
        return Err(HttpError::BadRequest("Sec-WebSocket-Key is missing".into()));
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    let config = socket_config(max_message_bytes);
    let connection = ctx.connection.clone();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                    .await;
                serve(ws, connection).await;
            }
            Err(problem) => tracing::debug!(%problem, "websocket upgrade failed"),
        }
    });
    let mut response = hyper::Response::new(Body::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    Ok(response)
}

/// Small buffers, since most sockets are idle most of the time: a 256-byte read buffer (a bigger
/// frame grows it as needed) measured 0.8 KiB less per idle socket than 1 KiB, and 1 KiB 3 KiB less
/// than 4 KiB (`cargo bench --bench capacity -- idle ws`); writes go straight out.
/// A frame above four times the message limit is not even read (the socket closes with 1009); one
/// above the limit gets an error frame. The write buffer must hold the largest frame sent (a message
/// of the limit with its room, sender and time): tungstenite refuses a bigger one, which ended the
/// receiving socket.
fn socket_config(max_message_bytes: usize) -> WebSocketConfig {
    let hard_limit = max_message_bytes * 4;
    WebSocketConfig::default()
        .read_buffer_size(256)
        .write_buffer_size(0)
        .max_write_buffer_size(max_message_bytes + 64 * 1024)
        .max_message_size(Some(hard_limit))
        .max_frame_size(Some(hard_limit))
}
