//! The accept loop and each connection's life: limits, keep-alive, and the drain on stop.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderValue, CONNECTION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};

use crate::http::body::{BodyDeadline, RequestBody};
use crate::http::context::Connection;
use crate::http::lingering::LingeringClose;
use crate::http::state::AppState;
use crate::http::{http_builder, routes};
use crate::infra::slot::ConnectionSlot;

/// Connections over the limit that may be answered at once; beyond it they are closed unanswered.
const REFUSAL_SLOTS: usize = 64;
/// How long, once a drain begins, a keep-alive connection may still bring a request before it is
/// closed (bounded by --drain-timeout).
const DRAIN_LINGER: Duration = Duration::from_millis(500);
/// How long answering a refused connection may take.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(1);
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 60\r\n\r\n\
{\"error\":\"too many open connections to this process; retry\"}";

/// Serves `listener` until `stop` turns true, then drains: no new connection is accepted, every
/// request already received (or owed by a connection accepted before the stop) is answered, idle
/// keep-alive connections are closed. Returns how many connections were still open when
/// `--drain-timeout` ran out (they are cut when the caller exits or execs).
pub(crate) async fn serve(listener: TcpListener, app: Arc<AppState>, stop: watch::Receiver<bool>) -> usize {
    let max_connections = app.config.max_connections;
    let open = Arc::new(Semaphore::new(max_connections as usize));
    let refusals = Arc::new(Semaphore::new(REFUSAL_SLOTS));
    let http = http_builder(&app.config);
    let mut stop_accepting = stop.clone();

    loop {
        tokio::select! {
            _ = stopped(&mut stop_accepting) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match open.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let local = stream.local_addr().ok();
                        let connection =
                            Connection { peer, local, stop: stop.clone(), open: ConnectionSlot::counted(permit) };
                        tokio::spawn(serve_http(stream, app.clone(), http.clone(), connection));
                    }
                    Err(_) => {
                        app.metrics.connection_refused();
                        refuse(stream, &refusals)
                    }
                },
                Err(error) => {
                    // Out of fds or memory: accepting again at once would spin on the same error.
                    tracing::warn!(%error, "accept failed; pausing accepts for 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    drop(listener);

    let drained = tokio::time::timeout(app.config.drain_timeout, open.acquire_many(max_connections)).await;
    match drained {
        Ok(_) => 0,
        Err(_) => max_connections as usize - open.available_permits(),
    }
}

async fn serve_http(stream: TcpStream, app: Arc<AppState>, http: http1::Builder, connection: Connection) {
    let _ = stream.set_nodelay(true);
    let peer = connection.peer;
    let mut stop = connection.stop.clone();
    let drain_timeout = app.config.drain_timeout;
    let body_deadline = BodyDeadline { timeout: app.config.body_timeout, min_rate: app.config.body_min_rate };
    let requests = Arc::new(AtomicU64::new(0));
    let first_request = Arc::new(Notify::new());
    let service = {
        let (requests, first_request, draining) = (requests.clone(), first_request.clone(), stop.clone());
        service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            if requests.fetch_add(1, Ordering::Relaxed) == 0 {
                first_request.notify_one();
            }
            let req = req.map(|body| RequestBody::new(body, body_deadline));
            let (app, connection, draining) = (app.clone(), connection.clone(), draining.clone());
            async move {
                // Timed here, around the whole handler, so every route is measured the same way.
                let timer = app.metrics.request_started();
                let (route, mut response) = routes::handle(app, connection, req).await;
                timer.finish(route, response.status().as_u16());
                // (Not on a 101: the connection goes on as a WebSocket, which the drain closes itself.)
                if *draining.borrow() && response.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
                    // hyper closes the connection after this answer; the client knows not to reuse it.
                    response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, Infallible>(response)
            }
        })
    };
    let connection =
        http.serve_connection(TokioIo::new(LingeringClose::new(stream)), service).with_upgrades();
    tokio::pin!(connection);

    tokio::select! {
        result = connection.as_mut() => return log_end(result, peer),
        _ = stopped(&mut stop) => {}
    }
    // Accepted before the stop but its request not read yet: closing now would drop a request the
    // client has already sent. Wait for it (hyper's header timeout bounds the wait).
    if requests.load(Ordering::Relaxed) == 0 {
        tokio::select! {
            result = connection.as_mut() => return log_end(result, peer),
            _ = first_request.notified() => {}
        }
    } else {
        // A kept-alive connection: its client (nginx's upstream pool) may be sending the next
        // request on it at this very moment, and closing it now would lose that request ("upstream
        // prematurely closed connection", a 502 once nginx's retries meet the same race). For a
        // short while its requests are still answered, with `connection: close`, which ends it
        // cleanly from the client's side; only a connection idle all that while is closed.
        let linger = DRAIN_LINGER.min(drain_timeout);
        tokio::select! {
            result = connection.as_mut() => return log_end(result, peer),
            _ = tokio::time::sleep(linger) => {}
        }
    }
    // Finishes the request in flight, answers it with `connection: close`, closes an idle connection.
    connection.as_mut().graceful_shutdown();
    log_end(connection.await, peer);
}

/// Resolves once the stop flag is set (the guard `wait_for` returns is not `Send`, so it is dropped here).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

fn log_end(result: hyper::Result<()>, peer: SocketAddr) {
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}

/// Answers a connection over `--max-connections` with a 503 and closes it, so the client learns why
/// at once instead of waiting in a queue.
fn refuse(mut stream: TcpStream, refusals: &Arc<Semaphore>) {
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return; // Too many refusals in progress already: dropping closes it.
    };
    tokio::spawn(async move {
        let _permit = permit;
        let _ = tokio::time::timeout(REFUSAL_DEADLINE, async {
            // Read the request head first: closing with unread data would reset the connection and
            // the client could lose the answer.
            let mut head = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&chunk[..n]),
                }
            }
            let _ = stream.write_all(REFUSED).await;
            let _ = stream.shutdown().await;
        })
        .await;
    });
    tracing::debug!("refused a connection over --max-connections");
}
