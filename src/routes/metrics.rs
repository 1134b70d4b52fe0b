//! `GET /metrics`: the instance's counters in Prometheus' text format, for trusted clients only
//! (`--metrics-allow`, loopback by default): they tell an outsider the traffic and the error rates.

use std::net::SocketAddr;

use hyper::{Request, StatusCode};

use super::{error, with_type, Response};
use crate::request_body::RequestBody;
use crate::state::AppState;

pub fn get(app: &AppState, req: &Request<RequestBody>, peer: SocketAddr) -> Response {
    let client = super::client(app, req, peer);
    if !app.config.metrics_allow.iter().any(|net| net.contains(&client)) {
        return error(
            StatusCode::FORBIDDEN,
            &format!("{client} may not read /metrics (see --metrics-allow)"),
        );
    }
    let page = app.metrics.render() + &crate::metrics::process::text(&app.placement);
    with_type(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", page)
}
