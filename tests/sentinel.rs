//! Redis that fails over: a master, one or two replicas and three sentinels (real `redis-server`
//! processes on loopback), two app instances on a `redis+sentinel://` URL, chat and todo writes
//! running, and the master killed. Chat and todos must move to the promoted replica with no restart of either
//! instance; with `--todos-wait-replicas 1` no acknowledged todo write may be lost. The figures
//! (how long chat and writes were out, how many writes were lost) are printed, not asserted.

mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::chat::ChatClient;
use support::redis::{Redis, MASTER_NAME};
use support::*;

/// How long the sentinels wait for an answer before they call the master down: short, so the
/// test is quick (production uses seconds).
const DOWN_AFTER: Duration = Duration::from_millis(500);
/// Bounds of the todo writer.
const MOST_WRITES: usize = 5_000;
/// Writes acknowledged after the kill before the writer stops: proof that writes resumed.
const WRITES_AFTER: usize = 10;

struct Deployment {
    master: Redis,
    replicas: Vec<Redis>,
    sentinels: Vec<Redis>,
}

impl Deployment {
    /// Starts them all and waits until the replicas are in sync and each sentinel knows them and
    /// the two other sentinels (else a fail-over cannot be agreed on).
    fn start(replicas: usize) -> Deployment {
        let master = Redis::start();
        let replicas: Vec<Redis> = (0..replicas).map(|_| Redis::replica_of(&master)).collect();
        let sentinels: Vec<Redis> = (0..3).map(|_| Redis::sentinel_of(&master, DOWN_AFTER)).collect();
        for replica in &replicas {
            eventually("the replica is in sync", || {
                replica.replication("master_link_status").as_deref() == Some("up")
            });
        }
        let known = replicas.len().to_string();
        for sentinel in &sentinels {
            eventually("each sentinel knows the replicas and the other sentinels", || {
                let master = sentinel.monitored();
                master.get("num-slaves") == Some(&known)
                    && master.get("num-other-sentinels").map(String::as_str) == Some("2")
            });
        }
        Deployment { master, replicas, sentinels }
    }

    fn url(&self) -> String {
        let sentinels: Vec<String> =
            self.sentinels.iter().map(|sentinel| sentinel.addr.to_string()).collect();
        format!("redis+sentinel://{}/{MASTER_NAME}/0", sentinels.join(","))
    }

    /// The replica every sentinel names master, if they agree on one.
    fn promoted(&self) -> Option<&Redis> {
        let named = self.sentinels[0].master_addr()?;
        let replica = self.replicas.iter().find(|replica| replica.addr == named)?;
        self.sentinels.iter().all(|sentinel| sentinel.master_addr() == Some(named)).then_some(replica)
    }
}

/// What the writer saw: the todos acknowledged (key, id, when), the 503s, and among them those
/// that say the write was made but not confirmed by enough replicas.
#[derive(Default)]
struct Writes {
    acknowledged: Vec<(String, i64, Instant)>,
    refused: usize,
    unconfirmed: usize,
}

