//! `/socket.io/?EIO=4&transport=polling|websocket[&sid=...]`: the HTTP side of Socket.IO. A GET
//! without `sid` opens a session (a long-polling handshake, or a WebSocket that starts with the
//! open packet); with `sid`, GETs long-poll, POSTs bring packets, and a WebSocket GET moves the
//! session onto a WebSocket. Malformed requests get a 400 with the JSON error of every route.

use hyper::{Method, Request, StatusCode};
use tokio::sync::{mpsc, oneshot};

use super::chat::accept_websocket;
use super::forward;
use crate::domain::chat::socketio::{self, Request as SessionRequest, WsLink};
use crate::http::body::{collect_limited, HandlerBody};
use crate::http::context::{Connection, Ctx};
use crate::http::error::{chat_refused, HttpError};
use crate::http::query::Query;
use crate::http::response::{with_type, Answer};

const PAYLOAD_TYPE: &str = "text/plain; charset=UTF-8";

/// What the query says: the transport and the session, once EIO=4 is checked.
struct Params<'a> {
    websocket: bool,
    sid: Option<&'a str>,
}

impl<'a> Params<'a> {
    /// The parameters, or why the request is a 400.
    fn parse(query: &'a Query) -> Result<Params<'a>, HttpError> {
        let refused = |problem: &str| Err(HttpError::BadRequest(problem.into()));
        if query.get("EIO") != Some("4") {
            return refused("only Engine.IO 4 is spoken (EIO=4: socket.io-client 3 or 4)");
        }
        let websocket = match query.get("transport") {
            Some("polling") => false,
            Some("websocket") => true,
            _ => return refused("transport must be polling or websocket"),
        };
        Ok(Params { websocket, sid: query.get("sid") })
    }
}

pub(crate) async fn handle<B: HandlerBody>(ctx: &Ctx, req: Request<B>) -> Answer {
    let params = Params::parse(&ctx.query)?;
    // A cluster's workers share one socket, so a session's requests land on any of them: each
    // goes on to the worker that owns the session.
    let owner = params.sid.and_then(socketio::owner_of);
    if let (Some(owner), Some(me)) = (owner, ctx.app.placement.worker) {
        if owner != me {
            return forward::to_worker(ctx, owner, req).await;
        }
    }
    local(ctx, req, params).await
}

/// A request another worker passed on (see forward.rs): served here, whoever the owner.
pub(crate) async fn forwarded<B: HandlerBody>(ctx: &Ctx, req: Request<B>) -> Answer {
    local(ctx, req, Params::parse(&ctx.query)?).await
}

async fn local<B: HandlerBody>(ctx: &Ctx, req: Request<B>, params: Params<'_>) -> Answer {
    let Params { websocket, sid } = params;
    let Some(sid) = sid else {
        return match (websocket, req.method()) {
            (true, &Method::GET) => open_websocket(ctx, req),
            (false, &Method::GET) => open_polling(ctx),
            _ => Err(HttpError::BadRequest("a POST needs its session's id (sid)".into())),
        };
    };
    let Some(session) = ctx.app.chat.sessions.get(sid) else {
        return Err(HttpError::BadRequest("unknown session id (sid): open a new session".into()));
    };
    match (websocket, req.method()) {
        (true, &Method::GET) => upgrade(ctx, req, session),
        (false, &Method::GET) => poll(session).await,
        (false, &Method::POST) => post(ctx, req, session).await,
        _ => Err(HttpError::BadRequest("a WebSocket is opened with a GET".into())),
    }
}

fn open_websocket<B>(ctx: &Ctx, req: Request<B>) -> Answer {
    let (hub, worker) = (ctx.app.chat.clone(), ctx.app.placement.worker);
    let max_message_bytes = hub.limits.max_message_bytes;
    accept_websocket(ctx, req, max_message_bytes, move |ws, Connection { stop, open, .. }| {
        let sid = socketio::new_sid(worker);
        socketio::serve_websocket(hub, WsLink { ws, _open: open }, sid, stop)
    })
}

/// The long-polling handshake: a new session, answered with its open packet.
fn open_polling(ctx: &Ctx) -> Answer {
    let app = &ctx.app;
    // Polling sessions hold no connection between requests; they count against the same limit.
    if app.chat.sessions.count() >= app.config.max_connections as usize {
        return Err(HttpError::Unavailable("too many Socket.IO sessions open in this process; retry".into()));
    }
    let (sid, requests) = app.chat.sessions.open(app.placement.worker);
    let open = socketio::open_packet(&sid, &["websocket"], &app.chat.limits);
    tokio::spawn(socketio::serve_polling(app.chat.clone(), requests, sid, ctx.connection.stop.clone()));
    Ok(with_type(StatusCode::OK, PAYLOAD_TYPE, open))
}

async fn poll(session: mpsc::Sender<SessionRequest>) -> Answer {
    let (answer, answered) = oneshot::channel();
    if session.send(SessionRequest::Poll(answer)).await.is_err() {
        return Err(gone());
    }
    match answered.await {
        Ok(Ok(payload)) => Ok(with_type(StatusCode::OK, PAYLOAD_TYPE, payload)),
        Ok(Err(problem)) => Err(chat_refused(problem)),
        Err(_) => Err(gone()),
    }
}

async fn post<B: HandlerBody>(ctx: &Ctx, req: Request<B>, session: mpsc::Sender<SessionRequest>) -> Answer {
    let limit = socketio::max_payload(&ctx.app.chat.limits) as u64;
    let body = collect_limited(req, limit).await?;
    let Ok(payload) = String::from_utf8(body.to_vec()) else {
        return Err(HttpError::BadRequest("the payload is not UTF-8 text".into()));
    };
    let (answer, answered) = oneshot::channel();
    if session.send(SessionRequest::Post(payload, answer)).await.is_err() || answered.await.is_err() {
        return Err(gone());
    }
    Ok(with_type(StatusCode::OK, "text/html", "ok".into()))
}

/// The WebSocket a polling session moves onto, handed to the session (which runs the probe).
fn upgrade<B>(ctx: &Ctx, req: Request<B>, session: mpsc::Sender<SessionRequest>) -> Answer {
    let max_message_bytes = ctx.app.chat.limits.max_message_bytes;
    accept_websocket(ctx, req, max_message_bytes, move |ws, Connection { open, .. }| async move {
        let _ = session.send(SessionRequest::Upgrade(Box::new(WsLink { ws, _open: open }))).await;
    })
}

fn gone() -> HttpError {
    HttpError::BadRequest("the session is closed: open a new one".into())
}
