//! The `Host` header as RFC 9112 3.2 wants it: "A server MUST respond with a 400 (Bad Request)
//! status code to any HTTP/1.1 request message that lacks a Host header field and to any request
//! message that contains more than one Host header field line or a Host header field with an
//! invalid field value." HTTP/1.0 had no Host, so there its absence is fine.

use hyper::header::{HeaderMap, HeaderValue, HOST};
use hyper::http::uri::Authority;
use hyper::Version;

/// Why the request's `Host` is refused, if it is.
pub(crate) fn problem(version: Version, headers: &HeaderMap) -> Option<&'static str> {
    let mut hosts = headers.get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => Some("more than one Host header (RFC 9112, section 3.2)"),
        (None, None) if version >= Version::HTTP_11 => {
            Some("an HTTP/1.1 request needs a Host header (RFC 9112, section 3.2)")
        }
        (None, None) => None,
        (Some(host), None) => (!valid(host)).then_some("the Host header is not a host[:port]"),
    }
}

/// `host[:port]`, or empty (what a client sends when the target has no authority, RFC 9110 7.2);
/// never with user information (`user@host`).
fn valid(host: &HeaderValue) -> bool {
    let bytes = host.as_bytes();
    bytes.is_empty() || (!bytes.contains(&b'@') && Authority::try_from(bytes).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(hosts: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for host in hosts {
            headers.append(HOST, HeaderValue::from_static(host));
        }
        headers
    }

    #[test]
    fn one_valid_host_is_needed_from_http_1_1_on() {
        assert_eq!(problem(Version::HTTP_11, &headers(&["example.com:8080"])), None);
        assert_eq!(problem(Version::HTTP_11, &headers(&["[::1]:80"])), None);
        assert_eq!(problem(Version::HTTP_11, &headers(&[""])), None);
        assert!(problem(Version::HTTP_11, &headers(&[])).unwrap().contains("needs a Host"));
        assert!(problem(Version::HTTP_11, &headers(&["a", "b"])).unwrap().contains("more than one"));
        assert!(problem(Version::HTTP_10, &headers(&["a", "a"])).is_some());
        assert_eq!(problem(Version::HTTP_10, &headers(&[])), None);
        assert!(problem(Version::HTTP_11, &headers(&["user@example.com"])).is_some());
        assert!(problem(Version::HTTP_11, &headers(&["a b"])).is_some());
        assert!(problem(Version::HTTP_11, &headers(&["example.com/path"])).is_some());
    }
}
