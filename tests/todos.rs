//! /v1/todos on the real binary: the API and its every refusal, durability across `kill -9`, and
//! one list seen by several processes (one SQLite file) and by several hosts (one Redis).

mod support;

use serde_json::{json, Value};
use support::redis::Redis;
use support::*;

fn app_with_data(dir: &TempDir, extra: &[&str]) -> App {
    let data = dir.path().to_str().unwrap();
    let mut args = vec!["--data-dir", data];
    args.extend_from_slice(extra);
    App::activated(&args).ready()
}

fn create(app: &App, title: &str) -> Value {
    let response = send_json(app.addr, "POST", "/v1/todos", &json!({ "title": title }));
    assert_eq!(response.status, 201, "{}", response.body);
    let todo = response.json();
    assert_eq!(response.header("location"), Some(format!("/v1/todos/{}", todo["id"]).as_str()));
    todo
}

fn titles(app: &App, query: &str) -> Vec<String> {
    let response = app.get(&format!("/v1/todos{query}"));
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn todos_are_created_listed_newest_first_changed_and_deleted() {
    let data = temp_dir();
    let app = app_with_data(&data, &[]);
    let first = create(&app, "  buy milk  ");
    assert_eq!(first["title"], "buy milk", "the title is trimmed");
    assert_eq!(first["completed"], false);
    assert!(first["created_at"].as_str().unwrap().ends_with('Z'));
    create(&app, "walk the dog");
    create(&app, "write tests");

    assert_eq!(titles(&app, ""), ["write tests", "walk the dog", "buy milk"]);
    assert_eq!(titles(&app, "?limit=1&offset=1"), ["walk the dog"]);
    let page = app.get("/v1/todos?limit=2").json();
    assert_eq!(page["total"], 3);
    assert_eq!(page["limit"], 2);

    let path = format!("/v1/todos/{}", first["id"]);
    assert_eq!(app.get(&path).json()["title"], "buy milk");
    let patched = send_json(app.addr, "PATCH", &path, &json!({ "completed": true }));
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.json()["completed"], true);
    assert_eq!(patched.json()["title"], "buy milk");
    let renamed =
        send_json(app.addr, "PATCH", &path, &json!({ "title": "buy oat milk", "completed": false }));
    assert_eq!(renamed.json()["title"], "buy oat milk");
    assert_eq!(renamed.json()["completed"], false);

    let deleted = request(app.addr, "DELETE", &path, &[], b"");
    assert_eq!(deleted.status, 204);
    assert!(deleted.body.is_empty());
    assert_eq!(app.get(&path).status, 404);
    assert_eq!(request(app.addr, "DELETE", &path, &[], b"").status, 404);
    assert_eq!(titles(&app, ""), ["write tests", "walk the dog"]);
}

