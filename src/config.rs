//! Command line and environment: every flag also reads an environment variable, so a systemd
//! `EnvironmentFile=` or a NixOS module can set it without rewriting `ExecStart=`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

/// How the server uses the machine's processors.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// One process serves every connection (pm2/forever "fork" mode).
    Fork,
    /// A primary process supervises N worker processes that share one listening socket
    /// (Node's `cluster` module, pm2 `-i N`).
    Cluster,
}

/// Where the todos are kept.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum StoreKind {
    /// An SQLite file in --data-dir, shared by the processes of one host.
    Sqlite,
    /// Redis at --redis-url, shared by every host.
    Redis,
}

impl Mode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Fork => "fork",
            Mode::Cluster => "cluster",
        }
    }
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "app",
    version,
    about = "HTTP server with fork and cluster modes, made to run as a socket-activated systemd service behind nginx",
    after_help = "A listening socket handed over by systemd (LISTEN_FDS, fd 3) takes precedence over --host/--port.\n\
                  Signals: SIGTERM/SIGINT drain and exit; SIGHUP reloads with no failed request\n\
                  (fork mode re-executes the binary on the same socket, cluster mode replaces the workers one by one).\n\
                  Durations: seconds (10, 1.5) or with units as in unit files (500ms, 1.5s, 1min, 1min 30s), at most 1h\n\
                  (--idempotency-retention: no upper bound).\n\
                  RUST_LOG filters the logs (default: info); they go to journald when stderr is the journal.\n\
                  NO_COLOR=1 turns colours off (CLICOLOR_FORCE=1 forces them where there is no terminal)."
)]
pub struct Config {
    /// No subcommand: serve.
    #[command(subcommand)]
    pub(crate) command: Option<Command>,

    /// TCP port to listen on when no socket is handed over by systemd.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub(crate) port: u16,

    /// Address to listen on when no socket is handed over by systemd.
    #[arg(long, env = "APP_HOST", default_value = "127.0.0.1")]
    pub(crate) host: IpAddr,

    /// fork: one process serves; cluster: a primary supervises --workers processes. Case-insensitive.
    #[arg(long, env = "APP_MODE", value_enum, ignore_case = true, default_value_t = Mode::Fork)]
    pub(crate) mode: Mode,

    /// Worker processes in cluster mode [default: the number of CPUs available to the process].
    #[arg(long, env = "APP_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub(crate) workers: Option<u16>,

    /// Runtime threads per process. The default 1 makes each process one event loop, as a Node process is;
    /// scale with cluster workers rather than threads.
    #[arg(long, env = "APP_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(crate) threads: u16,

    /// Development: reload when the binary (or --watch-path) changes, as SIGHUP does. Replace the file by
    /// a rename (cargo build, install, mv); a service reloads with `systemctl reload` instead.
    #[arg(long, env = "APP_WATCH")]
    pub(crate) watch: bool,

    /// The file --watch watches [default: the binary itself].
    #[arg(long, env = "APP_WATCH_PATH", value_name = "PATH", requires = "watch")]
    pub(crate) watch_path: Option<PathBuf>,

    /// The systemd instance name reported by /info (the unit passes %i) [default: read from the cgroup].
    #[arg(long, env = "APP_INSTANCE")]
    pub(crate) instance: Option<String>,

    /// Longest time a stop or reload waits for in-flight requests before closing them (e.g. 10, 1.5s, 500ms, 1min).
    #[arg(long, env = "APP_DRAIN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub(crate) drain_timeout: Duration,

    /// Time a client has to send a complete request head, else it is disconnected; also how long an
    /// idle keep-alive connection is kept (a front proxy's upstream keepalive_timeout must be shorter).
    #[arg(long, env = "APP_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub(crate) header_timeout: Duration,

