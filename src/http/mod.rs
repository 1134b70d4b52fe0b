//! The server: the accept loop and each connection's limits (`connections`), the request body's
//! deadline (`body`), the lingering close (`lingering`), what handlers share (`state`), what each
//! request brings them (`context`, `query`), how they answer (`response`, `error`) and the routes.
//! It turns HTTP into calls on `domain` and back.

pub(crate) mod body;
pub(crate) mod connections;
pub(crate) mod context;
pub(crate) mod error;
pub(crate) mod lingering;
pub(crate) mod query;
pub(crate) mod response;
pub(crate) mod routes;
pub mod state;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::http::state::AppState;

/// Serves `listener` until `stop` resolves, then drains as a stopping process does (see
/// [`connections::serve`]), and returns how many connections the drain timeout cut. The seam for
/// tests: the whole server in-process on `127.0.0.1:0`, stopped by any future (as mini-redis's
/// `server::run` is).
pub async fn serve(listener: TcpListener, app: Arc<AppState>, stop: impl Future<Output = ()>) -> usize {
    // Held until the drain ends: a dropped sender would read as a stop.
    let (stopping, stopped) = watch::channel(false);
    let serving = connections::serve(listener, app, stopped);
    tokio::pin!(serving);
    tokio::select! {
        cut = &mut serving => return cut,
        () = stop => {}
    }
    let _ = stopping.send(true);
    serving.await
}

/// HTTP/1 as both accept loops speak it (the TCP one in `connections`, and a cluster worker's
/// unix socket for forwarded Socket.IO requests in `routes::forward`): `--header-timeout`,
/// `--max-header-bytes`, keep-alive.
pub(crate) fn http_builder(config: &Config) -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .max_header_size(config.max_header_bytes as usize)
        // The read buffer need not hold more than a head and some body.
        .max_buf_size((config.max_header_bytes as usize + 8192).max(16 * 1024))
        .keep_alive(config.keep_alive);
    http
}
