//! The router: which handler answers which method and path. Every handler has the one shape
//! `async fn(&Ctx, Request<B>) -> Answer`, generic over the body, so the router and each handler
//! can be called in a test with a `Full<Bytes>` body.

mod chat;
pub(crate) mod forward;
mod host;
mod idempotency;
mod info;
mod metrics;
mod page;
mod randoms;
mod socketio;
mod todos;

use std::sync::Arc;

use hyper::header::CONTENT_LENGTH;
use hyper::{Method, Request, StatusCode};

use crate::http::body::HandlerBody;
use crate::http::context::{Connection, Ctx};
use crate::http::error::{unhealthy, HttpError};
use crate::http::query::Query;
use crate::http::response::{json, Answer, Response};
use crate::http::state::AppState;
use crate::infra::metrics::RouteLabel;

/// The resources the server answers, each with the methods it takes.
enum Route {
    Info,
    Health,
    Randoms,
    Metrics,
    Page,
    Todos,
    /// One todo (the handler reads the id from the path: a bad one is a 404).
    Todo,
    Chat,
    SocketIo,
}

impl Route {
    /// The label requests to this route are counted under in `/metrics`.
    fn label(&self) -> RouteLabel {
        match self {
            Route::Info => RouteLabel::Info,
            Route::Health => RouteLabel::Health,
            Route::Randoms => RouteLabel::Randoms,
            Route::Metrics => RouteLabel::Metrics,
            Route::Page => RouteLabel::Root,
            Route::Todos | Route::Todo => RouteLabel::Todos,
            Route::Chat => RouteLabel::Ws,
            Route::SocketIo => RouteLabel::SocketIo,
        }
    }
}

const READ_ONLY: &[Method] = &[Method::GET, Method::HEAD];
const COLLECTION: &[Method] = &[Method::GET, Method::HEAD, Method::POST];
const ITEM: &[Method] = &[Method::GET, Method::HEAD, Method::PATCH, Method::DELETE];

fn route(path: &str) -> Option<(Route, &'static [Method])> {
    match path {
        "/" => Some((Route::Page, READ_ONLY)),
        "/info" => Some((Route::Info, READ_ONLY)),
        "/healthz" => Some((Route::Health, READ_ONLY)),
        "/api/randoms" => Some((Route::Randoms, READ_ONLY)),
        "/metrics" => Some((Route::Metrics, READ_ONLY)),
        "/v1/todos" | "/v1/todos/" => Some((Route::Todos, COLLECTION)),
        "/ws" => Some((Route::Chat, &[Method::GET])),
        "/socket.io/" | "/socket.io" => Some((Route::SocketIo, &[Method::GET, Method::POST])),
        _ => todos::item_id(path).map(|_| (Route::Todo, ITEM)),
    }
}

/// Answers a request, with the label it is counted under in `/metrics`: its route's, or
/// `unmatched` (so unknown paths cannot add series). The path is routed once, here, and the
/// request's [`Ctx`] made once, from what its connection gives.
pub(crate) async fn handle<B: HandlerBody>(
    app: Arc<AppState>,
    connection: Connection,
    req: Request<B>,
) -> (RouteLabel, Response) {
    let routed = route(req.uri().path());
    let label = routed.as_ref().map_or(RouteLabel::Unmatched, |(route, _)| route.label());
    let answer = answer(app, connection, req, routed).await;
    (label, answer.unwrap_or_else(HttpError::into_response))
}

async fn answer<B: HandlerBody>(
    app: Arc<AppState>,
    connection: Connection,
    req: Request<B>,
    routed: Option<(Route, &'static [Method])>,
) -> Answer {
    if let Some(problem) = host::problem(req.version(), req.headers()) {
        return Err(HttpError::BadRequest(problem.into()));
    }
    refuse_declared_body(&app, &req)?;
    let Some((route, methods)) = routed else {
        return Err(HttpError::NoRoute(req.uri().path().to_string()));
    };
    if !methods.contains(req.method()) {
        let (method, path) = (req.method().clone(), req.uri().path().to_string());
        return Err(HttpError::MethodNotAllowed { method, path, methods });
    }
    let query = Query::parse(req.uri().query())?;
    let ctx = Ctx::new(app, connection, query);
    match route {
        Route::Page => page::get(&ctx, req).await,
        Route::Info => info::get(&ctx, req).await,
        Route::Health => health(&ctx, req).await,
        Route::Randoms => randoms::get(&ctx, req).await,
        Route::Metrics => metrics::get(&ctx, req).await,
        Route::Todos => todos::collection(&ctx, req).await,
        Route::Todo => todos::item(&ctx, req).await,
        Route::Chat => chat::upgrade(&ctx, req).await,
        Route::SocketIo => socketio::handle(&ctx, req).await,
    }
}

/// A Socket.IO request another worker passed on (see forward.rs): served here, whoever owns it.
pub(crate) async fn forwarded<B: HandlerBody>(
    app: Arc<AppState>,
    connection: Connection,
    req: Request<B>,
) -> Response {
    let answer = async {
        let query = Query::parse(req.uri().query())?;
        let ctx = Ctx::new(app, connection, query);
        socketio::forwarded(&ctx, req).await
    };
    answer.await.unwrap_or_else(HttpError::into_response)
}

/// `GET /healthz`: whether this process can serve (see [`AppState::health`]).
async fn health<B>(ctx: &Ctx, _req: Request<B>) -> Answer {
    ctx.app.health().await.map_err(unhealthy)?;
    Ok(json(StatusCode::OK, r#"{"status":"ok"}"#.into()))
}

/// 413 before reading anything when the declared body is above `--max-body-bytes`.
fn refuse_declared_body<B>(app: &AppState, req: &Request<B>) -> Result<(), HttpError> {
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let limit = app.config.max_body_bytes;
    match declared {
        Some(declared) if declared > limit => Err(HttpError::DeclaredBodyTooLarge { declared, limit }),
        _ => Ok(()),
    }
}
