//! The answers' shape: every handler answers a [`Response`] with a whole body, or an
//! [`HttpError`](crate::http::error::HttpError) that `http::error` turns into one.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::StatusCode;

use crate::http::error::HttpError;

pub(crate) type Body = Full<Bytes>;
pub(crate) type Response = hyper::Response<Body>;
/// What every handler returns: its answer, or why it refused (answered by `http::error`).
pub(crate) type Answer = Result<Response, HttpError>;

pub(crate) fn json(status: StatusCode, body: String) -> Response {
    with_type(status, "application/json", body)
}

pub(crate) fn with_type(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// An answer with no body (204).
pub(crate) fn empty(status: StatusCode) -> Response {
    let mut response = hyper::Response::new(Body::default());
    *response.status_mut() = status;
    response
}
