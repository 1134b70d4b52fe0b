//! The `Idempotency-Key` request header (IETF draft-ietf-httpapi-idempotency-key-header): a client
//! that may retry a `POST /v1/todos` sends a unique key with it, and a retry with the same key is
//! answered with the first creation instead of making a second todo. The draft defines the value
//! as a Structured Field string (`"8e03978e-..."`); the bare form most APIs take (`8e03978e-...`)
//! is accepted too.

use hyper::header::HeaderMap;

use crate::domain::todos::IdempotencyKey;

pub(crate) const HEADER: &str = "idempotency-key";
/// Longest key, in characters (Stripe's bound too): UUIDs and the like fit with room to spare,
/// while a client cannot make the server store large keys.
pub(crate) const MAX_KEY_CHARS: usize = 255;

/// The request's key, if it sent one; an error names what is wrong with it.
pub(crate) fn key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, String> {
    let mut values = headers.get_all(HEADER).iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err("send one Idempotency-Key header, not several".into());
    }
    let text = value.to_str().map_err(|_| "the Idempotency-Key must be printable ASCII".to_string())?;
    let key = unquote(text.trim())
        .ok_or("the Idempotency-Key is not a valid string (draft-ietf-httpapi-idempotency-key-header)")?;
    match key.chars().count() {
        0 => Err("the Idempotency-Key must not be empty".into()),
        n if n > MAX_KEY_CHARS => {
            Err(format!("the Idempotency-Key must have at most {MAX_KEY_CHARS} characters, not {n}"))
        }
        _ => Ok(Some(IdempotencyKey(key))),
    }
}

/// An sf-string (RFC 8941 3.3.3: `"` ... `"`, with `\"` and `\\` the only escapes) unquoted, or a
/// bare value of visible characters taken as it is.
fn unquote(text: &str) -> Option<String> {
    let Some(inner) = text.strip_prefix('"') else {
        return text.chars().all(|c| c.is_ascii_graphic() && c != '"').then(|| text.to_string());
    };
    let mut key = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('"' | '\\')) => key.push(escaped),
                _ => return None,
            },
            '"' => return chars.next().is_none().then_some(key),
            ' '..='~' => key.push(c),
            _ => return None,
        }
    }
    None // No closing quote.
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn parsed(values: &[&'static str]) -> Result<Option<String>, String> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(HEADER, HeaderValue::from_static(value));
        }
        key(&headers).map(|key| key.map(|IdempotencyKey(key)| key))
    }

    #[test]
    fn keys_are_sf_strings_or_bare_and_bounded() {
        assert_eq!(parsed(&[]), Ok(None));
        assert_eq!(parsed(&[r#""8e03978e-40d5""#]), Ok(Some("8e03978e-40d5".into())));
        assert_eq!(parsed(&["8e03978e-40d5"]), Ok(Some("8e03978e-40d5".into())));
        assert_eq!(parsed(&[r#""a \"b\" \\""#]), Ok(Some(r#"a "b" \"#.into())));
        assert!(parsed(&[r#""""#]).unwrap_err().contains("empty"));
        assert!(parsed(&[r#""open"#]).is_err());
        assert!(parsed(&[r#""a"b""#]).is_err());
        assert!(parsed(&[r#""a\nb""#]).is_err());
        assert!(parsed(&["a", "b"]).unwrap_err().contains("one Idempotency-Key"));
        let long: &'static str = Box::leak(format!("\"{}\"", "k".repeat(256)).into_boxed_str());
        assert!(parsed(&[long]).unwrap_err().contains("at most 255"));
        let longest: &'static str = Box::leak("k".repeat(255).into_boxed_str());
        assert!(parsed(&[longest]).is_ok());
    }
}
