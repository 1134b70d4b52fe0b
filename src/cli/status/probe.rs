//! Asking a running instance about itself: its `/metrics` page says what it is
//! (`app_instance_info`) and what it has served. A plain blocking HTTP/1.1 exchange: the tool runs
//! one request at a time.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("{path}: {e}"))?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\naccept: */*\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| format!("{path}: {e}"))?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| format!("{path}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("{path}: no HTTP answer"))?;
    let status = head.split(' ').nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!("{path}: status {status}"));
    }
    Ok(body.to_string())
}

/// The samples of `family` in a Prometheus text page: the label text between the braces, and
/// the value.
pub fn samples<'a>(text: &'a str, family: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    text.lines().filter(|line| !line.starts_with('#')).filter_map(move |line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
        (name == family).then_some(())?;
        Some((labels.strip_suffix('}')?, value.parse::<f64>().ok()?))
    })
}

/// The sum of every sample of `family` (all label sets).
pub(crate) fn metric_sum(text: &str, family: &str) -> Option<u64> {
    let values: Vec<f64> = samples(text, family).map(|(_, value)| value).collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() as u64)
}

/// Requests answered, but for `/metrics` scrapes: those are monitoring (this tool's own, a
/// Prometheus server's), not traffic.
pub(crate) fn requests_served(text: &str) -> u64 {
    samples(text, "app_http_requests_total")
        .filter(|(labels, _)| !labels.contains("route=\"/metrics\""))
        .map(|(_, value)| value)
        .sum::<f64>() as u64
}

/// The labels of the first sample of an info-style family (`name{key="value",...} 1`), with the
/// exposition format's escapes (`\\`, `\"`, `\n`) undone.
pub(crate) fn labels(text: &str, family: &str) -> HashMap<String, String> {
    let Some((mut rest, _)) = samples(text, family).next() else { return HashMap::new() };
    let mut found = HashMap::new();
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((at, c)) = chars.next() {
            match c {
                '"' => {
                    end = at + 1;
                    break;
                }
                '\\' => value.push(match chars.next() {
                    Some((_, 'n')) => '\n',
                    Some((_, other)) => other,
                    None => break,
                }),
                c => value.push(c),
            }
        }
        found.insert(key.trim_start_matches(',').trim().to_string(), value);
        rest = &after[end..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_a_family_over_its_labels() {
        let text = "# TYPE app_http_requests_total counter\n\
                    app_http_requests_total{route=\"/info\",status=\"200\"} 3\n\
                    app_http_requests_total{route=\"unmatched\",status=\"404\"} 2\n\
                    app_http_requests_totally 9\n\
                    app_worker_restarts_total 1\n";
        assert_eq!(metric_sum(text, "app_http_requests_total"), Some(5));
        assert_eq!(metric_sum(text, "app_worker_restarts_total"), Some(1));
        assert_eq!(metric_sum(text, "absent"), None);
    }

    #[test]
    fn requests_leave_out_scrapes_and_info_gives_its_labels() {
        let text = "app_http_requests_total{route=\"/info\",status=\"200\"} 3\n\
                    app_http_requests_total{route=\"/metrics\",status=\"200\"} 7\n\
                    app_instance_info{name=\"a,\\\"b\",mode=\"cluster\",main_pid=\"41\"} 1\n";
        assert_eq!(requests_served(text), 3);
        let about = labels(text, "app_instance_info");
        assert_eq!((about["mode"].as_str(), about["main_pid"].as_str()), ("cluster", "41"));
        assert_eq!(about["name"], "a,\"b");
        assert!(labels(text, "absent").is_empty());
    }
}
