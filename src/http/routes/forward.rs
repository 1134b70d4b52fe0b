//! Cluster mode: a Socket.IO polling session lives in the worker that opened it, but the workers
//! share one listening socket and the kernel hands each new connection to any of them, so the
//! next GET or POST of a session (or the WebSocket it moves onto) often reaches another worker.
//! The session id names its owner (`socketio::owner_of`); the worker that got the request passes
//! it on, as it came, over the owner's unix socket (`socketio-<N>.sock` in the primary's private
//! directory of the runtime directory), and answers with what the owner answered. A forwarded
//! WebSocket upgrade becomes a byte pipe between the client's connection and the owner's.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::http::body::{BodyDeadline, HandlerBody, RequestBody};
use crate::http::context::{Connection, Ctx};
use crate::http::error::HttpError;
use crate::http::http_builder;
use crate::http::response::{Answer, Response};
use crate::http::state::{AppState, Placement};

/// Where worker `worker` of this process's primary takes forwarded requests. The primary's
/// directory is private to the instance (mode 0700) and goes away with it.
fn socket_path(placement: &Placement, worker: u16) -> Option<PathBuf> {
    let dir = placement.primary_runtime_dir.as_ref()?;
    Some(dir.join(format!("socketio-{worker}.sock")))
}

/// Serves the requests the other workers pass on to this one (worker `worker`), for as long as
/// the process lives. A worker that replaces this one (a reload) takes the path over.
pub(crate) async fn listen(app: Arc<AppState>, worker: u16, stop: watch::Receiver<bool>) {
    let Some(path) = socket_path(&app.placement, worker) else {
        tracing::warn!("no primary's directory: polling sessions of this worker reach it only directly");
        return;
    };
    let _ = std::fs::remove_file(&path);
    let listener = match UnixListener::bind(&path) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "cannot take forwarded Socket.IO requests; \
                           polling sessions of this worker reach it only directly");
            return;
        }
    };
    let http = http_builder(&app.config);
    let deadline = BodyDeadline { timeout: app.config.body_timeout, min_rate: app.config.body_min_rate };
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "accepting a forwarded Socket.IO request failed; pausing 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Counted where the client's own connection is, in the worker that forwarded it.
        let connection = Connection::forwarded(stop.clone());
        let app = app.clone();
        let service = service_fn(move |req: Request<hyper::body::Incoming>| {
            let req = req.map(|body| RequestBody::new(body, deadline));
            let (app, connection) = (app.clone(), connection.clone());
            async move { Ok::<_, Infallible>(super::forwarded(app, connection, req).await) }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service).with_upgrades();
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "forwarded Socket.IO connection ended with an error");
            }
        });
    }
}

/// Passes `req` on to worker `owner` and answers with its answer.
pub(crate) async fn to_worker<B: HandlerBody>(ctx: &Ctx, owner: u16, mut req: Request<B>) -> Answer {
    let gone = |problem: String| {
        tracing::debug!(owner, %problem, "forwarding a Socket.IO request failed");
        HttpError::BadRequest(format!(
            "the session's worker ({owner}) cannot be reached ({problem}): open a new session"
        ))
    };
    let stream = UnixStream::connect(
        socket_path(&ctx.app.placement, owner).ok_or_else(|| gone("no primary's directory".into()))?,
    )
    .await
    .map_err(|problem| gone(problem.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|problem| gone(problem.to_string()))?;
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    let slot = ctx.connection.open.clone();
    let client_side = hyper::upgrade::on(&mut req);
    let mut answer = sender.send_request(req).await.map_err(|problem| gone(problem.to_string()))?;
    if answer.status() == StatusCode::SWITCHING_PROTOCOLS {
        let owner_side = hyper::upgrade::on(&mut answer);
        tokio::spawn(async move {
            // Holding the slot keeps the client's connection counted while the pipe lasts.
            let _slot = slot;
            if let (Ok(client), Ok(owner)) = tokio::join!(client_side, owner_side) {
                let _ =
                    tokio::io::copy_bidirectional(&mut TokioIo::new(client), &mut TokioIo::new(owner)).await;
            }
        });
    }
    let (parts, body) = answer.into_parts();
    let body = body.collect().await.map_err(|problem| gone(problem.to_string()))?;
    Ok(Response::from_parts(parts, Full::new(body.to_bytes())))
}
