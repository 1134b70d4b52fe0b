//! What travels on a chat socket: the client sends `{"text": ...}`; it receives messages
//! `{"room","from","text","ts"}`, notices `{"room","event":"join"|"leave","name","ts"}` and errors
//! `{"error": ...}`. Timestamps are milliseconds since the Unix epoch.

use serde::Deserialize;
use serde_json::json;

use super::error::{NameError, Refusal};
use crate::infra::clock::now_ms;

/// Longest room or user name, in characters.
pub(crate) const MAX_NAME_CHARS: usize = 32;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sent {
    text: String,
}

pub(crate) fn message(room: &str, from: &str, text: &str) -> String {
    json!({ "room": room, "from": from, "text": text, "ts": now_ms() }).to_string()
}

pub(crate) fn notice(room: &str, event: &str, name: &str) -> String {
    json!({ "room": room, "event": event, "name": name, "ts": now_ms() }).to_string()
}

pub(crate) fn error(message: &str) -> String {
    json!({ "error": message }).to_string()
}

/// The text of a client's frame, if it is a JSON `{"text": ...}` of at most `max_bytes` with some
/// non-blank text.
pub(crate) fn parse(frame: &str, max_bytes: usize) -> Result<String, Refusal> {
    if frame.len() > max_bytes {
        return Err(Refusal::TooBig { size: frame.len(), limit: max_bytes });
    }
    let sent: Sent = serde_json::from_str(frame).map_err(Refusal::NotJson)?;
    if sent.text.trim().is_empty() {
        return Err(Refusal::EmptyText);
    }
    Ok(sent.text)
}

/// Room and user names: 1 to MAX_NAME_CHARS letters, digits, `-`, `_` or `.`.
pub(crate) fn valid_name(what: &'static str, name: Option<&str>) -> Result<String, NameError> {
    let name = name.ok_or(NameError::Missing { what })?;
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(NameError::Length { what, chars });
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        return Err(NameError::Character { what, bad });
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(valid_name("room", Some("lobby-1")), Ok("lobby-1".into()));
        assert_eq!(valid_name("name", Some("Zoë")), Ok("Zoë".into()));
        assert!(valid_name("room", None).unwrap_err().to_string().contains("required"));
        assert!(valid_name("room", Some("")).is_err());
        assert!(valid_name("room", Some(&"a".repeat(33))).is_err());
        assert!(valid_name("name", Some("a b")).is_err());
        assert!(valid_name("name", Some("<script>")).is_err());
    }

    #[test]
    fn frames_are_checked() {
        assert_eq!(parse(r#"{"text":"hi"}"#, 100).ok(), Some("hi".into()));
        assert!(parse(r#"{"text":"  "}"#, 100).is_err());
        assert!(parse(r#"{"text":"hi","x":1}"#, 100).is_err());
        assert!(parse("not json", 100).is_err());
        let too_big = parse(&format!(r#"{{"text":"{}"}}"#, "a".repeat(100)), 100).unwrap_err();
        assert_eq!(too_big.to_string(), "message of 111 bytes is larger than the limit of 100 bytes");
    }
}
