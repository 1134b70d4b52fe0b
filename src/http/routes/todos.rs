//! `/v1/todos`: the seeds' todo API, kept in the shared store so every process and host sees the
//! same list. Bodies are small JSON objects, checked strictly: a client learns exactly what is wrong.

use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, LOCATION};
use hyper::{Method, Request, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use super::query::Query;
use super::{error, idempotency, json, Response};
use crate::domain::todos::{self as store, Changes, Created};
use crate::http::body::{collect_limited, RequestBody};
use crate::http::state::AppState;

/// Longest title, in characters, after trimming.
pub const MAX_TITLE_CHARS: usize = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct New {
    title: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    title: Option<String>,
    completed: Option<bool>,
}

/// `GET`/`POST /v1/todos`.
pub async fn collection(app: &AppState, req: Request<RequestBody>, query: &Query) -> Response {
    if req.method() == Method::POST {
        return create(app, req).await;
    }
    let (limit, offset) = match page(query, app.config.todos_max_limit) {
        Ok(page) => page,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    match app.todos.list(limit, offset).await {
        Ok(page) => {
            let items: Vec<_> = page.items.iter().map(|todo| todo.to_json()).collect();
            let body = json!({ "items": items, "total": page.total, "limit": limit, "offset": offset });
            json(StatusCode::OK, body.to_string())
        }
        Err(problem) => unavailable(problem),
    }
}

/// `GET`/`PATCH`/`DELETE /v1/todos/{id}`.
pub async fn item(app: &AppState, req: Request<RequestBody>, id: &str) -> Response {
    let Some(id) = canonical_id(id) else {
        return not_found(id);
    };
    let outcome = match *req.method() {
        Method::PATCH => match read_json::<Patch>(app, req).await.and_then(changes) {
            Ok(changes) => app.todos.update(id, changes).await,
            Err(refusal) => return refusal.into_response(),
        },
        Method::DELETE => {
            return match app.todos.delete(id).await {
                Ok(true) => empty(StatusCode::NO_CONTENT),
                Ok(false) => not_found(&id.to_string()),
                Err(problem) => unavailable(problem),
            }
        }
        _ => app.todos.get(id).await,
    };
    match outcome {
        Ok(Some(todo)) => json(StatusCode::OK, todo.to_json().to_string()),
        Ok(None) => not_found(&id.to_string()),
        Err(problem) => unavailable(problem),
    }
}

async fn create(app: &AppState, req: Request<RequestBody>) -> Response {
    let key = match idempotency::key(req.headers()) {
        Ok(key) => key,
        Err(problem) => return error(StatusCode::BAD_REQUEST, &problem),
    };
    let title = match read_json::<New>(app, req).await.and_then(|new| valid_title(&new.title)) {
        Ok(title) => title,
        Err(refusal) => return refusal.into_response(),
    };
    match app.todos.create(title, key).await {
        // A replay is the first answer again, byte for byte but the date.
        Ok(Created::New(todo) | Created::Replayed(todo)) => {
            let mut response = json(StatusCode::CREATED, todo.to_json().to_string());
            if let Ok(location) = HeaderValue::from_str(&format!("/v1/todos/{}", todo.id)) {
                response.headers_mut().insert(LOCATION, location);
            }
            response
        }
        Ok(Created::KeyReused) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "this Idempotency-Key was used for a request with another title; use a new key for a new todo",
        ),
        Err(problem) => unavailable(problem),
    }
}

fn changes(patch: Patch) -> Result<Changes, Refusal> {
    if patch.title.is_none() && patch.completed.is_none() {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            "nothing to change: give `title` and/or `completed`".into(),
        ));
    }
    let title = patch.title.as_deref().map(valid_title).transpose()?;
    Ok(Changes { title, completed: patch.completed })
}

