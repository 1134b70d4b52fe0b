//! `GET /info`: what this process is and where it runs (the seeds' info view), as JSON or, for a
//! browser, as a small HTML page. Never the environment: it holds secrets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use hyper::header::{HeaderValue, ACCEPT};
use hyper::{Request, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};

use crate::http::context::Ctx;
use crate::http::response::{with_type, Answer};
use crate::http::state::AppState;

pub(crate) async fn get<B>(ctx: &Ctx, req: Request<B>) -> Answer {
    let info = describe(&ctx.app, &ctx.client(req.headers()).to_string());
    let mut response = if wants_html(req.headers().get(ACCEPT)) {
        let info = serde_json::from_str(&info).unwrap_or(Value::Null);
        with_type(StatusCode::OK, "text/html; charset=utf-8", html(&info))
    } else {
        with_type(StatusCode::OK, "application/json", info)
    };
    // Lets a load test through a proxy tell which process answered without parsing the body.
    static PID: OnceLock<HeaderValue> = OnceLock::new();
    response.headers_mut().insert("x-app-pid", PID.get_or_init(|| std::process::id().into()).clone());
    Ok(response)
}

/// How long a reading of the resident size is shown before it is read again: /proc's statm is
/// rendered by the kernel on each read, a few microseconds that /info, a hot route, need not pay
/// per request for a figure that moves slowly.
const RSS_FRESH_MS: u64 = 100;

/// The resident size, read at most every RSS_FRESH_MS (per process: `since` is its own start).
fn recent_rss_bytes(since: Instant) -> Option<u64> {
    // Milliseconds since `since` + 1 of the last reading (0: never), and its value (0: unknown).
    static READ_AT: AtomicU64 = AtomicU64::new(0);
    static BYTES: AtomicU64 = AtomicU64::new(0);
    let now = since.elapsed().as_millis() as u64 + 1;
    let read_at = READ_AT.load(Ordering::Relaxed);
    if read_at == 0 || now.saturating_sub(read_at) >= RSS_FRESH_MS {
        BYTES.store(crate::infra::procfs::own_rss_bytes().unwrap_or(0), Ordering::Relaxed);
        READ_AT.store(now, Ordering::Relaxed);
    }
    Some(BYTES.load(Ordering::Relaxed)).filter(|&bytes| bytes > 0)
}

/// The fields that may differ from one request to the next.
#[derive(Serialize)]
struct Changing<'a> {
    rss_bytes: Option<u64>,
    ppid: i32,
    mode: &'static str,
    port: u16,
    listen: String,
    listener: String,
    worker: Option<u16>,
    workers: u16,
    threads: u16,
    uptime_s: f64,
    instance: Option<&'a str>,
    client: &'a str,
}

/// The info object as JSON text: the changing fields serialized from a plain struct, then the
/// fixed ones, rendered once (no map is built per request: /info is a hot route).
pub(crate) fn describe(app: &AppState, client: &str) -> String {
    let placement = &app.placement;
    let changing = Changing {
        rss_bytes: recent_rss_bytes(app.started),
        // SAFETY: getppid has no preconditions.
        ppid: unsafe { libc::getppid() },
        mode: placement.mode.as_str(),
        port: placement.local_addr.port(),
        listen: placement.local_addr.to_string(),
        listener: placement.listener_source.to_string(),
        worker: placement.worker,
        workers: placement.workers,
        threads: app.config.threads,
        uptime_s: app.started.elapsed().as_secs_f64(),
        instance: placement.instance.as_deref(),
        client,
    };
    let mut text = serde_json::to_string(&changing).unwrap_or_else(|_| "{}".into());
    text.pop(); // the closing brace
    text.push(',');
    text.push_str(fixed());
    text.push('}');
    text
}

/// What cannot change while this process lives (a reload re-executes, which makes a new one),
/// read once and kept as JSON members without braces: each is a system call or a file read.
fn fixed() -> &'static str {
    static FIXED: OnceLock<String> = OnceLock::new();
    FIXED.get_or_init(|| {
        let fixed = json!({
            "args": std::env::args().skip(1).map(|arg| redact_credentials(&arg)).collect::<Vec<_>>(),
            "platform": { "os": std::env::consts::OS, "arch": std::env::consts::ARCH },
            "version": env!("CARGO_PKG_VERSION"),
            "rustc": env!("APP_RUSTC_VERSION"),
            "exec_path": std::env::current_exe().ok(),
            "pid": std::process::id(),
            "cwd": std::env::current_dir().ok(),
            "cpus": online_cpus(),
        })
        .to_string();
        fixed[1..fixed.len() - 1].to_string()
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

/// Hides the password of a URL in an argument (`--redis-url redis://:secret@host`), and that of a
/// Sentinel URL's sentinels (`...?sentinel_password=secret`).
fn redact_credentials(arg: &str) -> String {
    let Some(scheme_end) = arg.find("://").map(|i| i + 3) else {
        return arg.to_string();
    };
    let authority_end = arg[scheme_end..].find('/').map_or(arg.len(), |i| scheme_end + i);
    let mut redacted = match arg[scheme_end..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &arg[..scheme_end], &arg[scheme_end + at..]),
        None => arg.to_string(),
    };
    const SENTINEL_PASSWORD: &str = "sentinel_password=";
    if let Some(start) = redacted.find(SENTINEL_PASSWORD).map(|i| i + SENTINEL_PASSWORD.len()) {
        let end = redacted[start..].find('&').map_or(redacted.len(), |i| start + i);
        redacted.replace_range(start..end, "***");
    }
    redacted
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
        assert_eq!(
            redact_credentials("redis+sentinel://:pw@h1,h2/m/0?sentinel_password=spw&sentinel_username=u"),
            "redis+sentinel://***@h1,h2/m/0?sentinel_password=***&sentinel_username=u"
        );
        assert_eq!(redact_credentials("--port"), "--port");
    }

    #[test]
    fn html_escapes_values() {
        assert!(html(&json!({"args": ["<script>"]})).contains("[&quot;&lt;script&gt;&quot;]"));
    }
}