    /// Largest request head (request line and headers) in bytes; larger gets 431.
    #[arg(long, env = "APP_MAX_HEADER_BYTES", default_value_t = 16 * 1024,
          value_parser = clap::value_parser!(u32).range(1024..=1024 * 1024))]
    pub(crate) max_header_bytes: u32,

    /// Largest request body in bytes; larger gets 413. Keep nginx's client_max_body_size equal.
    #[arg(long, env = "APP_MAX_BODY_BYTES", default_value_t = 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1..=1024 * 1024 * 1024))]
    pub(crate) max_body_bytes: u64,

    /// Time a client has to send a request body once its head is in, extended by one second for
    /// every --body-min-rate bytes received; a body still incomplete then gets 408 and the connection
    /// is closed (a slow or endless body does not keep its --max-connections slot).
    #[arg(long, env = "APP_BODY_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub(crate) body_timeout: Duration,

    /// Bytes per second a request body must average beyond --body-timeout: each this many bytes
    /// received earn one more second (0: the whole body must be in within --body-timeout).
    #[arg(long, env = "APP_BODY_MIN_RATE", default_value_t = 4096,
          value_parser = clap::value_parser!(u64).range(0..=1024 * 1024 * 1024))]
    pub(crate) body_min_rate: u64,

    /// Open connections per process; a connection beyond it is answered 503 and closed at once. The
    /// soft file-descriptor limit is raised to this + 256; a hard limit (LimitNOFILE=) below that
    /// refuses the start.
    #[arg(long, env = "APP_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) max_connections: u32,

    /// Keep connections open between requests (HTTP/1.1 keep-alive).
    #[arg(long, env = "APP_KEEP_ALIVE", default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) keep_alive: bool,

    /// Kernel accept queue length when the server binds its own socket (systemd's Backlog= otherwise).
    #[arg(long, env = "APP_BACKLOG", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub(crate) backlog: u32,

    /// Largest `cant` accepted by /api/randoms; larger gets 400.
    #[arg(long, env = "APP_RANDOMS_MAX", default_value_t = 1_000_000_000,
          value_parser = clap::value_parser!(u64).range(1..=u32::MAX as u64 * 4))]
    pub(crate) randoms_max: u64,

    /// /api/randoms computations running at once per process; beyond it the answer is 503 with Retry-After.
    #[arg(long, env = "APP_RANDOMS_CONCURRENCY", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub(crate) randoms_concurrency: u16,

    /// How long a randoms request waits for a free computation slot before the 503 (0: refuse at
    /// once). Rides out short bursts, such as a proxy's kept-alive connections landing unevenly on
    /// a cluster's workers.
    #[arg(long, env = "APP_RANDOMS_WAIT", default_value = "1s", value_parser = parse_duration_or_zero)]
    pub(crate) randoms_wait: Duration,

    /// Peers whose X-Forwarded-For is believed, as comma-separated addresses or CIDRs.
    #[arg(long, env = "APP_TRUSTED_PROXIES", value_delimiter = ',', default_value = "127.0.0.0/8,::1/128",
          value_parser = parse_net)]
    pub(crate) trusted_proxies: Vec<IpNet>,

    /// Clients that may read /metrics, as comma-separated addresses or CIDRs; others get 403. The client
    /// is the one --trusted-proxies resolve, so a request relayed by nginx with X-Forwarded-For is judged
    /// by its real origin. A client on the very address the instance listens on (this host) always may.
    #[arg(long, env = "APP_METRICS_ALLOW", value_delimiter = ',', default_value = "127.0.0.0/8,::1/128",
          value_parser = parse_net)]
    pub(crate) metrics_allow: Vec<IpNet>,

    /// Directory of the SQLite todo store (todos.sqlite3), shared by every worker and every instance
    /// on the host [default: $STATE_DIRECTORY under systemd, else ./data].
    #[arg(long, env = "APP_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    /// Redis for chat fan-out across processes, instances and hosts (and todos with --todos-store
    /// redis), e.g. redis://127.0.0.1:6379/0 or unix:///run/redis-app/redis.sock. Without it chat
    /// crosses a cluster's workers through its primary (this instance only), and a fork-mode
    /// process's rooms are its own. Through Redis Sentinel:
    /// redis+sentinel://[USER:PASSWORD@]HOST[:26379],HOST[:26379].../MASTER[/DB][?sentinel_password=P]
    /// (the master is asked of the sentinels on every connection: a fail-over needs no restart).
    #[arg(long, env = "APP_REDIS_URL")]
    pub(crate) redis_url: Option<String>,

    /// A file whose first line is the Redis URL, so its password stays out of the command line, the
    /// environment and world-readable unit files [default: $CREDENTIALS_DIRECTORY/redis-url when
    /// systemd's LoadCredential=redis-url:PATH provides it and --redis-url is not given].
    #[arg(long, env = "APP_REDIS_URL_FILE", value_name = "PATH", conflicts_with = "redis_url")]
    pub(crate) redis_url_file: Option<PathBuf>,

    /// Where todos live: sqlite (the file in --data-dir: every process on this host) or redis
    /// (--redis-url: every host).
    #[arg(long, env = "APP_TODOS_STORE", value_enum, ignore_case = true, default_value_t = StoreKind::Sqlite)]
    pub(crate) todos_store: StoreKind,

    /// Redis replicas that must confirm each todo write (Redis WAIT) before it is answered, so a
    /// write acknowledged survives a fail-over that promotes one of them. 0: none (replication runs
    /// behind: a fail-over can lose the last acknowledged writes). Fewer confirmations within
    /// --todos-wait-timeout: 503, the write done on the master but perhaps lost (retry it, with the
    /// same Idempotency-Key for a creation). Needs --todos-store redis.
    #[arg(long, env = "APP_TODOS_WAIT_REPLICAS", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=16))]
    pub(crate) todos_wait_replicas: u32,

    /// How long a todo write waits for --todos-wait-replicas confirmations: at most 1s, below the 2 s
    /// Redis command timeout.
    #[arg(long, env = "APP_TODOS_WAIT_TIMEOUT", default_value = "500ms", value_parser = parse_wait_timeout)]
    pub(crate) todos_wait_timeout: Duration,

    /// Largest `limit` of GET /v1/todos (also its default); larger gets 400.
    #[arg(long, env = "APP_TODOS_MAX_LIMIT", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) todos_max_limit: u32,

    /// Largest body of POST/PATCH /v1/todos in bytes; larger gets 413.
    #[arg(long, env = "APP_TODOS_MAX_BODY_BYTES", default_value_t = 16 * 1024,
          value_parser = clap::value_parser!(u64).range(64..=1024 * 1024))]
    pub(crate) todos_max_body_bytes: u64,

    /// How long a todo write waits for another process's write lock on the SQLite file before a 503.
    #[arg(long, env = "APP_SQLITE_BUSY_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub(crate) sqlite_busy_timeout: Duration,

    /// How long an `Idempotency-Key` of POST /v1/todos is remembered: a retry within it gets the
    /// first answer again; after it, the same key creates a new todo.
    #[arg(long, env = "APP_IDEMPOTENCY_RETENTION", default_value = "24h",
          value_parser = parse_long_duration)]
    pub(crate) idempotency_retention: Duration,

    /// Most `Idempotency-Key`s remembered (per SQLite file or Redis); beyond, the oldest are
    /// forgotten first, before their --idempotency-retention is over. (A key has at most 255
    /// characters; a longer one gets 400.)
    #[arg(long, env = "APP_IDEMPOTENCY_KEYS", default_value_t = 100_000,
          value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub(crate) idempotency_keys: u32,

    /// Largest chat message (the JSON frame a client sends) in bytes; larger gets an error frame, over
    /// four times larger closes the socket with 1009.
    #[arg(long, env = "APP_CHAT_MAX_MESSAGE_BYTES", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(64..=1024 * 1024))]
    pub(crate) chat_max_message_bytes: u32,

    /// Chat messages a connection may send per second, on average; beyond, an error frame.
    #[arg(long, env = "APP_CHAT_RATE", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) chat_rate: u32,

    /// Chat messages a connection may send at once before --chat-rate applies.
    #[arg(long, env = "APP_CHAT_BURST", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) chat_burst: u32,

    /// Messages waiting for one slow chat client; when its queue is full it is disconnected (1008).
    #[arg(long, env = "APP_CHAT_QUEUE", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub(crate) chat_queue: u32,

    /// Rooms one Socket.IO socket may be in at once; a `join` beyond gets an error acknowledgement.
    #[arg(long, env = "APP_CHAT_ROOMS_PER_SOCKET", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) chat_rooms_per_socket: u32,

    /// Resident memory a serving process may use (e.g. 512M, 1G, bytes; 0: no limit). A cluster worker
    /// over it is replaced as a reload replaces it (the new worker ready first, the old one drained);
    /// a fork-mode process reloads itself as on SIGHUP. Checked every second. The unit's MemoryHigh=
    /// and MemoryMax= are the hard ceiling above it.
    #[arg(long, env = "APP_WORKER_MAX_MEMORY", value_name = "BYTES", default_value = "0", value_parser = parse_bytes)]
    pub(crate) worker_max_memory: u64,

    /// How long a cluster worker has to report READY=1 after it is started; one that is not ready by
    /// then is killed (a reload waiting for it fails and keeps the old worker). Below the unit's
    /// TimeoutStartSec= (30s), which bounds a whole start or reload: the app, not systemd, then says
    /// which worker was not ready.
    #[arg(long, env = "APP_WORKER_READY_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub(crate) worker_ready_timeout: Duration,

    /// Ping period of chat sockets: keep it below the proxy's read timeout (proxy_read_timeout, 30s in
    /// nginx/snippets/app-requests.conf), or nginx closes idle sockets. A client silent for two periods is dropped.
    #[arg(long, env = "APP_CHAT_PING_INTERVAL", default_value = "20s", value_parser = parse_duration)]
    pub(crate) chat_ping_interval: Duration,
}

