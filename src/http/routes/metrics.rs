//! `GET /metrics`: the instance's counters in Prometheus' text format, for trusted clients only
//! (`--metrics-allow`, loopback by default): they tell an outsider the traffic and the error rates.

use std::net::SocketAddr;

use hyper::{Request, StatusCode};

use super::{error, with_type, Response};
use crate::http::body::RequestBody;
use crate::http::connections::LocalAddr;
use crate::http::state::AppState;

pub fn get(app: &AppState, req: &Request<RequestBody>, peer: SocketAddr) -> Response {
    let client = super::client(app, req, peer);
    // The host itself may always ask, on whatever address the instance listens (a socket moved
    // to 10.0.0.5 sees `app status` on that host come from 10.0.0.5, not from loopback).
    let from_this_host = req.extensions().get::<LocalAddr>().is_some_and(|local| local.0.ip() == client);
    if !from_this_host && !app.config.metrics_allow.iter().any(|net| net.contains(&client)) {
        return error(
            StatusCode::FORBIDDEN,
            &format!("{client} may not read /metrics (see --metrics-allow)"),
        );
    }
    let page = app.metrics.render() + &crate::infra::metrics::process::text(&app.placement);
    with_type(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", page)
}
