//! Every answer the HTTP layer gives when it does not do what was asked: one enum, [`HttpError`],
//! and one place, [`HttpError::into_response`], that gives each case its status, its headers and
//! the body every route shares, `{"error": "..."}`. The match there has no catch-all, so a new
//! variant cannot go out without its status being chosen (as harmonia's errors do). The domain's
//! errors come in through one function each, at the end of this file.

use hyper::header::{HeaderValue, ALLOW, CONNECTION, RETRY_AFTER, UPGRADE};
use hyper::{Method, StatusCode};

use crate::domain::todos;
use crate::http::body::BodyTimedOut;
use crate::http::query::QueryError;
use crate::http::response::{json, Response};

#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    /// The request is malformed or names something that does not exist in the way it says
    /// (its Host, a header, a parameter, a body that broke off): 400.
    #[error("{0}")]
    BadRequest(String),
    /// A query that does not decode: 400.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The client may not see this: 403.
    #[error("{0}")]
    Forbidden(String),
    /// No route has this path: 404.
    #[error("no route for {0}")]
    NoRoute(String),
    /// No todo has this id (or the id is not written the one way ids are): 404.
    #[error("no todo with id `{0}`")]
    NoTodo(String),
    /// The route does not take this method: 405, with `Allow` naming the ones it takes.
    #[error("method {method} is not allowed on {path}; use {}", allowed(.methods))]
    MethodNotAllowed { method: Method, path: String, methods: &'static [Method] },
    /// The body missed its deadline: 408, and the connection closes (the rest may still come).
    #[error(transparent)]
    BodyTimedOut(#[from] BodyTimedOut),
    /// The declared `Content-Length` is above `--max-body-bytes`: 413 before anything is read.
    #[error("request body of {declared} bytes is larger than the limit of {limit} bytes")]
    DeclaredBodyTooLarge { declared: u64, limit: u64 },
    /// The body is (or says it is) longer than its route takes: 413.
    #[error("the body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: u64 },
    /// The body is not JSON by its content type (`given` as written, or "none"): 415.
    #[error("the body must be JSON (content-type: application/json), not {given}")]
    NotJson { given: String },
    /// Well formed but in conflict with what the server holds: 422.
    #[error("{0}")]
    Unprocessable(&'static str),
    /// A WebSocket endpoint asked without an upgrade: 426, with `Upgrade: websocket`.
    #[error("this is a WebSocket endpoint: send an Upgrade: websocket request")]
    UpgradeRequired,
    /// The server failed in a way the client cannot help: 500.
    #[error("{0}")]
    Internal(&'static str),
    /// Cannot serve now, and asking again in a moment may work: 503 with `Retry-After: 1`.
    #[error("{0}")]
    RetrySoon(String),
    /// Cannot serve now (this process is unhealthy, or full): 503.
    #[error("{0}")]
    Unavailable(String),
}

impl HttpError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            HttpError::BadRequest(_) | HttpError::Query(_) => StatusCode::BAD_REQUEST,
            HttpError::Forbidden(_) => StatusCode::FORBIDDEN,
            HttpError::NoRoute(_) | HttpError::NoTodo(_) => StatusCode::NOT_FOUND,
            HttpError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::BodyTimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            HttpError::DeclaredBodyTooLarge { .. } | HttpError::BodyTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            HttpError::NotJson { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            HttpError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            HttpError::UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
            HttpError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            HttpError::RetrySoon(_) | HttpError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The answer: the status, `{"error": "<the message>"}`, and the headers the case needs.
    pub(crate) fn into_response(self) -> Response {
        let mut response = json(self.status(), serde_json::json!({ "error": self.to_string() }).to_string());
        let headers = response.headers_mut();
        match self {
            HttpError::MethodNotAllowed { methods, .. } => {
                if let Ok(value) = HeaderValue::from_str(&allowed(methods)) {
                    headers.insert(ALLOW, value);
                }
            }
            HttpError::BodyTimedOut(_) => {
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            }
            HttpError::UpgradeRequired => {
                headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
            }
            HttpError::RetrySoon(_) => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

impl From<HttpError> for Response {
    fn from(error: HttpError) -> Response {
        error.into_response()
    }
}

fn allowed(methods: &[Method]) -> String {
    methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ")
}

/// A todo store operation failed: it may work in a moment (a Redis fail-over, a busy SQLite).
impl From<todos::Unavailable> for HttpError {
    fn from(problem: todos::Unavailable) -> HttpError {
        HttpError::RetrySoon(problem.to_string())
    }
}

/// The chat refused what the client asked (a bad room or user name, a Socket.IO packet it cannot read).
pub(crate) fn chat_refused(problem: impl std::fmt::Display) -> HttpError {
    HttpError::BadRequest(problem.to_string())
}

/// This process cannot serve: what `/healthz` answers when the todo store does not.
pub(crate) fn unhealthy(problem: String) -> HttpError {
    HttpError::Unavailable(problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_is_its_message_under_error_with_its_headers() {
        let response = HttpError::MethodNotAllowed {
            method: Method::POST,
            path: "/info".into(),
            methods: &[Method::GET, Method::HEAD],
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[ALLOW], "GET, HEAD");
        let busy = HttpError::from(todos::Unavailable::WriterStopped).into_response();
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.headers()[RETRY_AFTER], "1");
        assert!(HttpError::Unavailable("x".into()).into_response().headers().get(RETRY_AFTER).is_none());
        assert_eq!(HttpError::NoRoute("/nope".into()).to_string(), "no route for /nope",);
    }
}