/// The name of the systemd credential (LoadCredential=redis-url:PATH) that holds the Redis URL.
pub(crate) const REDIS_URL_CREDENTIAL: &str = "redis-url";

#[derive(Subcommand, Debug, Clone)]
pub(crate) enum Command {
    /// List the instances on this host like `pm2 list`: port, mode, state, pids, uptime, restarts,
    /// CPU, memory and requests served; from systemd's app@PORT units, or from --ports.
    Status(StatusArgs),
    /// Reload every running app@PORT instance onto the installed binary, one after another, with
    /// `systemctl reload` (what app-reload.service runs when app-reload.path sees a new binary).
    Reload(ReloadArgs),
    /// Print a completion script for a shell, made from these very flags: e.g.
    /// `app completions bash > /usr/share/bash-completion/completions/app`.
    Completions {
        /// bash, zsh, fish (or elvish, powershell).
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page app(1) in roff, made from these very flags: `app man | man -l -`.
    Man,
}

#[derive(Args, Debug, Clone)]
/// `app status`'s flags.
pub(crate) struct StatusArgs {
    /// Ask the instances on these ports (comma-separated) instead of systemd: for instances not run
    /// by systemd (development, pm2-style supervisors, containers without systemd).
    #[arg(long, value_delimiter = ',')]
    pub(crate) ports: Vec<u16>,

