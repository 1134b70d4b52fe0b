//! `GET /ws?room=NAME&name=USER`: the WebSocket handshake of a chat socket. Names are checked before
//! upgrading, so a bad one is a plain 400 the client can read.

use std::sync::Arc;

use hyper::header::{
    HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use super::query::Query;
use super::{error, Body, Response};
use crate::domain::chat;
use crate::http::body::RequestBody;
use crate::http::connections::ConnectionContext;
use crate::http::state::AppState;

pub fn upgrade(app: Arc<AppState>, req: Request<RequestBody>, query: &Query) -> Response {
    let names = chat::valid_name("room", query.get("room"))
        .and_then(|room| Ok((room, chat::valid_name("name", query.get("name"))?)));
    let (room, name) = match names {
        Ok(names) => names,
        Err(problem) => return error(StatusCode::BAD_REQUEST, &problem.to_string()),
    };
    let max_message_bytes = app.chat.limits.max_message_bytes;
    accept_websocket(req, max_message_bytes, move |ws, context| async move {
        // Kept until the socket ends: the connection stays counted and the drain waits for it.
        let ConnectionContext { stop, open } = context;
        chat::serve(app, ws, room, name, stop).await;
        drop(open);
    })
}

/// A WebSocket connection on `req`'s upgrade, served by `serve` once the 101 went out; else the
/// 4xx that says what is missing. `serve` gets the connection's context, to watch the stop and
/// keep the connection counted for as long as it holds `open`.
pub fn accept_websocket<F, Served>(
    mut req: Request<RequestBody>,
    max_message_bytes: usize,
    serve: F,
) -> Response
where
    F: FnOnce(chat::socketio::Ws, ConnectionContext) -> Served + Send + 'static,
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
        let mut response = error(
            StatusCode::UPGRADE_REQUIRED,
            "this is a WebSocket endpoint: send an Upgrade: websocket request",
        );
        response.headers_mut().insert(UPGRADE, HeaderValue::from_static("websocket"));
        return response;
    }
    if headers.get(SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
        return error(StatusCode::BAD_REQUEST, "only WebSocket version 13 is spoken");
    }
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else {
        return error(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing");
    };
    let accept = derive_accept_key(key.as_bytes());
    let Some(context) = req.extensions().get::<ConnectionContext>().cloned() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "this connection cannot be upgraded");
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let config = socket_config(max_message_bytes);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                    .await;
                serve(ws, context).await;
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
    response
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
