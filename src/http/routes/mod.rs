//! The router: which handler answers which method and path, and the JSON error shape they share.

mod chat;
pub mod forward;
mod host;
mod idempotency;
mod info;
mod metrics;
mod page;
mod query;
mod randoms;
mod socketio;
mod todos;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};

use crate::http::body::RequestBody;
use crate::http::state::AppState;
use crate::infra::metrics::RouteLabel;
use query::Query;

pub type Body = Full<Bytes>;
pub type Response = hyper::Response<Body>;

/// The resources the server answers, each with the methods it takes.
enum Route {
    Info,
    Health,
    Randoms,
    Metrics,
    Page,
    Todos,
    /// One todo; the id as given in the path (checked by the handler: a bad one is a 404).
    Todo(String),
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
            Route::Todos | Route::Todo(_) => RouteLabel::Todos,
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
        _ => {
            let id = path.strip_prefix("/v1/todos/").filter(|id| !id.is_empty() && !id.contains('/'))?;
            Some((Route::Todo(id.to_string()), ITEM))
        }
    }
}

/// Answers a request, with the label it is counted under in `/metrics`: its route's, or
/// `unmatched` (so unknown paths cannot add series). The path is routed once, here.
pub async fn handle(
    app: Arc<AppState>,
    req: Request<RequestBody>,
    peer: SocketAddr,
) -> (RouteLabel, Response) {
    let routed = route(req.uri().path());
    let label = routed.as_ref().map_or(RouteLabel::Unmatched, |(route, _)| route.label());
    (label, answer(app, req, peer, routed).await)
}

async fn answer(
    app: Arc<AppState>,
    req: Request<RequestBody>,
    peer: SocketAddr,
    routed: Option<(Route, &[Method])>,
) -> Response {
    if let Some(problem) = host::problem(req.version(), req.headers()) {
        return error(StatusCode::BAD_REQUEST, problem);
    }
    if let Some(too_large) = refuse_declared_body(&app, &req) {
        return too_large;
    }
    let Some((route, methods)) = routed else {
        return error(StatusCode::NOT_FOUND, &format!("no route for {}", req.uri().path()));
    };
    if !methods.contains(req.method()) {
        return method_not_allowed(&req, methods);
    }
    let query = match Query::parse(req.uri().query()) {
        Ok(query) => query,
        Err(problem) => return error(StatusCode::BAD_REQUEST, &problem),
    };
    match route {
        Route::Page => page::get(&app, &client(&app, &req, peer).to_string()),
        Route::Info => info::get(&app, &req, peer),
        Route::Health => match app.health().await {
            Ok(()) => json(StatusCode::OK, r#"{"status":"ok"}"#.into()),
            Err(problem) => error(StatusCode::SERVICE_UNAVAILABLE, &problem),
        },
        Route::Randoms => randoms::get(&app, &query).await,
        Route::Metrics => metrics::get(&app, &req, peer),
        Route::Todos => todos::collection(&app, req, &query).await,
        Route::Todo(id) => todos::item(&app, req, &id).await,
        Route::Chat => chat::upgrade(app, req, &query),
        Route::SocketIo => socketio::handle(app, req, &query).await,
    }
}

/// The client's address: the peer, or whom a trusted proxy's X-Forwarded-For names.
fn client(app: &AppState, req: &Request<RequestBody>, peer: SocketAddr) -> std::net::IpAddr {
    let forwarded_for = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
    app.client_ip(peer.ip(), forwarded_for)
}

/// 413 before reading anything when the declared body is above `--max-body-bytes`.
fn refuse_declared_body(app: &AppState, req: &Request<RequestBody>) -> Option<Response> {
    let declared: u64 = req.headers().get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()?;
    let limit = app.config.max_body_bytes;
    (declared > limit).then(|| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body of {declared} bytes is larger than the limit of {limit} bytes"),
        )
    })
}

/// 405 with `Allow` naming the methods the route answers.
fn method_not_allowed(req: &Request<RequestBody>, methods: &[Method]) -> Response {
    let allowed = methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("method {} is not allowed on {}; use {allowed}", req.method(), req.uri().path()),
    );
    if let Ok(value) = HeaderValue::from_str(&allowed) {
        response.headers_mut().insert(ALLOW, value);
    }
    response
}

pub fn json(status: StatusCode, body: String) -> Response {
    with_type(status, "application/json", body)
}

pub fn with_type(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Every error the server answers: `{"error": "..."}` with its status.
pub fn error(status: StatusCode, message: &str) -> Response {
    json(status, serde_json::json!({ "error": message }).to_string())
}
