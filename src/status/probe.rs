//! Asking a running instance about itself over loopback: `/info` for what it is, `/metrics` for
//! what it has served. A plain blocking HTTP/1.1 exchange: the tool runs one request at a time.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(2);

pub fn get(host: IpAddr, port: u16, path: &str) -> Result<String, String> {
    let addr = SocketAddr::new(host, port);
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

/// The sum of every sample of `family` (all label sets) in a Prometheus text page.
pub fn metric_sum(text: &str, family: &str) -> Option<u64> {
    let samples: Vec<u64> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let name = series.split('{').next()?;
            (name == family).then(|| value.parse::<f64>().ok().map(|v| v as u64))?
        })
        .collect();
    (!samples.is_empty()).then(|| samples.iter().sum())
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
}
