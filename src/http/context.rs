//! What a handler is given beside its request, so every route has the one shape
//! `async fn(&Ctx, Request<B>) -> Answer`: the application, the connection the request came on, and
//! the parsed query; and the one place the client's address is worked out ([`Ctx::client`]).
//!
//! The accept loop makes a [`Connection`] once per connection and the router a [`Ctx`] once per
//! request from it: handlers never look into the request's extensions for what the server knows.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use hyper::header::HeaderMap;
use tokio::sync::watch;

use crate::http::query::Query;
use crate::http::state::AppState;
use crate::infra::slot::ConnectionSlot;

/// The request's context: what every handler may use besides the request itself.
pub(crate) struct Ctx {
    pub(crate) app: Arc<AppState>,
    pub(crate) connection: Connection,
    /// The query, decoded (a query that does not decode is answered 400 before any handler).
    pub(crate) query: Query,
}

impl Ctx {
    pub(crate) fn new(app: Arc<AppState>, connection: Connection, query: Query) -> Ctx {
        Ctx { app, connection, query }
    }

    /// The client's address: the peer's own, or whom a trusted proxy's X-Forwarded-For names
    /// ([`AppState::client_ip`]). Worked out by the routes that show or check it (`/`, `/info`,
    /// `/metrics`), not for every request: behind nginx it parses a header.
    pub(crate) fn client(&self, headers: &HeaderMap) -> IpAddr {
        let forwarded_for = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        self.app.client_ip(self.connection.peer.ip(), forwarded_for)
    }
}

/// What the connection a request came on gives each of its requests: who is at either end, and
/// what a handler that takes the connection over (a WebSocket upgrade) must watch and hold.
#[derive(Clone)]
pub(crate) struct Connection {
    /// The other end; for a request another worker passed on over its unix socket, the
    /// unspecified address (the client's own is known only to that worker).
    pub(crate) peer: SocketAddr,
    /// The address the connection was accepted on: a client connecting from that same address is
    /// this host itself (`app status` on an instance moved off loopback). `None` when forwarded.
    pub(crate) local: Option<SocketAddr>,
    /// Turns true when the process stops: an upgraded socket closes itself then.
    pub(crate) stop: watch::Receiver<bool>,
    /// The connection's slot: given back once the last holder (hyper's service, an upgraded
    /// socket's task) is gone. So the connection's own task, sized for hyper's HTTP state
    /// (1.4 KiB), ends as soon as hyper hands an upgraded connection over instead of waiting as
    /// long as the WebSocket lives. With the control queue of src/domain/chat/socket.rs, an idle chat
    /// socket went from 16.5 KiB to 10.4 KiB (`cargo bench --bench capacity -- idle ws`).
    pub(crate) open: ConnectionSlot,
}

impl Connection {
    /// A request another worker of the cluster passed on (see routes/forward.rs).
    pub(crate) fn forwarded(stop: watch::Receiver<bool>) -> Connection {
        let peer = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        Connection { peer, local: None, stop, open: ConnectionSlot::counted_elsewhere() }
    }
}