    /// Address of the --ports instances. (Under systemd each instance is asked where its socket
    /// unit's ListenStream= says it listens.)
    #[arg(long = "address", default_value = "127.0.0.1")]
    pub(crate) address: IpAddr,

    /// The systemd template whose instances are listed (`app` for app@PORT.service).
    #[arg(long, default_value = "app")]
    pub(crate) template: String,

    /// Print JSON (an array of instances) instead of the table; with --watch, one array a line.
    #[arg(long)]
    pub(crate) json: bool,

    /// Keep redrawing the list, with requests per second, like `pm2 monit` (Ctrl-C ends it).
    #[arg(long)]
    pub(crate) watch: bool,

    /// Time between two --watch redraws (e.g. 2, 500ms, 1min).
    #[arg(long, default_value = "2s", value_parser = parse_duration, requires = "watch")]
    pub(crate) interval: Duration,

    /// Stop --watch after this many redraws [default: never].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), requires = "watch")]
    pub(crate) count: Option<u64>,
}

#[derive(Args, Debug, Clone)]
/// `app reload`'s flags.
pub(crate) struct ReloadArgs {
    /// The systemd template whose running instances are reloaded (`app` for app@PORT.service).
    #[arg(long, default_value = "app")]
    pub(crate) template: String,

    /// Reload only this process (SIGHUP) and return once it is ready again, failing if the reload
    /// fails: what the unit's `ExecReload=app reload --pid $MAINPID` runs.
    #[arg(long, value_name = "PID")]
    pub(crate) pid: Option<u32>,

