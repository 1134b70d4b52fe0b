//! The Redis URL and its password kept out of sight: read from a file (--redis-url-file) or a
//! systemd credential ($CREDENTIALS_DIRECTORY/redis-url, LoadCredential=), never shown by /info,
//! by the logs or on the command line.

mod support;

use std::os::unix::fs::PermissionsExt;

use serde_json::json;
use support::redis::Redis;
use support::*;

const PASSWORD: &str = "s3cret-Pa55word";

/// A file of the test's holding `text`, readable by its owner only.
fn secret_file(dir: &TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.to_str().unwrap().to_string()
}

/// Todos through Redis work (so the URL with its password was used), and the password appears in
/// neither /info (JSON and HTML), nor the logs, nor the process's command line.
fn assert_used_and_hidden(app: &App) {
    let created = send_json(app.addr, "POST", "/v1/todos", &json!({"title": "through redis"}));
    assert_eq!(created.status, 201, "{}", created.body);
    let info = app.get("/info");
    assert!(!info.body.contains(PASSWORD), "/info shows the password: {}", info.body);
    let html = request(app.addr, "GET", "/info", &[("accept", "text/html")], b"");
    assert!(!html.body.contains(PASSWORD), "the /info page shows the password");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", app.pid())).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains(PASSWORD), "the command line holds the password");
    assert!(!app.logs().contains(PASSWORD), "the logs show the password:\n{}", app.logs());
}

#[test]
fn the_redis_url_comes_from_a_file_and_its_password_is_never_shown() {
    let redis = Redis::with_password(PASSWORD);
    let dir = temp_dir();
    let file = secret_file(&dir, "redis-url", &format!("{}\n# the first line counts\n", redis.url()));
    let app = App::activated(&["--redis-url-file", &file, "--todos-store", "redis"]).ready();
    app.wait_for_log("chat relay subscribed");
    assert_used_and_hidden(&app);
}

#[test]
fn the_redis_url_comes_from_a_systemd_credential_and_its_password_is_never_shown() {
    let redis = Redis::with_password(PASSWORD);
    let credentials = temp_dir();
    secret_file(&credentials, "redis-url", &redis.url());
    let dir = credentials.path().to_str().unwrap();
    let mut app = App::activated_with(
        &["--mode", "cluster", "--workers", "2", "--todos-store", "redis"],
        &[("CREDENTIALS_DIRECTORY", dir)],
    )
    .ready();
    app.wait_for_notification("STATUS=2/2 workers ready");
    assert_used_and_hidden(&app);
}

#[test]
fn a_wrong_redis_password_is_reported_without_showing_it() {
    let redis = Redis::with_password(PASSWORD);
    let dir = temp_dir();
    let wrong = redis.url().replace(PASSWORD, "wrong-Pa55word");
    let file = secret_file(&dir, "redis-url", &wrong);
    let app = App::activated(&["--redis-url-file", &file, "--todos-store", "redis"]).ready();
    let refused = send_json(app.addr, "POST", "/v1/todos", &json!({"title": "nope"}));
    assert_eq!(refused.status, 503, "{}", refused.body);
    app.wait_for_log("chat relay cannot subscribe");
    assert!(!app.logs().contains("wrong-Pa55word"), "{}", app.logs());
    assert!(!refused.body.contains("wrong-Pa55word"), "{}", refused.body);
    assert!(!app.get("/info").body.contains("wrong-Pa55word"));
}

#[test]
fn a_redis_password_given_on_the_command_line_is_hidden_from_info() {
    let redis = Redis::with_password(PASSWORD);
    let url = redis.url();
    let app = App::activated(&["--redis-url", &url, "--todos-store", "redis"]).ready();
    let info = app.get("/info");
    assert!(!info.body.contains(PASSWORD), "{}", info.body);
    assert!(!app.logs().contains(PASSWORD), "{}", app.logs());
}
