//! The server: the accept loop and each connection's limits (`connections`), the request body's
//! deadline (`body`), the lingering close (`lingering`), what handlers share (`state`), what each
//! request brings them (`context`, `query`), how they answer (`response`, `error`) and the routes.
//! It turns HTTP into calls on `domain` and back.

pub mod body;
pub mod connections;
pub mod context;
pub mod error;
pub mod lingering;
pub mod query;
pub mod response;
pub mod routes;
pub mod state;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

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