    /// With --pid: the longest wait for the process to be ready again (systemd's TimeoutStartSec=
    /// bounds ExecReload= too).
    #[arg(long, default_value = "5m", value_parser = parse_duration, requires = "pid")]
    pub(crate) timeout: Duration,
}

impl Config {
    /// The file `--watch` watches, if it is on: `--watch-path`, else the binary this process re-executes.
    pub(crate) fn watched(&self, exe: &std::path::Path) -> Option<PathBuf> {
        self.watch.then(|| self.watch_path.clone().unwrap_or_else(|| exe.to_path_buf()))
    }

    /// Workers to run in cluster mode: the flag, or one per CPU available to this process.
    pub(crate) fn worker_count(&self) -> u16 {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map(|n| n.get().min(1024) as u16).unwrap_or(1)
        })
    }

    /// --worker-max-memory, when there is one (0: none).
    pub(crate) fn worker_memory_limit(&self) -> Option<u64> {
        (self.worker_max_memory > 0).then_some(self.worker_max_memory)
    }

    /// The Redis URL: --redis-url, else the first line of --redis-url-file, else the systemd
    /// credential `redis-url` when there is one. Errors name the flag or the file.
    pub(crate) fn resolve_redis_url(&self) -> Result<Option<String>, Invalid> {
        let from_file = |path: &std::path::Path, what: &str| {
            let text = std::fs::read_to_string(path)
                .map_err(|error| Invalid(format!("{what} {}: {error}", path.display())))?;
            let url = text.lines().next().unwrap_or("").trim().to_string();
            if url.is_empty() {
                return Err(Invalid(format!("{what} {}: the first line is empty", path.display())));
            }
            Ok(Some(url))
        };
        if let Some(url) = &self.redis_url {
            return Ok(Some(url.clone()));
        }
        if let Some(path) = &self.redis_url_file {
            return from_file(path, "--redis-url-file");
        }
        let credential = std::env::var_os("CREDENTIALS_DIRECTORY")
            .map(|dir| PathBuf::from(dir).join(REDIS_URL_CREDENTIAL))
            .filter(|path| path.exists());
        match credential {
            Some(path) => from_file(&path, "the credential"),
            None => Ok(None),
        }
    }

    /// The store's directory: the flag, systemd's StateDirectory= (its first path), or ./data.
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            std::env::var_os("STATE_DIRECTORY")
                .and_then(|dirs| dirs.to_str().and_then(|d| d.split(':').next()).map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("data"))
        })
    }
}

/// The longest duration most flags take: longer is a typo (`5h` for `5s`), not a setting.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(3600);

/// A duration in the forms a unit file's `TimeoutStopSec=` takes, so a value can be copied from
/// one to the other: bare seconds (`10`, `1.5`), or numbers with units as systemd and humantime
/// write them (`500ms`, `1.5s`, `1min`, `2m`, `1min 30s`, `1h`). More than zero, at most 1h.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    nonzero(parse_duration_or_zero(text)?)
}

/// As [`parse_duration`], zero allowed (`0`: do not wait).
pub(crate) fn parse_duration_or_zero(text: &str) -> Result<Duration, String> {
    let duration = parse_duration_text(text)?;
    if duration > MAX_DURATION {
        return Err(format!("`{}` is longer than the limit of 1h", text.trim()));
    }
    Ok(duration)
}

/// A long duration (a retention): the same forms, with no upper limit (`24h`, `7days`).
/// The longest --todos-wait-timeout: a WAIT's answer must come within the Redis command timeout.
pub(crate) const MAX_WAIT_TIMEOUT: Duration = Duration::from_secs(1);

