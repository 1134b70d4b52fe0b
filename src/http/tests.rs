//! Route behaviour where a process adds nothing: the whole server in-process on `127.0.0.1:0`
//! (through [`serve`]), with SQLite in a temporary directory; and the router called directly with
//! a `Full<Bytes>` body, without a socket.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderValue, ALLOW, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

use super::context::Connection;
use super::routes;
use super::serve;
use super::state::AppState;
use crate::config::Config;
use crate::infra::slot::ConnectionSlot;

/// A server running in this test's runtime; `stop` drains it.
struct Server {
    addr: SocketAddr,
    app: Arc<AppState>,
    stop: oneshot::Sender<()>,
    served: tokio::task::JoinHandle<usize>,
    _data: tempfile::TempDir,
}

/// A fork-mode app with its SQLite store in a fresh temporary directory, and `flags` on top.
fn app(addr: SocketAddr, flags: &[&str]) -> (Arc<AppState>, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let mut args = vec!["app", "--data-dir", data.path().to_str().unwrap(), "--todos-store", "sqlite"];
    args.extend_from_slice(flags);
    let config = Config::try_parse_from(args).unwrap();
    (Arc::new(AppState::fork_mode(config, addr).unwrap()), data)
}

async fn start(flags: &[&str]) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (app, data) = app(addr, flags);
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(serve(listener, app.clone(), async {
        let _ = stopped.await;
    }));
    Server { addr, app, stop, served, _data: data }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    /// The body, checked to be exactly `{"error": "..."}`, and its message.
    fn error(&self) -> String {
        let body = self.json();
        let object = body.as_object().unwrap_or_else(|| panic!("not an object: {body}"));
        assert_eq!(object.len(), 1, "{body}");
        object["error"].as_str().unwrap_or_else(|| panic!("no error text: {body}")).to_string()
    }
}

impl Server {
    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, &[], "").await
    }

    /// One request on a connection of its own.
    async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        let stream = TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        let mut request = Request::builder().method(method).uri(path).header("host", "localhost");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body.to_string()))).unwrap();
        let response = sender.send_request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap();
        Answer { status: parts.status, headers: parts.headers, body }
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        assert_eq!(self.served.await.unwrap(), 0, "connections were cut by the drain timeout");
    }
}

