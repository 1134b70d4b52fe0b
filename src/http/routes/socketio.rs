//! `/socket.io/?EIO=4&transport=polling|websocket[&sid=...]`: the HTTP side of Socket.IO. A GET
//! without `sid` opens a session (a long-polling handshake, or a WebSocket that starts with the
//! open packet); with `sid`, GETs long-poll, POSTs bring packets, and a WebSocket GET moves the
//! session onto a WebSocket. Malformed requests get a 400 with the JSON error of every route.

use std::sync::Arc;

use hyper::{Method, Request, StatusCode};
use tokio::sync::{mpsc, oneshot};

use super::chat::accept_websocket;
use super::forward;
use super::query::Query;
use super::{error, with_type, Response};
use crate::domain::chat::socketio::{self, Request as SessionRequest, WsLink};
use crate::http::body::{collect_limited, RequestBody};
use crate::http::connections::ConnectionContext;
use crate::http::state::AppState;

const PAYLOAD_TYPE: &str = "text/plain; charset=UTF-8";

/// What the query says: the transport and the session, once EIO=4 is checked.
struct Params<'a> {
    websocket: bool,
    sid: Option<&'a str>,
}

impl<'a> Params<'a> {
    /// The parameters, or why the request is a 400.
    fn parse(query: &'a Query) -> Result<Params<'a>, &'static str> {
        if query.get("EIO") != Some("4") {
            return Err("only Engine.IO 4 is spoken (EIO=4: socket.io-client 3 or 4)");
        }
        let websocket = match query.get("transport") {
            Some("polling") => false,
            Some("websocket") => true,
            _ => return Err("transport must be polling or websocket"),
        };
        Ok(Params { websocket, sid: query.get("sid") })
    }
}

pub async fn handle(app: Arc<AppState>, req: Request<RequestBody>, query: &Query) -> Response {
    let params = match Params::parse(query) {
        Ok(params) => params,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem),
    };
    // A cluster's workers share one socket, so a session's requests land on any of them: each
    // goes on to the worker that owns the session.
    let owner = params.sid.and_then(socketio::owner_of);
    if let (Some(owner), Some(me)) = (owner, app.placement.worker) {
        if owner != me {
            return forward::to_worker(&app.placement, owner, req).await;
        }
    }
    local(app, req, params).await
}

/// A request another worker passed on (see forward.rs): served here, whoever the owner.
pub async fn forwarded(app: Arc<AppState>, req: Request<RequestBody>) -> Response {
    let query = match Query::parse(req.uri().query()) {
        Ok(query) => query,
        Err(problem) => return error(StatusCode::BAD_REQUEST, &problem),
    };
    match Params::parse(&query) {
        Ok(params) => local(app, req, params).await,
        Err(problem) => error(StatusCode::BAD_REQUEST, problem),
    }
}

async fn local(app: Arc<AppState>, req: Request<RequestBody>, params: Params<'_>) -> Response {
    let Params { websocket, sid } = params;
    let Some(sid) = sid else {
        return match (websocket, req.method()) {
            (true, &Method::GET) => open_websocket(app, req),
            (false, &Method::GET) => open_polling(&app, &req),
            _ => error(StatusCode::BAD_REQUEST, "a POST needs its session's id (sid)"),
        };
    };
    let Some(session) = app.chat.sessions.get(sid) else {
        return error(StatusCode::BAD_REQUEST, "unknown session id (sid): open a new session");
    };
    match (websocket, req.method()) {
        (true, &Method::GET) => upgrade(app, req, session),
        (false, &Method::GET) => poll(session).await,
        (false, &Method::POST) => post(&app, req, session).await,
        _ => error(StatusCode::BAD_REQUEST, "a WebSocket is opened with a GET"),
    }
}

fn open_websocket(app: Arc<AppState>, req: Request<RequestBody>) -> Response {
    let max_message_bytes = app.chat.limits.max_message_bytes;
    accept_websocket(req, max_message_bytes, move |ws, ConnectionContext { stop, open }| {
        let sid = socketio::new_sid(app.placement.worker);
        socketio::serve_websocket(app, WsLink { ws, open }, sid, stop)
    })
}

/// The long-polling handshake: a new session, answered with its open packet.
fn open_polling(app: &Arc<AppState>, req: &Request<RequestBody>) -> Response {
    // Polling sessions hold no connection between requests; they count against the same limit.
    if app.chat.sessions.count() >= app.config.max_connections as usize {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many Socket.IO sessions open in this process; retry",
        );
    }
    let Some(ConnectionContext { stop, .. }) = req.extensions().get::<ConnectionContext>().cloned() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "no connection context");
    };
    let (sid, requests) = app.chat.sessions.open(app.placement.worker);
    let open = socketio::open_packet(&sid, &["websocket"], &app.chat.limits);
    tokio::spawn(socketio::serve_polling(app.clone(), requests, sid, stop));
    with_type(StatusCode::OK, PAYLOAD_TYPE, open)
}

async fn poll(session: mpsc::Sender<SessionRequest>) -> Response {
    let (answer, answered) = oneshot::channel();
    if session.send(SessionRequest::Poll(answer)).await.is_err() {
        return gone();
    }
    match answered.await {
        Ok(Ok(payload)) => with_type(StatusCode::OK, PAYLOAD_TYPE, payload),
        Ok(Err(problem)) => error(StatusCode::BAD_REQUEST, &problem),
        Err(_) => gone(),
    }
}

async fn post(app: &AppState, req: Request<RequestBody>, session: mpsc::Sender<SessionRequest>) -> Response {
    let limit = socketio::max_payload(&app.chat.limits) as u64;
    let body = match collect_limited(req, limit).await {
        Ok(body) => body,
        Err((status, problem)) => return error(status, &problem),
    };
    let Ok(payload) = String::from_utf8(body.to_vec()) else {
        return error(StatusCode::BAD_REQUEST, "the payload is not UTF-8 text");
    };
    let (answer, answered) = oneshot::channel();
    if session.send(SessionRequest::Post(payload, answer)).await.is_err() || answered.await.is_err() {
        return gone();
    }
    with_type(StatusCode::OK, "text/html", "ok".into())
}

/// The WebSocket a polling session moves onto, handed to the session (which runs the probe).
fn upgrade(app: Arc<AppState>, req: Request<RequestBody>, session: mpsc::Sender<SessionRequest>) -> Response {
    let max_message_bytes = app.chat.limits.max_message_bytes;
    accept_websocket(req, max_message_bytes, move |ws, ConnectionContext { open, .. }| async move {
        let _ = session.send(SessionRequest::Upgrade(Box::new(WsLink { ws, open }))).await;
    })
}

fn gone() -> Response {
    error(StatusCode::BAD_REQUEST, "the session is closed: open a new one")
}
