//! The request body as the handlers see it: hyper's body under a deadline. hyper times only the
//! request head (`--header-timeout`); without a deadline on the body, a client sending it a byte a
//! second, or a chunked body that never ends, would hold its connection (and one of the
//! `--max-connections` slots) for as long as it liked.
//!
//! The deadline works like Apache's mod_reqtimeout (`body=10,MinRate=...`): `--body-timeout`
//! from the end of the head, extended by one second for every `--body-min-rate` bytes received,
//! so a large upload on a slow but honest link finishes while a trickle is cut off. A handler
//! that reads the body in time sees it whole; one that does not sees [`BodyTimedOut`] and answers
//! 408. (A handler that never reads the body needs no deadline: hyper closes a connection whose
//! unread body does not drain at once after the answer.)

use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::http::error::HttpError;

/// How long a request body may take: `timeout`, plus a second per `min_rate` bytes received
/// (`min_rate` 0: no extension, the body must be in within `timeout`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyDeadline {
    pub(crate) timeout: Duration,
    pub(crate) min_rate: u64,
}

impl BodyDeadline {
    /// The time allowed once `received` bytes have arrived.
    fn allowed(&self, received: u64) -> Duration {
        let earned = match self.min_rate {
            0 => Duration::ZERO,
            rate => Duration::from_secs_f64(received as f64 / rate as f64),
        };
        self.timeout.saturating_add(earned)
    }
}

/// A request's body with its deadline; the timer starts when the head has been read.
pub(crate) struct RequestBody {
    inner: Incoming,
    limits: BodyDeadline,
    started: Instant,
    received: u64,
    /// Made on the first read that has to wait, so a request whose body is never waited for (most
    /// of them: GETs) costs no timer.
    timer: Option<Pin<Box<Sleep>>>,
}

/// The body did not arrive within its deadline.
#[derive(Debug, thiserror::Error)]
#[error(
    "the request body was too slow: {received} bytes had arrived when its {allowed:?} ran out \
     (--body-timeout, plus one second per --body-min-rate bytes)"
)]
pub(crate) struct BodyTimedOut {
    pub(crate) received: u64,
    pub(crate) allowed: Duration,
}

/// What a boxed body error is; hyper's and `Limited`'s are this.
pub(crate) type BoxError = Box<dyn Error + Send + Sync>;

/// The request bodies a handler takes: [`RequestBody`] when serving, `Full<Bytes>` (or any other
/// body of bytes) when a test calls the router or a handler directly.
pub(crate) trait HandlerBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static {}

impl<B> HandlerBody for B
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
}

/// The whole body of `req`, or why it is refused: 413 when it is (or says it is) longer than
/// `limit` bytes, 408 when it missed its deadline, 400 when it broke off.
pub(crate) async fn collect_limited<B: HandlerBody>(
    req: hyper::Request<B>,
    limit: u64,
) -> Result<Bytes, HttpError> {
    use http_body_util::{BodyExt, LengthLimitError, Limited};
    let declared =
        req.headers().get(hyper::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
    if declared.is_some_and(|length: u64| length > limit) {
        return Err(HttpError::BodyTooLarge { limit });
    }
    match Limited::new(req.into_body(), limit as usize).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(cause) if cause.is::<LengthLimitError>() => Err(HttpError::BodyTooLarge { limit }),
        Err(cause) => match cause.downcast::<BodyTimedOut>() {
            Ok(timed_out) => Err(HttpError::BodyTimedOut(*timed_out)),
            Err(cause) => Err(HttpError::BadRequest(format!("could not read the body: {cause}"))),
        },
    }
}

impl RequestBody {
    pub(crate) fn new(inner: Incoming, limits: BodyDeadline) -> RequestBody {
        RequestBody { inner, limits, started: Instant::now(), received: 0, timer: None }
    }

    fn deadline(&self) -> Instant {
        self.started + self.limits.allowed(self.received)
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Box<dyn Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    let deadline = this.deadline();
                    if let Some(timer) = this.timer.as_mut() {
                        timer.as_mut().reset(deadline);
                    }
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(end) => return Poll::Ready(end.map(|result| result.map_err(Into::into))),
            Poll::Pending => {}
        }
        let deadline = this.deadline();
        let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                let timed_out =
                    BodyTimedOut { received: this.received, allowed: this.limits.allowed(this.received) };
                Poll::Ready(Some(Err(Box::new(timed_out))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_min_rate_of_bytes_earns_a_second() {
        let limits = BodyDeadline { timeout: Duration::from_secs(10), min_rate: 1000 };
        assert_eq!(limits.allowed(0), Duration::from_secs(10));
        assert_eq!(limits.allowed(5000), Duration::from_secs(15));
        let fixed = BodyDeadline { timeout: Duration::from_secs(10), min_rate: 0 };
        assert_eq!(fixed.allowed(1 << 30), Duration::from_secs(10));
    }
}