const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test]
async fn unknown_paths_and_methods_are_json_errors_with_allow() {
    let server = start(&[]).await;
    let missing = server.get("/nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.headers[CONTENT_TYPE], "application/json");
    assert_eq!(missing.error(), "no route for /nope");

    let refused = server.send(Method::POST, "/info", &[], "").await;
    assert_eq!(refused.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(refused.headers[ALLOW], "GET, HEAD");
    assert_eq!(refused.error(), "method POST is not allowed on /info; use GET, HEAD");

    let item = server.send(Method::POST, "/v1/todos/1", &[], "").await;
    assert_eq!(item.headers[ALLOW], "GET, HEAD, PATCH, DELETE");
    server.stop().await;
}

#[tokio::test]
async fn a_query_that_does_not_decode_names_its_parameter() {
    let server = start(&[]).await;
    let name = server.get("/info?%FF=1").await;
    assert_eq!(name.status, StatusCode::BAD_REQUEST);
    assert_eq!(name.error(), "the query parameter name `%FF` is not percent-encoded UTF-8");
    let value = server.get("/api/randoms?x=1&cant=%FF").await;
    assert_eq!(value.status, StatusCode::BAD_REQUEST);
    assert_eq!(value.error(), "the query parameter `cant` is not percent-encoded UTF-8: `%FF`");
    server.stop().await;
}

#[tokio::test]
async fn randoms_refuse_a_bad_cant_and_draw_a_percent_encoded_one() {
    let server = start(&["--randoms-max", "1000"]).await;
    for (query, message) in [
        ("cant=0", "cant must be at least 1, not 0"),
        ("cant=-3", "cant must be at least 1, not -3"),
        ("cant=abc", "cant must be a whole number from 1 to 1000, not `abc`"),
        ("cant=1001", "cant must be at most 1000 (the server's --randoms-max), not 1001"),
    ] {
        let refused = server.get(&format!("/api/randoms?{query}")).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(refused.error(), message);
    }
    let drawn = server.get("/api/randoms?cant=%35").await;
    assert_eq!(drawn.status, StatusCode::OK);
    let total: u64 = drawn.json().as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(total, 5, "{}", drawn.body);
    server.stop().await;
}

#[tokio::test]
async fn todos_are_created_read_changed_paged_and_deleted_in_sqlite() {
    let server = start(&[]).await;
    let created = server.send(Method::POST, "/v1/todos", &[JSON], r#"{"title":"  buy milk "}"#).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let todo = created.json();
    assert_eq!(todo["title"], "buy milk");
    assert_eq!(todo["completed"], false);
    let id = todo["id"].as_i64().unwrap();
    assert_eq!(created.headers[LOCATION], format!("/v1/todos/{id}").as_str());

    let path = format!("/v1/todos/{id}");
    assert_eq!(server.get(&path).await.json(), todo);
    let changed = server.send(Method::PATCH, &path, &[JSON], r#"{"completed":true}"#).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.json()["completed"], true);

    for n in 0..6 {
        let body = json!({ "title": format!("todo {n}") }).to_string();
        assert_eq!(server.send(Method::POST, "/v1/todos", &[JSON], &body).await.status, StatusCode::CREATED);
    }
    let page = server.get("/v1/todos?limit=%35&offset=1").await.json();
    assert_eq!(
        (page["limit"].clone(), page["offset"].clone(), page["total"].clone()),
        (json!(5), json!(1), json!(7))
    );
    assert_eq!(page["items"].as_array().unwrap().len(), 5);

    let deleted = server.send(Method::DELETE, &path, &[], "").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(deleted.body.is_empty());
    let gone = server.get(&path).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.error(), format!("no todo with id `{id}`"));
    assert_eq!(server.send(Method::DELETE, &path, &[], "").await.status, StatusCode::NOT_FOUND);
    server.stop().await;
}

/// A request (method, path, headers, body) and the status and message it gets.
type Case<'a> = (Method, &'a str, &'a [(&'a str, &'a str)], &'a str, StatusCode, &'a str);

#[tokio::test]
async fn todo_bodies_and_ids_are_checked_before_the_store() {
    let server = start(&["--todos-max-body-bytes", "64"]).await;
    let cases: [Case; 7] = [
        (
            Method::POST,
            "/v1/todos",
            &[],
            "{}",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be JSON (content-type: application/json), not none",
        ),
        (
            Method::POST,
            "/v1/todos",
            &[("content-type", "text/plain")],
            "{}",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be JSON (content-type: application/json), not `text/plain`",
        ),
        (
            Method::POST,
            "/v1/todos",
            &[JSON],
            r#"{"title":"  "}"#,
            StatusCode::BAD_REQUEST,
            "title must not be empty",
        ),
        (
            Method::POST,
            "/v1/todos",
            &[JSON],
            &"x".repeat(65),
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is larger than the limit of 64 bytes",
        ),
        (
            Method::PATCH,
            "/v1/todos/1",
            &[JSON],
            "{}",
            StatusCode::BAD_REQUEST,
            "nothing to change: give `title` and/or `completed`",
        ),
        (Method::GET, "/v1/todos/05", &[], "", StatusCode::NOT_FOUND, "no todo with id `05`"),
        (
            Method::GET,
            "/v1/todos?limit=0",
            &[],
            "",
            StatusCode::BAD_REQUEST,
            "limit must be a whole number from 1 to 100, not `0`",
        ),
    ];
    for (method, path, headers, body, status, message) in cases {
        let answer = server.send(method.clone(), path, headers, body).await;
        assert_eq!((answer.status, answer.error()), (status, message.to_string()), "{method} {path}");
    }
    let malformed = server.send(Method::POST, "/v1/todos", &[JSON], r#"{"title":"a","x":1}"#).await;
    assert!(malformed.error().starts_with("invalid todo: unknown field `x`"), "{}", malformed.body);
    server.stop().await;
}

#[tokio::test]
async fn a_reused_idempotency_key_with_another_title_is_422() {
    let server = start(&[]).await;
    let key = ("idempotency-key", "\"k-1\"");
    let first = server.send(Method::POST, "/v1/todos", &[JSON, key], r#"{"title":"a"}"#).await;
    let again = server.send(Method::POST, "/v1/todos", &[JSON, key], r#"{"title":"a"}"#).await;
    assert_eq!((first.status, again.json()["id"].clone()), (StatusCode::CREATED, first.json()["id"].clone()));
    let other = server.send(Method::POST, "/v1/todos", &[JSON, key], r#"{"title":"b"}"#).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(other.error().starts_with("this Idempotency-Key was used"), "{}", other.body);
    server.stop().await;
}

#[tokio::test]
async fn health_and_chat_refusals_are_answered_in_process() {
    let server = start(&[]).await;
    let health = server.get("/healthz").await;
    assert_eq!((health.status, health.json()), (StatusCode::OK, json!({"status": "ok"})));
    let no_upgrade = server.get("/ws?room=a&name=b").await;
    assert_eq!(no_upgrade.status, StatusCode::UPGRADE_REQUIRED);
    assert_eq!(no_upgrade.headers["upgrade"], "websocket");
    let no_room = server.get("/ws?name=b").await;
    assert_eq!(no_room.status, StatusCode::BAD_REQUEST);
    assert!(no_room.error().contains("room is required"), "{}", no_room.body);
    let engine = server.get("/socket.io/?EIO=3&transport=polling").await;
    assert_eq!(engine.error(), "only Engine.IO 4 is spoken (EIO=4: socket.io-client 3 or 4)");
    let info = server.get("/info").await.json();
    assert_eq!((info["client"].clone(), info["mode"].clone()), (json!("127.0.0.1"), json!("fork")));
    server.stop().await;
}

#[tokio::test]
async fn the_client_is_whom_a_trusted_proxy_names_for_info_and_metrics() {
    let server = start(&["--trusted-proxies", "127.0.0.1/32", "--metrics-allow", "10.0.0.0/8"]).await;
    let relayed = [("x-forwarded-for", "203.0.113.7, 127.0.0.1")];
    let info = server.send(Method::GET, "/info", &relayed, "").await.json();
    assert_eq!(info["client"], "203.0.113.7");
    let metrics = server.send(Method::GET, "/metrics", &relayed, "").await;
    assert_eq!(metrics.status, StatusCode::FORBIDDEN);
    assert_eq!(metrics.error(), "203.0.113.7 may not read /metrics (see --metrics-allow)");
    // This host itself, on the address the instance listens on, always may.
    let own = server.get("/metrics").await;
    assert_eq!(own.status, StatusCode::OK);
    assert!(own.body.contains("app_http_requests_total"), "{}", own.body);
    assert_eq!(server.app.placement.local_addr, server.addr);
    server.stop().await;
}

/// The router takes any body: here a `Full<Bytes>` built in the test, with no socket at all.
#[tokio::test]
async fn the_router_answers_a_request_built_in_the_test() {
    let (app, _data) = app(SocketAddr::from(([127, 0, 0, 1], 8080)), &[]);
    let (_stop, stopped) = watch::channel(false);
    let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
    let connection =
        Connection { peer, local: None, stop: stopped, open: ConnectionSlot::counted_elsewhere() };
    let request = |method: Method, path: &str, body: &'static str| {
        Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    };
    let (_, created) = routes::handle(
        app.clone(),
        connection.clone(),
        request(Method::POST, "/v1/todos", r#"{"title":"t"}"#),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let (_, listed) =
        routes::handle(app.clone(), connection.clone(), request(Method::GET, "/v1/todos?limit=%35", ""))
            .await;
    let listed: Value =
        serde_json::from_slice(&listed.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!((listed["limit"].clone(), listed["total"].clone()), (json!(5), json!(1)));
    let (_, huge) = routes::handle(
        app.clone(),
        connection.clone(),
        Request::post("/v1/todos")
            .header("host", "h")
            .header("content-length", "999999999")
            .body(Full::<Bytes>::default())
            .unwrap(),
    )
    .await;
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(huge.headers().get(RETRY_AFTER).is_none());
}
