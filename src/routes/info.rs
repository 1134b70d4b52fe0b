//! `GET /info`: what this process is and where it runs (the seeds' info view), as JSON or, for a
//! browser, as a small HTML page. Never the environment: it holds secrets.

use std::net::SocketAddr;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT};
use hyper::{Request, StatusCode};
use serde_json::{json, Value};

use super::{with_type, Response};
use crate::state::AppState;

pub fn get(app: &AppState, req: &Request<Incoming>, peer: SocketAddr) -> Response {
    let forwarded_for = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let client = app.client_ip(peer.ip(), forwarded_for);
    let info = describe(app, &client.to_string());
    let mut response = if wants_html(req.headers().get(ACCEPT)) {
        with_type(StatusCode::OK, "text/html; charset=utf-8", html(&info))
    } else {
        with_type(StatusCode::OK, "application/json", info.to_string())
    };
    // Lets a load test through a proxy tell which process answered without parsing the body.
    if let Ok(pid) = HeaderValue::from_str(&std::process::id().to_string()) {
        response.headers_mut().insert("x-app-pid", pid);
    }
    response
}

pub fn describe(app: &AppState, client: &str) -> Value {
    let placement = &app.placement;
    json!({
        "args": std::env::args().skip(1).map(|arg| redact_credentials(&arg)).collect::<Vec<_>>(),
        "platform": { "os": std::env::consts::OS, "arch": std::env::consts::ARCH },
        "version": env!("CARGO_PKG_VERSION"),
        "rustc": env!("APP_RUSTC_VERSION"),
        "rss_bytes": crate::procfs::rss_bytes(std::process::id()),
        "exec_path": std::env::current_exe().ok(),
        "pid": std::process::id(),
        // SAFETY: getppid has no preconditions.
        "ppid": unsafe { libc::getppid() },
        "cwd": std::env::current_dir().ok(),
        "cpus": online_cpus(),
        "mode": placement.mode.as_str(),
        "port": placement.local_addr.port(),
        "listen": placement.local_addr.to_string(),
        "listener": placement.listener_source.to_string(),
        "worker": placement.worker,
        "workers": placement.workers,
        "threads": app.config.threads,
        "uptime_s": app.started.elapsed().as_secs_f64(),
        "instance": placement.instance,
        "client": client,
    })
}

fn wants_html(accept: Option<&HeaderValue>) -> bool {
    accept.and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"))
}

/// Processors online, as Node's `os.cpus().length` counts them (not the ones this process may use).
fn online_cpus() -> i64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }
}

/// Hides the password of a URL in an argument (`--redis-url redis://:secret@host`).
fn redact_credentials(arg: &str) -> String {
    let Some(scheme_end) = arg.find("://").map(|i| i + 3) else {
        return arg.to_string();
    };
    let authority_end = arg[scheme_end..].find('/').map_or(arg.len(), |i| scheme_end + i);
    match arg[scheme_end..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &arg[..scheme_end], &arg[scheme_end + at..]),
        None => arg.to_string(),
    }
}

fn html(info: &Value) -> String {
    let rows: String = info
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| {
            let shown = match value {
                Value::String(text) => text.clone(),
                Value::Null => "-".into(),
                other => other.to_string(),
            };
            format!("<tr><th>{}</th><td>{}</td></tr>\n", escape(key), escape(&shown))
        })
        .collect();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>app info</title><style>body{{font-family:system-ui,sans-serif;margin:1rem}}\
         th{{text-align:left;padding-right:1rem;vertical-align:top}}td{{font-family:monospace;word-break:break-all}}</style>\
         </head><body><h1>Process info</h1><table>\n{rows}</table></body></html>\n"
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_url_arguments_are_hidden() {
        assert_eq!(redact_credentials("redis://:pw@127.0.0.1:6379/0"), "redis://***@127.0.0.1:6379/0");
        assert_eq!(redact_credentials("--redis-url=redis://u:p@h/"), "--redis-url=redis://***@h/");
        assert_eq!(redact_credentials("redis://127.0.0.1/"), "redis://127.0.0.1/");
        assert_eq!(redact_credentials("--port"), "--port");
    }

    #[test]
    fn html_escapes_values() {
        assert!(html(&json!({"args": ["<script>"]})).contains("[&quot;&lt;script&gt;&quot;]"));
    }
}