fn parse_wait_timeout(text: &str) -> Result<Duration, String> {
    let wait = parse_duration(text)?;
    if wait > MAX_WAIT_TIMEOUT {
        return Err(format!("at most {MAX_WAIT_TIMEOUT:?} (below the Redis command timeout)"));
    }
    Ok(wait)
}

fn parse_long_duration(text: &str) -> Result<Duration, String> {
    nonzero(parse_duration_text(text)?)
}

/// The grammar every duration flag shares, any length, zero included.
fn parse_duration_text(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.chars().all(|c| c.is_ascii_digit() || c == '.') {
        // systemd reads a number without a unit as seconds; humantime wants a unit.
        text.parse::<f64>().ok().and_then(|secs| Duration::try_from_secs_f64(secs).ok())
    } else {
        humantime::parse_duration(text).ok()
    }
    .ok_or_else(|| format!("`{text}` is not a duration such as 10, 1.5s, 500ms, 1min or 1min 30s"))
}

fn nonzero(duration: Duration) -> Result<Duration, String> {
    if duration.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(duration)
}

/// A size in bytes as systemd's MemoryMax= and pm2's max_memory_restart write it: `1048576`, `512K`,
/// `300M`, `1G` (powers of 1024; a trailing `B` or `iB` is allowed).
pub(crate) fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let bad = || format!("`{text}` is not a size such as 1048576, 512K, 300M or 1G");
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits.parse().map_err(|_| bad())?;
    let unit = unit.to_ascii_uppercase();
    let shift = match unit.trim_end_matches("IB").trim_end_matches('B') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(bad()),
    };
    value.checked_mul(1 << shift).ok_or_else(bad)
}

/// A setting that parses but cannot work (a Redis URL that is not one, a descriptor limit too low
/// for --max-connections): reported like clap's own errors, with exit status 2, so that systemd's
/// RestartPreventExitStatus=2 does not restart a process that would only fail again.
#[derive(Debug)]
pub(crate) struct Invalid(pub String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// Accepts a network (`10.0.0.0/8`) or a single address (`10.0.0.1`).
fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{text}` is not an address or a CIDR network"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_what_systemd_and_humantime_write() {
        let ms = Duration::from_millis;
        for (text, expected) in [
            ("10", ms(10_000)),
            ("1.5", ms(1_500)),
            ("10s", ms(10_000)),
            ("1.5s", ms(1_500)),
            ("500ms", ms(500)),
            ("2m", ms(120_000)),
            ("1min", ms(60_000)),
            ("1min 30s", ms(90_000)),
            ("1min30s", ms(90_000)),
            ("1h", ms(3_600_000)),
            (" 20s ", ms(20_000)),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
        for bad in ["0", "0s", "ten", "", "-1", "1.2.3", "10 parsecs", "61min", "5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration_or_zero("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration_or_zero("0ms"), Ok(Duration::ZERO));
        assert_eq!(parse_duration_or_zero("250ms"), Ok(ms(250)));
        assert!(parse_duration_or_zero("-1").is_err());
        assert_eq!(parse_long_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_long_duration("300ms"), Ok(ms(300)));
        assert!(parse_long_duration("0h").is_err());
        assert!(parse_long_duration("soon").is_err());
    }

    #[test]
    fn sizes_take_bytes_and_binary_units() {
        assert_eq!(parse_bytes("0"), Ok(0));
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("512K"), Ok(512 << 10));
        assert_eq!(parse_bytes("300M"), Ok(300 << 20));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_bytes("2gib"), Ok(2 << 30));
        assert_eq!(parse_bytes("1MB"), Ok(1 << 20));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("1X").is_err());
        assert!(parse_bytes("-1").is_err());
        assert!(parse_bytes("99999999999T").is_err());
    }

    #[test]
    fn trusted_proxies_take_addresses_and_networks() {
        assert_eq!(parse_net("10.0.0.1").unwrap().to_string(), "10.0.0.1/32");
        assert_eq!(parse_net("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert!(parse_net("nope").is_err());
    }
}