/// Creates todos with an Idempotency-Key each, alternating between the instances, until `stop`
/// (and the current key acknowledged) or the bound; a 503 is retried with the same key, as a client
/// that honours the error would.
fn write_todos(addrs: [SocketAddr; 2], stop: Arc<AtomicBool>, writes: Arc<Mutex<Writes>>) {
    let started = Instant::now();
    let mut attempt = 0;
    for i in 0..MOST_WRITES {
        let key = format!("write-{i}");
        loop {
            assert!(started.elapsed() < PATIENCE * 2, "the writer ran out of time on {key}");
            attempt += 1;
            let body = serde_json::json!({ "title": key }).to_string();
            let headers = [("content-type", "application/json"), ("idempotency-key", key.as_str())];
            let answer = request(addrs[attempt % 2], "POST", "/v1/todos", &headers, body.as_bytes());
            match answer.status {
                201 => {
                    let id = answer.json()["id"].as_i64().unwrap();
                    writes.lock().unwrap().acknowledged.push((key.clone(), id, Instant::now()));
                    break;
                }
                503 => {
                    let mut writes = writes.lock().unwrap();
                    writes.refused += 1;
                    if answer.error().contains("replicas required confirmed it") {
                        writes.unconfirmed += 1;
                    }
                    drop(writes);
                    // The client's own pace between retries (the answer says Retry-After: 1).
                    std::thread::sleep(Duration::from_millis(50));
                }
                status => panic!("POST /v1/todos answered {status}: {}", answer.body),
            }
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
    }
}

/// Kills the master under chat and todo load and checks that both come back on the promoted
/// replica; `wait` runs the instances with --todos-wait-replicas 1. Returns the writes lost.
fn fail_over(replicas: usize, wait: bool) -> usize {
    let mut redis = Deployment::start(replicas);
    let wait_args = ["--todos-wait-replicas", "1", "--todos-wait-timeout", "500ms"];
    let mut apps = two_apps(&redis, if wait { &wait_args } else { &[] });
    let pids = apps.each_ref().map(App::pid);
    let mut crosses = chat_between(&apps);
    eventually("chat crosses the instances before the fail-over", &mut crosses);

    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(Mutex::new(Writes::default()));
    let writer = {
        let (addrs, stop, writes) = ([apps[0].addr, apps[1].addr], stop.clone(), writes.clone());
        std::thread::spawn(move || write_todos(addrs, stop, writes))
    };
    eventually("todos are written before the fail-over", || writes.lock().unwrap().acknowledged.len() >= 20);

    redis.master.stop();
    let killed = Instant::now();
    // Polled together, so that the figures say how much of the gap is the sentinels' own.
    let mut promoted = None;
    eventually("chat crosses the instances again after the master is killed", || {
        if promoted.is_none() && redis.promoted().is_some() {
            promoted = Some(killed.elapsed());
        }
        crosses()
    });
    let chat_gap = killed.elapsed();
    eventually("the sentinels agree on the promoted replica", || redis.promoted().is_some());
    let promoted = promoted.unwrap_or_else(|| killed.elapsed());
    if wait && replicas == 1 {
        // With one replica, and that one promoted, nothing can confirm a write until the old
        // master is back, as its unit's Restart= brings it: the sentinels make it a replica.
        redis.master.resume();
        eventually("the old master replicates the promoted one", || {
            redis.promoted().unwrap().replication("connected_slaves").as_deref() == Some("1")
        });
    }
    let after_kill = |writes: &Writes| writes.acknowledged.iter().filter(|(_, _, at)| *at > killed).count();
    eventually("todo writes resume", || after_kill(&writes.lock().unwrap()) >= WRITES_AFTER);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let writes = writes.lock().unwrap();
    if wait && replicas == 1 {
        assert!(writes.unconfirmed > 0, "no 503 said that no replica confirmed the write");
    }
    let first_after = writes.acknowledged.iter().map(|(_, _, at)| *at).find(|at| *at > killed).unwrap();

    for app in &mut apps {
        assert!(app.child.try_wait().unwrap().is_none(), "an instance exited: {}", app.logs());
    }
    assert_eq!(apps.each_ref().map(App::pid), pids);
    apps[0].wait_for_log("redis master connection dropped; asking the sentinels again");

    let mut lost = 0;
    for (key, id, _) in &writes.acknowledged {
        let todo = apps[1].get(&format!("/v1/todos/{id}"));
        match todo.status {
            200 => assert_eq!(todo.json()["title"], key.as_str(), "todo {id}"),
            404 => lost += 1,
            status => panic!("GET /v1/todos/{id} answered {status}: {}", todo.body),
        }
    }
    let titles = all_titles(apps[1].addr);
    let distinct: HashSet<&String> = titles.iter().collect();
    assert_eq!(distinct.len(), titles.len(), "a key made two todos");
    println!(
        "sentinel fail-over ({replicas} replicas, WAIT {}): all three sentinels named the promoted replica {} ms after \
         the master was killed; chat resumed after {} ms; todo writes resumed after {} ms; {} writes acknowledged, \
         {} lost, {} answers 503 (retried with their key)",
        if wait { "1" } else { "off" },
        promoted.as_millis(),
        chat_gap.as_millis(),
        (first_after - killed).as_millis(),
        writes.acknowledged.len(),
        lost,
        writes.refused,
    );
    lost
}

/// Two instances on the deployment's Sentinel URL with todos in Redis (and `extra` flags), their
/// chat relays subscribed.
fn two_apps(redis: &Deployment, extra: &[&str]) -> [App; 2] {
    let url = redis.url();
    let mut args =
        vec!["--redis-url", &url, "--todos-store", "redis", "--chat-rate", "1000", "--chat-burst", "1000"];
    args.extend(extra);
    let apps = [App::activated(&args).ready(), App::activated(&args).ready()];
    for app in &apps {
        app.wait_for_log("chat relay subscribed");
    }
    apps
}

/// A probe of chat across the instances: each call has alice (on the first) say a new message,
/// and tells whether bob (on the second) receives it within 200 ms.
fn chat_between(apps: &[App; 2]) -> impl FnMut() -> bool {
    let alice = ChatClient::join(apps[0].addr, "lobby", "alice");
    let mut bob = ChatClient::join(apps[1].addr, "lobby", "bob");
    let mut said = 0;
    move || {
        said += 1;
        let text = format!("message {said}");
        alice.say(&text);
        bob.try_expect(Duration::from_millis(200), |frame| frame["text"] == text).is_some()
    }
}

/// Every todo title, page by page.
fn all_titles(addr: SocketAddr) -> Vec<String> {
    let mut titles = Vec::new();
    loop {
        let page =
            request(addr, "GET", &format!("/v1/todos?limit=100&offset={}", titles.len()), &[], b"").json();
        let items = page["items"].as_array().unwrap();
        if items.is_empty() {
            return titles;
        }
        titles.extend(items.iter().map(|todo| todo["title"].as_str().unwrap().to_string()));
    }
}

#[test]
fn chat_and_todos_follow_the_promoted_replica_and_wait_keeps_every_acknowledged_write() {
    assert_eq!(fail_over(1, true), 0, "acknowledged todo writes were lost despite WAIT");
}

#[test]
fn with_two_replicas_wait_keeps_every_acknowledged_write_and_writes_go_on_after_the_promotion() {
    assert_eq!(fail_over(2, true), 0, "acknowledged todo writes were lost despite WAIT");
}

#[test]
fn without_wait_chat_and_todos_follow_the_promoted_replica_at_once() {
    let lost = fail_over(1, false);
    println!("without WAIT, {lost} acknowledged todo writes were lost in the fail-over");
}

#[test]
fn a_master_demoted_alive_by_a_manual_fail_over_is_left_for_the_promoted_replica() {
    let redis = Deployment::start(1);
    let apps = two_apps(&redis, &["--todos-wait-replicas", "1"]);
    let mut crosses = chat_between(&apps);
    eventually("chat crosses the instances", &mut crosses);
    let created = |app: &App| send_json(app.addr, "POST", "/v1/todos", &serde_json::json!({"title": "t"}));
    assert_eq!(created(&apps[0]).status, 201);

    // The old master stays up and answers, as a replica: the instances must not keep using it.
    // Refused (NOGOODSLAVE) while the sentinel has not yet heard enough from the replica.
    eventually("a sentinel starts a fail-over", || {
        let started: ::redis::RedisResult<()> =
            redis.sentinels[0].command(&["SENTINEL", "FAILOVER", MASTER_NAME]);
        started.is_ok() || started.is_err_and(|error| error.code() == Some("INPROG"))
    });
    eventually("the sentinels agree on the promoted replica", || redis.promoted().is_some());
    let promoted = redis.promoted().unwrap();
    eventually("the old master is a replica of the promoted one", || {
        redis.master.replication("role").as_deref() == Some("slave")
            && promoted.replication("connected_slaves").as_deref() == Some("1")
    });
    for app in &apps {
        eventually("a todo write lands on the promoted replica", || {
            let answer = created(app);
            answer.status == 201 && {
                let key = format!("app:todo:{}", answer.json()["id"]);
                promoted.command::<Option<String>>(&["HGET", &key, "title"]).unwrap().as_deref() == Some("t")
            }
        });
    }
    eventually("chat crosses the instances through the promoted replica", &mut crosses);
}

#[test]
fn with_no_sentinel_answering_the_instance_serves_and_todo_requests_get_a_503_naming_the_sentinels() {
    let port = support::server_port();
    let url = format!("redis+sentinel://127.0.0.1:{port}/{MASTER_NAME}");
    let app = App::activated(&["--redis-url", &url, "--todos-store", "redis"]).ready();
    assert_eq!(app.get("/").status, 200);
    // The first answers may be "unreachable a moment ago": the relay's own attempt just failed.
    eventually("a 503 says that no sentinel answered", || {
        let answer = send_json(app.addr, "POST", "/v1/todos", &serde_json::json!({"title": "t"}));
        assert_eq!(answer.status, 503, "{}", answer.body);
        let error = answer.error();
        error.contains("no sentinel named the master") && error.contains(&format!("127.0.0.1:{port}"))
    });
}
