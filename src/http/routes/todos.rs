//! `/v1/todos`: the seeds' todo API, kept in the shared store so every process and host sees the
//! same list. Bodies are small JSON objects, checked strictly: a client learns exactly what is wrong.

use hyper::header::{HeaderValue, CONTENT_TYPE, LOCATION};
use hyper::{Method, Request, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use super::idempotency;
use crate::domain::todos::{Changes, Created};
use crate::http::body::{collect_limited, HandlerBody};
use crate::http::context::Ctx;
use crate::http::error::HttpError;
use crate::http::query::Query;
use crate::http::response::{empty, json, Answer};

/// Longest title, in characters, after trimming.
pub(crate) const MAX_TITLE_CHARS: usize = 200;

const ITEM_PREFIX: &str = "/v1/todos/";

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

/// The id in a todo's path (`/v1/todos/{id}`) as given, if the path is one; the router and the
/// handler both read it here.
pub(crate) fn item_id(path: &str) -> Option<&str> {
    path.strip_prefix(ITEM_PREFIX).filter(|id| !id.is_empty() && !id.contains('/'))
}

/// `GET`/`POST /v1/todos`.
pub(crate) async fn collection<B: HandlerBody>(ctx: &Ctx, req: Request<B>) -> Answer {
    if req.method() == Method::POST {
        return create(ctx, req).await;
    }
    let (limit, offset) = page(&ctx.query, ctx.app.config.todos_max_limit).map_err(HttpError::BadRequest)?;
    let page = ctx.app.todos.list(limit, offset).await?;
    let items: Vec<_> = page.items.iter().map(|todo| todo.to_json()).collect();
    let body = json!({ "items": items, "total": page.total, "limit": limit, "offset": offset });
    Ok(json(StatusCode::OK, body.to_string()))
}

/// `GET`/`PATCH`/`DELETE /v1/todos/{id}`.
pub(crate) async fn item<B: HandlerBody>(ctx: &Ctx, req: Request<B>) -> Answer {
    let given = item_id(req.uri().path()).unwrap_or_default();
    let id = canonical_id(given).ok_or_else(|| HttpError::NoTodo(given.to_string()))?;
    let store = &ctx.app.todos;
    let found = match *req.method() {
        Method::PATCH => {
            let changes = changes(read_json::<Patch, B>(ctx, req).await?)?;
            store.update(id, changes).await?
        }
        Method::DELETE => {
            return match store.delete(id).await? {
                true => Ok(empty(StatusCode::NO_CONTENT)),
                false => Err(HttpError::NoTodo(id.to_string())),
            }
        }
        _ => store.get(id).await?,
    };
    let todo = found.ok_or_else(|| HttpError::NoTodo(id.to_string()))?;
    Ok(json(StatusCode::OK, todo.to_json().to_string()))
}

async fn create<B: HandlerBody>(ctx: &Ctx, req: Request<B>) -> Answer {
    let key = idempotency::key(req.headers()).map_err(HttpError::BadRequest)?;
    let new = read_json::<New, B>(ctx, req).await?;
    let title = valid_title(&new.title)?;
    match ctx.app.todos.create(title, key).await? {
        // A replay is the first answer again, byte for byte but the date.
        Created::New(todo) | Created::Replayed(todo) => {
            let mut response = json(StatusCode::CREATED, todo.to_json().to_string());
            if let Ok(location) = HeaderValue::from_str(&format!("{ITEM_PREFIX}{}", todo.id)) {
                response.headers_mut().insert(LOCATION, location);
            }
            Ok(response)
        }
        Created::KeyReused => Err(HttpError::Unprocessable(
            "this Idempotency-Key was used for a request with another title; use a new key for a new todo",
        )),
    }
}

fn changes(patch: Patch) -> Result<Changes, HttpError> {
    if patch.title.is_none() && patch.completed.is_none() {
        return Err(HttpError::BadRequest("nothing to change: give `title` and/or `completed`".into()));
    }
    let title = patch.title.as_deref().map(valid_title).transpose()?;
    Ok(Changes { title, completed: patch.completed })
}

/// The title trimmed, if it has 1 to MAX_TITLE_CHARS characters.
fn valid_title(title: &str) -> Result<String, HttpError> {
    let title = title.trim();
    let chars = title.chars().count();
    if chars == 0 {
        return Err(HttpError::BadRequest("title must not be empty".into()));
    }
    if chars > MAX_TITLE_CHARS {
        return Err(HttpError::BadRequest(format!(
            "title must be at most {MAX_TITLE_CHARS} characters, not {chars}"
        )));
    }
    Ok(title.to_string())
}

/// The body as `T`: JSON by content type (415), at most `--todos-max-body-bytes` (413), well formed
/// (400 with line and column), with the fields `T` takes and no other (400).
async fn read_json<T: DeserializeOwned, B: HandlerBody>(ctx: &Ctx, req: Request<B>) -> Result<T, HttpError> {
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !is_json(content_type) {
        let given = if content_type.is_empty() { "none".to_string() } else { format!("`{content_type}`") };
        return Err(HttpError::NotJson { given });
    }
    let body = collect_limited(req, ctx.app.config.todos_max_body_bytes).await?;
    serde_json::from_slice(&body).map_err(|problem| {
        HttpError::BadRequest(match problem.classify() {
            serde_json::error::Category::Data => format!("invalid todo: {problem}"),
            _ => format!("malformed JSON: {problem}"),
        })
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