/// Sends `body` raw with `content_type` and returns status and error message.
fn refused(app: &App, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> (u16, String) {
    let headers: Vec<(&str, &str)> = content_type.map(|ct| ("content-type", ct)).into_iter().collect();
    let response = request(app.addr, method, path, &headers, body);
    (response.status, response.error())
}

#[test]
fn every_invalid_request_is_refused_with_a_reason() {
    let data = temp_dir();
    let app = app_with_data(&data, &["--todos-max-limit", "50"]);
    let json_type = Some("application/json");
    let post = |body: &str| refused(&app, "POST", "/v1/todos", json_type, body.as_bytes());

    let (status, message) = post(r#"{"title": "   "}"#);
    assert_eq!((status, message.as_str()), (400, "title must not be empty"));
    let (status, message) = post(&json!({ "title": "x".repeat(201) }).to_string());
    assert_eq!(status, 400);
    assert!(message.contains("at most 200 characters"), "{message}");
    assert_eq!(send_json(app.addr, "POST", "/v1/todos", &json!({ "title": "é".repeat(200) })).status, 201);
    let (status, message) = post("{}");
    assert_eq!(status, 400);
    assert!(message.contains("missing field `title`"), "{message}");
    let (status, message) = post(r#"{"title": "a", "owner": "me"}"#);
    assert_eq!(status, 400);
    assert!(message.contains("unknown field `owner`"), "{message}");
    let (status, message) = post(r#"{"title": 5}"#);
    assert_eq!(status, 400);
    assert!(message.contains("invalid type"), "{message}");
    let (status, message) = post("{\n  \"title\": \"a\",\n  oops\n}");
    assert_eq!(status, 400);
    assert!(message.starts_with("malformed JSON") && message.contains("line 3 column 3"), "{message}");
    let (status, message) = post(r#"{"title": "a""#);
    assert_eq!(status, 400);
    assert!(message.contains("line 1 column 13"), "{message}");

    let (status, message) = refused(&app, "POST", "/v1/todos", None, br#"{"title":"a"}"#);
    assert_eq!(status, 415);
    assert!(message.contains("application/json"), "{message}");
    let (status, _) = refused(&app, "POST", "/v1/todos", Some("text/plain"), br#"{"title":"a"}"#);
    assert_eq!(status, 415);
    let big = format!(r#"{{"title": "a", "pad": "{}"}}"#, " ".repeat(16 * 1024));
    let (status, message) = post(&big);
    assert_eq!(status, 413);
    assert!(message.contains("16384"), "{message}");

    let (status, message) = refused(&app, "GET", "/v1/todos?limit=51", None, b"");
    assert_eq!(status, 400);
    assert!(message.contains("1 to 50"), "{message}");
    assert_eq!(refused(&app, "GET", "/v1/todos?offset=x", None, b"").0, 400);

    let todo = create(&app, "patch me");
    let path = format!("/v1/todos/{}", todo["id"]);
    let (status, message) = refused(&app, "PATCH", &path, json_type, b"{}");
    assert_eq!(status, 400);
    assert!(message.contains("nothing to change"), "{message}");
    assert_eq!(refused(&app, "PATCH", &path, json_type, br#"{"completed": "yes"}"#).0, 400);
    assert_eq!(refused(&app, "PATCH", &path, json_type, br#"{"title": ""}"#).0, 400);
    assert_eq!(refused(&app, "PATCH", &path, json_type, br#"{"done": true}"#).0, 400);
    assert_eq!(refused(&app, "PATCH", &path, Some("text/plain"), br#"{"completed": true}"#).0, 415);

    for missing in ["/v1/todos/999999", "/v1/todos/abc", "/v1/todos/-1", "/v1/todos/0"] {
        let (status, message) = refused(&app, "GET", missing, None, b"");
        assert_eq!(status, 404, "{missing}");
        assert!(message.contains("no todo"), "{message}");
        assert_eq!(refused(&app, "PATCH", missing, json_type, br#"{"completed": true}"#).0, 404, "{missing}");
    }
    let (status, _) = refused(&app, "PUT", &path, json_type, b"{}");
    assert_eq!(status, 405);
}

#[test]
fn a_kill_right_after_a_201_loses_nothing() {
    let data = temp_dir();
    let mut app = app_with_data(&data, &[]);
    // Concurrent writers so that the kill lands while other writes are being committed.
    let addr = app.addr;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            std::thread::spawn(move || {
                let mut acknowledged = Vec::new();
                for i in 0..400 {
                    let body = json!({ "title": format!("writer {w} item {i}") }).to_string();
                    match try_request(
                        addr,
                        "POST",
                        "/v1/todos",
                        &[("content-type", "application/json")],
                        body.as_bytes(),
                    ) {
                        Ok(response) if response.status == 201 => {
                            acknowledged.push(response.json()["id"].as_i64().unwrap())
                        }
                        _ => break, // Killed.
                    }
                }
                acknowledged
            })
        })
        .collect();
    // Kill as soon as a 201 has been seen by this thread too.
    eventually("some todos are acknowledged", || {
        app.get("/v1/todos?limit=1").json()["total"].as_u64().unwrap() >= 20
    });
    let mut witness = send_json(addr, "POST", "/v1/todos", &json!({ "title": "the last word" }));
    assert_eq!(witness.status, 201);
    app.signal(libc::SIGKILL);
    assert!(!app.wait_exit().success());
    // The test holds the listening socket (as systemd would): close it, or writers connecting after
    // the kill would wait in its backlog for an answer that never comes.
    drop(app.socket.take());
    let acknowledged: Vec<i64> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();

    let app = app_with_data(&data, &[]);
    let total = app.get("/v1/todos?limit=1").json()["total"].as_u64().unwrap();
    assert!(total as usize > acknowledged.len(), "{total} stored, {} acknowledged", acknowledged.len());
    for id in acknowledged.iter().chain([&witness.json()["id"].as_i64().unwrap()]) {
        assert_eq!(app.get(&format!("/v1/todos/{id}")).status, 200, "acknowledged todo {id} was lost");
    }
    witness = app.get(&format!("/v1/todos/{}", witness.json()["id"]));
    assert_eq!(witness.json()["title"], "the last word");
}

#[test]
fn two_processes_on_one_data_dir_share_the_todos() {
    let data = temp_dir();
    let a = app_with_data(&data, &[]);
    let b = app_with_data(&data, &[]);
    let from_a = create(&a, "written through a");
    let from_b = create(&b, "written through b");
    assert_eq!(titles(&a, ""), ["written through b", "written through a"]);
    assert_eq!(titles(&b, ""), ["written through b", "written through a"]);
    let patched =
        send_json(b.addr, "PATCH", &format!("/v1/todos/{}", from_a["id"]), &json!({ "completed": true }));
    assert_eq!(patched.status, 200);
    assert_eq!(a.get(&format!("/v1/todos/{}", from_a["id"])).json()["completed"], true);
    assert_eq!(request(a.addr, "DELETE", &format!("/v1/todos/{}", from_b["id"]), &[], b"").status, 204);
    assert_eq!(b.get(&format!("/v1/todos/{}", from_b["id"])).status, 404);
}

#[test]
fn concurrent_writes_from_two_processes_all_land_in_batched_commits() {
    let data = temp_dir();
    let apps = [app_with_data(&data, &[]), app_with_data(&data, &[])];
    // Four clients per process at once: both writers contend for the file (they take turns
    // through its lock file) and each groups what queued meanwhile into one commit.
    std::thread::scope(|scope| {
        for addr in apps.iter().map(|app| app.addr) {
            for client in 0..4 {
                scope.spawn(move || {
                    for i in 0..25 {
                        let todo = json!({ "title": format!("client {client} item {i}") });
                        assert_eq!(send_json(addr, "POST", "/v1/todos", &todo).status, 201);
                    }
                });
            }
        }
    });
    assert_eq!(apps[0].get("/v1/todos?limit=1").json()["total"], 200);
    for app in &apps {
        let page = app.get("/metrics").body;
        let count = |series: &str| metric(&page, series).unwrap_or_else(|| panic!("no {series} in\n{page}"));
        assert_eq!(count("app_todo_committed_writes_total"), 100.0, "every write of this process, once");
        let commits = count("app_todo_commits_total");
        assert!((1.0..=100.0).contains(&commits), "{commits} commits for 100 writes");
    }
}

#[test]
fn cluster_workers_share_the_todos() {
    let data = temp_dir();
    let app = app_with_data(&data, &["--mode", "cluster", "--workers", "2"]);
    for i in 0..20 {
        create(&app, &format!("item {i}"));
    }
    // Whichever worker answers, the list is whole.
    for _ in 0..10 {
        assert_eq!(app.get("/v1/todos?limit=1").json()["total"], 20);
    }
}

#[test]
fn apps_sharing_one_redis_share_the_todos_like_hosts_do() {
    let redis = Redis::start();
    let url = redis.url();
    // Each has a data directory of its own: only Redis is shared, as between hosts.
    let (data_a, data_b) = (temp_dir(), temp_dir());
    let a = app_with_data(&data_a, &["--redis-url", &url, "--todos-store", "redis"]);
    let b = app_with_data(&data_b, &["--redis-url", &url, "--todos-store", "redis"]);
    let first = create(&a, "on host a");
    create(&b, "on host b");
    assert_eq!(titles(&a, ""), ["on host b", "on host a"]);
    assert_eq!(titles(&b, "?limit=1&offset=1"), ["on host a"]);
    let path = format!("/v1/todos/{}", first["id"]);
    let patched = send_json(b.addr, "PATCH", &path, &json!({ "completed": true, "title": "renamed" }));
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(a.get(&path).json()["title"], "renamed");
    assert_eq!(a.get(&path).json()["completed"], true);
    assert_eq!(request(b.addr, "DELETE", &path, &[], b"").status, 204);
    assert_eq!(a.get(&path).status, 404);
    assert_eq!(a.get("/v1/todos").json()["total"], 1);
    assert_eq!(a.get("/healthz").status, 200);
}

#[test]
fn with_redis_away_todos_and_health_say_503_and_recover() {
    let mut redis = Redis::start();
    let data = temp_dir();
    let app = app_with_data(&data, &["--redis-url", &redis.url(), "--todos-store", "redis"]);
    create(&app, "before");
    redis.stop();
    let response = send_json(app.addr, "POST", "/v1/todos", &json!({ "title": "while away" }));
    assert_eq!(response.status, 503, "{}", response.body);
    assert!(response.error().contains("redis"), "{}", response.body);
    assert_eq!(response.header("retry-after"), Some("1"));
    assert_eq!(app.get("/healthz").status, 503);
    redis.resume();
    eventually("the store works again", || {
        send_json(app.addr, "POST", "/v1/todos", &json!({ "title": "after" })).status == 201
    });
    assert_eq!(app.get("/healthz").status, 200);
}

#[test]
fn an_id_has_one_canonical_form() {
    let data = temp_dir();
    let app = app_with_data(&data, &[]);
    let mut last = create(&app, "first");
    while last["id"].as_i64().unwrap() < 5 {
        last = create(&app, "more");
    }
    assert_eq!(app.get("/v1/todos/5").status, 200);
    for other in ["/v1/todos/05", "/v1/todos/+5", "/v1/todos/%2B5", "/v1/todos/5.0", "/v1/todos/0x5"] {
        let response = app.get(other);
        assert_eq!(response.status, 404, "{other}: {}", response.body);
        assert!(response.error().contains("no todo"), "{other}: {}", response.body);
    }
}

/// `POST /v1/todos` of `title` with `Idempotency-Key: key`.
fn create_once(addr: std::net::SocketAddr, key: &str, title: &str) -> Response {
    let body = json!({ "title": title }).to_string();
    let headers = [("content-type", "application/json"), ("idempotency-key", key)];
    request(addr, "POST", "/v1/todos", &headers, body.as_bytes())
}

fn a_retry_with_the_same_idempotency_key_gets_the_first_answer(app: &App) {
    let first = create_once(app.addr, r#""order-1""#, "buy milk");
    assert_eq!(first.status, 201, "{}", first.body);
    let again = create_once(app.addr, r#""order-1""#, "buy milk");
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(again.json(), first.json(), "the first answer again, not a second todo");
    assert_eq!(again.header("location"), first.header("location"));
    // The bare form of the same key is the same key.
    assert_eq!(create_once(app.addr, "order-1", "buy milk").json()["id"], first.json()["id"]);
    // Patched since: a retry still gets the creation's answer.
    let path = first.header("location").unwrap().to_string();
    assert_eq!(send_json(app.addr, "PATCH", &path, &json!({ "completed": true })).status, 200);
    assert_eq!(create_once(app.addr, "order-1", "buy milk").json(), first.json());
    assert_eq!(app.get("/v1/todos").json()["total"], 1);

    let reused = create_once(app.addr, "order-1", "buy bread");
    assert_eq!(reused.status, 422, "{}", reused.body);
    assert!(reused.error().contains("another title"), "{}", reused.body);
    let other = create_once(app.addr, "order-2", "buy milk");
    assert_eq!(other.status, 201);
    assert_ne!(other.json()["id"], first.json()["id"]);

    let long = "k".repeat(256);
    for bad in [format!("\"{long}\""), long.clone(), r#""""#.to_string(), r#""unclosed"#.to_string()] {
        let refused = create_once(app.addr, &bad, "x");
        assert_eq!(refused.status, 400, "{bad}: {}", refused.body);
        assert!(refused.error().contains("Idempotency-Key"), "{}", refused.body);
    }
    let headers = [("content-type", "application/json"), ("idempotency-key", "a"), ("idempotency-key", "b")];
    assert_eq!(request(app.addr, "POST", "/v1/todos", &headers, br#"{"title":"x"}"#).status, 400);
    assert_eq!(app.get("/v1/todos").json()["total"], 2);
}

#[test]
fn a_retry_with_the_same_idempotency_key_gets_the_first_answer_from_sqlite() {
    let data = temp_dir();
    a_retry_with_the_same_idempotency_key_gets_the_first_answer(&app_with_data(&data, &[]));
}

#[test]
fn a_retry_with_the_same_idempotency_key_gets_the_first_answer_from_redis() {
    let redis = Redis::start();
    let data = temp_dir();
    let app = app_with_data(&data, &["--redis-url", &redis.url(), "--todos-store", "redis"]);
    a_retry_with_the_same_idempotency_key_gets_the_first_answer(&app);
}

/// Keys are kept for `--idempotency-retention` and at most `--idempotency-keys` of them.
fn idempotency_keys_are_bounded_in_number_and_time(extra: &[&str]) {
    let data = temp_dir();
    let mut args = vec!["--idempotency-keys", "2"];
    args.extend_from_slice(extra);
    let app = app_with_data(&data, &args);
    let first = create_once(app.addr, "k1", "one").json()["id"].clone();
    create_once(app.addr, "k2", "two");
    assert_eq!(create_once(app.addr, "k1", "one").json()["id"], first, "two keys are remembered");
    create_once(app.addr, "k3", "three");
    let forgotten = create_once(app.addr, "k1", "one");
    assert_eq!(forgotten.status, 201);
    assert_ne!(forgotten.json()["id"], first, "the oldest of three keys is forgotten");

    // Kept while the instance runs: its store lives in this directory.
    let short_data = temp_dir();
    let short = app_with_data(&short_data, &[&["--idempotency-retention", "300ms"], extra].concat());
    let kept = create_once(short.addr, "k", "t").json()["id"].clone();
    eventually("the key is forgotten after its retention", || {
        create_once(short.addr, "k", "t").json()["id"] != kept
    });
}

#[test]
fn idempotency_keys_are_bounded_in_sqlite() {
    idempotency_keys_are_bounded_in_number_and_time(&[]);
}

#[test]
fn idempotency_keys_are_bounded_in_redis() {
    let redis = Redis::start();
    idempotency_keys_are_bounded_in_number_and_time(&["--redis-url", &redis.url(), "--todos-store", "redis"]);
}

#[test]
fn a_write_left_unanswered_by_a_frozen_redis_is_not_duplicated_by_its_retry() {
    let redis = Redis::start();
    let data = temp_dir();
    let app = app_with_data(&data, &["--redis-url", &redis.url(), "--todos-store", "redis"]);
    let before = create_once(app.addr, "before", "before");
    assert_eq!(before.status, 201, "{}", before.body);

    redis.freeze();
    let unanswered = create_once(app.addr, "retry-me", "exactly once");
    assert_eq!(unanswered.status, 503, "{}", unanswered.body);
    assert!(unanswered.error().contains("may still be applied"), "{}", unanswered.body);
    redis.thaw();
    // Redis carries out the write it received while frozen: the 503 was not the whole story.
    eventually("the unanswered write is applied once Redis wakes", || {
        let page = app.get("/v1/todos");
        page.status == 200 && page.json()["total"] == 2
    });
    let retried = create_once(app.addr, "retry-me", "exactly once");
    assert_eq!(retried.status, 201, "{}", retried.body);
    let page = app.get("/v1/todos").json();
    assert_eq!(page["total"], 2, "the retry created no duplicate: {page}");
    assert_eq!(page["items"][0]["id"], retried.json()["id"]);
    assert_eq!(page["items"][0]["title"], "exactly once");
}

#[test]
fn concurrent_retries_with_one_key_on_two_cluster_workers_create_one_todo() {
    let data = temp_dir();
    let app = app_with_data(&data, &["--mode", "cluster", "--workers", "2"]);
    let addr = app.addr;
    let retries: Vec<_> =
        (0..8).map(|_| std::thread::spawn(move || create_once(addr, "same-key", "raced"))).collect();
    let answers: Vec<Value> = retries.into_iter().map(|r| r.join().unwrap()).map(|r| r.json()).collect();
    assert!(answers.iter().all(|answer| answer == &answers[0]), "{answers:?}");
    // Whichever worker answers, one todo.
    for _ in 0..4 {
        assert_eq!(app.get("/v1/todos").json()["total"], 1);
    }
}