/// The title trimmed, if it has 1 to MAX_TITLE_CHARS characters.
fn valid_title(title: &str) -> Result<String, Refusal> {
    let title = title.trim();
    let chars = title.chars().count();
    if chars == 0 {
        return Err(Refusal(StatusCode::BAD_REQUEST, "title must not be empty".into()));
    }
    if chars > MAX_TITLE_CHARS {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            format!("title must be at most {MAX_TITLE_CHARS} characters, not {chars}"),
        ));
    }
    Ok(title.to_string())
}

/// The body as `T`: JSON by content type (415), at most `--todos-max-body-bytes` (413), well formed
/// (400 with line and column), with the fields `T` takes and no other (400).
async fn read_json<T: DeserializeOwned>(app: &AppState, req: Request<RequestBody>) -> Result<T, Refusal> {
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !is_json(content_type) {
        let given = if content_type.is_empty() { "none".to_string() } else { format!("`{content_type}`") };
        return Err(Refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("the body must be JSON (content-type: application/json), not {given}"),
        ));
    }
    let body = collect_limited(req, app.config.todos_max_body_bytes)
        .await
        .map_err(|(status, message)| Refusal(status, message))?;
    serde_json::from_slice(&body).map_err(|problem| {
        let message = match problem.classify() {
            serde_json::error::Category::Data => format!("invalid todo: {problem}"),
            _ => format!("malformed JSON: {problem}"),
        };
        Refusal(StatusCode::BAD_REQUEST, message)
    })
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// `limit` (1 to `max`, default `max`) and `offset` (default 0) from the query.
fn page(query: &Query, max: u32) -> Result<(u32, u64), String> {
    let limit = match query.get("limit") {
        None => max,
        Some(value) => value
            .parse()
            .ok()
            .filter(|limit| (1..=max).contains(limit))
            .ok_or_else(|| format!("limit must be a whole number from 1 to {max}, not `{value}`"))?,
    };
    let offset = match query.get("offset") {
        None => 0,
        Some(value) => value.parse().map_err(|_| format!("offset must be a whole number, not `{value}`"))?,
    };
    Ok((limit, offset))
}

/// An id written the one way the store writes it: decimal digits with no sign and no leading zero,
/// so each todo has one URL (`/v1/todos/05` and `/v1/todos/+5` are not todo 5 but unknown).
fn canonical_id(text: &str) -> Option<i64> {
    let canonical = !text.starts_with('0') && text.bytes().all(|b| b.is_ascii_digit());
    canonical.then(|| text.parse().ok()).flatten()
}

/// A request refused before it reaches the store.
struct Refusal(StatusCode, String);

impl Refusal {
    fn into_response(self) -> Response {
        let mut response = error(self.0, &self.1);
        if self.0 == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body may still be coming: the connection cannot carry another request.
            response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

fn not_found(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, &format!("no todo with id `{id}`"))
}

fn unavailable(problem: store::Error) -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, &problem.to_string());
    response.headers_mut().insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn empty(status: StatusCode) -> Response {
    let mut response = hyper::Response::new(super::Body::default());
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_bounded() {
        let page = |raw: Option<&str>, max| page(&Query::parse(raw).unwrap(), max);
        assert_eq!(page(None, 100), Ok((100, 0)));
        assert_eq!(page(Some("limit=5&offset=10"), 100), Ok((5, 10)));
        assert!(page(Some("limit=101"), 100).unwrap_err().contains("1 to 100"));
        assert!(page(Some("limit=0"), 100).is_err());
        assert!(page(Some("offset=-1"), 100).is_err());
        assert_eq!(page(Some("limit=%35"), 100), Ok((5, 0)));
    }

    #[test]
    fn an_id_has_one_form() {
        assert_eq!(canonical_id("5"), Some(5));
        assert_eq!(canonical_id("120"), Some(120));
        for other in ["05", "+5", "-5", "0", "", " 5", "5 ", "0x5", "5.0", "99999999999999999999"] {
            assert_eq!(canonical_id(other), None, "{other}");
        }
    }

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(!is_json("text/plain"));
        assert!(!is_json(""));
    }
}
