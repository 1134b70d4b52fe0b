//! `app`: an HTTP server with fork and cluster modes, made to run as a socket-activated systemd
//! service behind nginx. The binary is a thin call into [`main`].

pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod infra;
pub mod process;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use cli::{manual, status};
use config::{Command, Config, Mode};
use infra::redis::RedisLink;
use process::cluster;
use process::{backoff, descriptors, lifecycle, logging, Inherited};

pub fn main() -> ExitCode {
    let config = Config::parse();
    match &config.command {
        Some(Command::Status(args)) => return status::main(args),
        Some(Command::Reload(args)) => return cli::reload::main(args),
        Some(Command::Completions { shell }) => return manual::completions(*shell),
        Some(Command::Man) => return manual::man(),
        None => {}
    }
    // Before logging or a runtime starts a thread: see process::inherited.
    let inherited = Inherited::read();
    let worker = inherited.worker;
    let config = match settle(config) {
        Ok(config) => config,
        Err(invalid) => {
            // As clap reports a bad flag: stderr (the journal under systemd), status 2.
            eprintln!("error: {invalid}");
            return ExitCode::from(2);
        }
    };
    logging::init();
    let _span = worker.map(|index| tracing::info_span!("worker", index).entered());
    // Only the main process (fork mode, or a cluster's primary) is started by systemd.
    if worker.is_none() {
        backoff::wait(backoff::before_start());
    }
    let exe = executable();
    let result = match (worker, config.mode) {
        (Some(_), _) | (None, Mode::Fork) => lifecycle::run(config, inherited, &exe),
        (None, Mode::Cluster) => cluster::run(config, &exe),
    };
    match result {
        Ok(()) => {
            if worker.is_none() {
                backoff::ended_cleanly();
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// Checks what clap cannot check alone and fills in what comes from elsewhere: the Redis URL from
/// its file or credential, and the descriptor limit --max-connections needs.
fn settle(mut config: Config) -> Result<Config, config::Invalid> {
    config.redis_url = config.resolve_redis_url()?;
    match &config.redis_url {
        Some(url) => drop(RedisLink::new(url).map_err(|error| config::Invalid(error.to_string()))?),
        None if config.todos_store == config::StoreKind::Redis => {
            return Err(config::Invalid(
                "--todos-store redis needs --redis-url (or --redis-url-file, or the redis-url credential)"
                    .into(),
            ))
        }
        None => {}
    }
    if config.todos_wait_replicas > 0 && config.todos_store != config::StoreKind::Redis {
        return Err(config::Invalid("--todos-wait-replicas needs --todos-store redis".into()));
    }
    descriptors::ensure_for(&config)?;
    Ok(config)
}

/// The path to start again on reload: the one this process was started by (so a swapped symlink or
/// a replaced file is followed), else the kernel's idea of our executable.
fn executable() -> PathBuf {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .filter(|path| path.components().count() > 1)
        .or_else(|| std::env::current_exe().ok())
        .unwrap_or_else(|| PathBuf::from("/proc/self/exe"))
}
