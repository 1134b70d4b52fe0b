//! `GET /metrics`: the instance's counters in Prometheus' text format, for trusted clients only
//! (`--metrics-allow`, loopback by default): they tell an outsider the traffic and the error rates.

use hyper::{Request, StatusCode};

use crate::http::context::Ctx;
use crate::http::error::HttpError;
use crate::http::response::{with_type, Answer};
use crate::infra::metrics::process::{self, Instance};

pub(crate) async fn get<B>(ctx: &Ctx, req: Request<B>) -> Answer {
    let (app, client) = (&ctx.app, ctx.client(req.headers()));
    // The host itself may always ask, on whatever address the instance listens (a socket moved
    // to 10.0.0.5 sees `app status` on that host come from 10.0.0.5, not from loopback).
    let from_this_host = ctx.connection.local.is_some_and(|local| local.ip() == client);
    if !from_this_host && !app.config.metrics_allow.iter().any(|net| net.contains(&client)) {
        return Err(HttpError::Forbidden(format!("{client} may not read /metrics (see --metrics-allow)")));
    }
    let placement = &app.placement;
    let instance = Instance {
        is_worker: placement.worker.is_some(),
        name: placement.instance.as_deref(),
        mode: placement.mode,
        workers: placement.workers,
    };
    let page = app.metrics.render() + &process::text(&instance);
    Ok(with_type(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", page))
}
