//! The query string, parsed once per request for every route: `application/x-www-form-urlencoded`
//! pairs (`+` is a space, `%XX` a byte), each name and value decoded strictly to UTF-8. A value
//! that does not decode is refused with a 400 naming its parameter, never read as absent (which
//! would silently give the default, e.g. 1e8 random draws for `cant=%FF`).
//!
//! Decoded with `percent_encoding` (of the servo/url project, as `form_urlencoded` is), not with
//! `form_urlencoded::parse` or `serde_urlencoded`: both decode lossily (`%FF` becomes U+FFFD), so
//! `cant=%FF` would be refused as "not a whole number" and `/info?x=%FF` answered as if it were
//! fine, where this parser names the parameter that is not UTF-8.

use std::borrow::Cow;

use percent_encoding::percent_decode;

/// The decoded pairs, in order.
#[derive(Debug, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    /// Every pair of `raw` decoded, or the first parameter that does not decode.
    /// An incomplete escape (`%2`) stays as written, as browsers and `url` leave it.
    pub(crate) fn parse(raw: Option<&str>) -> Result<Query, QueryError> {
        let pairs = raw.unwrap_or("").split('&').filter(|pair| !pair.is_empty());
        let decoded = pairs.map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(name).map_err(|_| QueryError::Name(name.to_string()))?;
            let value = decode(value)
                .map_err(|_| QueryError::Value { name: name.clone(), value: value.to_string() })?;
            Ok((name, value))
        });
        decoded.collect::<Result<_, QueryError>>().map(Query)
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

/// A parameter that is not percent-encoded UTF-8, as written in the request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum QueryError {
    #[error("the query parameter name `{0}` is not percent-encoded UTF-8")]
    Name(String),
    #[error("the query parameter `{name}` is not percent-encoded UTF-8: `{value}`")]
    Value { name: String, value: String },
}

fn decode(text: &str) -> Result<String, std::str::Utf8Error> {
    // `+` becomes a space before the escapes are decoded, so `%2B` stays a plus.
    let spaced: Cow<[u8]> = if text.contains('+') {
        Cow::Owned(text.bytes().map(|b| if b == b'+' { b' ' } else { b }).collect())
    } else {
        Cow::Borrowed(text.as_bytes())
    };
    percent_decode(&spaced).decode_utf8().map(Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(raw: Option<&str>, name: &str) -> Option<String> {
        Query::parse(raw).unwrap().get(name).map(str::to_string)
    }

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(get(Some("room=a&name=Zo%C3%AB"), "name").as_deref(), Some("Zoë"));
        assert_eq!(get(Some("name=a+b%2"), "name").as_deref(), Some("a b%2"));
        assert_eq!(get(Some("room=x"), "name"), None);
        assert_eq!(get(None, "name"), None);
        assert_eq!(get(Some("limit=%35"), "limit").as_deref(), Some("5"));
        assert_eq!(get(Some("%6Cimit=5"), "limit").as_deref(), Some("5"));
        assert_eq!(get(Some("t=%2B1"), "t").as_deref(), Some("+1"));
        assert_eq!(get(Some("a&&b=1&b=2"), "b").as_deref(), Some("1"));
        assert_eq!(get(Some("a&b=1"), "a").as_deref(), Some(""));
    }

    #[test]
    fn values_that_are_not_utf8_name_their_parameter() {
        let refusal = Query::parse(Some("x=1&cant=%FF")).unwrap_err().to_string();
        assert!(refusal.contains("`cant`") && refusal.contains("%FF"), "{refusal}");
        assert!(Query::parse(Some("%C3=1")).unwrap_err().to_string().contains("name `%C3`"));
    }
}
