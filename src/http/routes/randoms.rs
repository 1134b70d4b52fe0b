//! `GET /api/randoms?cant=N`: N random integers in 1..=1000, counted. The drawing runs on the blocking
//! pool so the event loop keeps answering, a bounded number at a time, and stops when the client goes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hyper::{Request, StatusCode};

use crate::domain::randoms;
use crate::http::context::Ctx;
use crate::http::error::HttpError;
use crate::http::response::{json, Answer};

/// The seeds' default when `cant` is not given.
const DEFAULT_CANT: u64 = 100_000_000;
/// Computations of at most this many draws run on the event loop itself: about 0.1 ms with the
/// AVX2 kernel, answer included, so the loop is held about as long as by a few ordinary requests,
/// and they save the hand-off to a blocking thread and back (two thread wake-ups on cores busy
/// with nginx and the other instances). Longer ones go to the blocking pool so the event loop
/// keeps answering. (With this and the 16-bit kernel, `?cant=100000` through nginx went from 8.0x
/// to 12.7x the Node stack in bench/run.sh.)
const ON_THE_EVENT_LOOP: u64 = 1 << 17;

pub(crate) async fn get<B>(ctx: &Ctx, _req: Request<B>) -> Answer {
    let app = &ctx.app;
    let cant = parse_cant(ctx.query.get("cant"), app.config.randoms_max).map_err(HttpError::BadRequest)?;
    let free_slot = app.randoms_slots.clone().acquire_owned();
    let Ok(Ok(slot)) = tokio::time::timeout(app.config.randoms_wait, free_slot).await else {
        return Err(HttpError::RetrySoon(format!(
            "{} randoms computations are already running in this process and none ended within {:?}; retry later",
            app.config.randoms_concurrency, app.config.randoms_wait
        )));
    };

    let drawn = if cant <= ON_THE_EVENT_LOOP {
        let _slot = slot;
        counted(cant, &AtomicBool::new(false))
    } else {
        // Dropped with this future when hyper sees the client hang up: the draw stops at its next
        // chunk.
        let cancel = CancelOnDrop(Arc::new(AtomicBool::new(false)));
        let cancelled = cancel.0.clone();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            counted(cant, &cancelled)
        })
        .await
        .ok()
        .flatten()
    };
    let body = drawn.ok_or(HttpError::Internal("the computation was interrupted"))?;
    app.metrics.randoms_computed(cant);
    Ok(json(StatusCode::OK, body))
}

/// The answer's body, or `None` if `cancelled` was set before the end.
fn counted(cant: u64, cancelled: &AtomicBool) -> Option<String> {
    randoms::tally(cant, cancelled).map(|counts| randoms::to_json(&counts))
}

struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// `cant` as given (decoded), checked: absent is the seeds' default.
fn parse_cant(given: Option<&str>, max: u64) -> Result<u64, String> {
    let Some(text) = given else {
        return Ok(DEFAULT_CANT.min(max));
    };
    let cant: i128 =
        text.parse().map_err(|_| format!("cant must be a whole number from 1 to {max}, not `{text}`"))?;
    if cant <= 0 {
        return Err(format!("cant must be at least 1, not {cant}"));
    }
    if cant > i128::from(max) {
        return Err(format!("cant must be at most {max} (the server's --randoms-max), not {cant}"));
    }
    Ok(cant as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::query::Query;

    fn parse_query(raw: Option<&str>, max: u64) -> Result<u64, String> {
        parse_cant(Query::parse(raw).unwrap().get("cant"), max)
    }

    #[test]
    fn cant_is_checked_against_its_bounds() {
        assert_eq!(parse_query(None, 1_000_000_000), Ok(100_000_000));
        assert_eq!(parse_query(Some("cant=5&x=1"), 10), Ok(5));
        assert_eq!(parse_query(Some("x=1&cant=10"), 10), Ok(10));
        assert!(parse_query(Some("cant=11"), 10).unwrap_err().contains("at most 10"));
        assert!(parse_query(Some("cant=0"), 10).unwrap_err().contains("at least 1"));
        assert!(parse_query(Some("cant=-3"), 10).unwrap_err().contains("at least 1"));
        assert!(parse_query(Some("cant=abc"), 10).unwrap_err().contains("whole number"));
        assert!(parse_query(Some("cant="), 10).unwrap_err().contains("whole number"));
        assert!(parse_query(Some("cant=1.5"), 10).unwrap_err().contains("whole number"));
        assert!(parse_query(Some("cant=99999999999999999999999999999999999999999"), 10).is_err());
    }
}
