//! Redis Sentinel: which server is the master of a name right now. `--redis-url
//! redis+sentinel://[USER:PASSWORD@]HOST[:PORT],HOST[:PORT].../MASTER[/DB]` names the sentinels
//! and the master's name; the link asks them on every (re)connection, so after a fail-over it
//! follows the promoted replica without a restart.
//!
//! Hand-written after the sentinel clients guide (redis.io "Sentinel client spec") rather than
//! redis-rs's `sentinel` feature: that one asks the sentinels in a fixed order over cached
//! connections with no deadline, so one sentinel that vanished without closing its connection
//! (often the one on the failed master's host) stalls every resolution. Here each sentinel gets
//! [`ASK_TIMEOUT`], the next is asked after it, and the one that answered is asked first next time.

use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use percent_encoding::percent_decode_str;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, ErrorKind, RedisConnectionInfo,
    RedisError, RedisResult,
};
use thiserror::Error;

pub(crate) const SCHEME: &str = "redis+sentinel://";
const DEFAULT_PORT: u16 = 26379;
/// How long one sentinel has to answer before the next one is asked.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);
/// The form of a Sentinel URL, in the errors that say what is wrong with one.
const FORM: &str = "redis+sentinel://[USER:PASSWORD@]HOST[:PORT],HOST[:PORT]/MASTER[/DB]";

/// What is wrong with a `redis+sentinel://` URL.
#[derive(Debug, Error, PartialEq)]
pub(crate) enum UrlError {
    #[error("name the master after the sentinels: {FORM}")]
    NoMaster,
    #[error("the master's name is empty: {FORM}")]
    EmptyMasterName,
    #[error("the database `{0}` is not a number: {FORM}")]
    Database(String),
    #[error("unknown parameter `{0}` (sentinel_username, sentinel_password)")]
    UnknownParameter(String),
    #[error("the sentinel `{0}` lacks its closing `]`")]
    Unclosed(String),
    #[error("a sentinel's host is empty in `{0}` (HOST[:PORT],HOST[:PORT]...)")]
    EmptyHost(String),
    #[error("the sentinel port in `{0}` is not a port")]
    Port(String),
    #[error("`{0}` is not UTF-8 once percent-decoded")]
    NotUtf8(String),
}

pub(crate) struct Sentinels {
    /// Asked in this order; the one that answered last moves to the front.
    addrs: Mutex<Vec<(String, u16)>>,
    master_name: String,
    /// How to log in to the sentinels (`?sentinel_username=`, `?sentinel_password=`).
    sentinel_login: RedisConnectionInfo,
    /// How to log in to the master, and its database: the URL's user, password and /DB.
    master_login: RedisConnectionInfo,
}

impl Sentinels {
    /// The sentinels of a `redis+sentinel://` URL; `None` for any other URL. An error says what is
    /// wrong with it.
    pub(crate) fn parse(url: &str) -> Result<Option<Sentinels>, UrlError> {
        let Some(rest) = url.strip_prefix(SCHEME) else { return Ok(None) };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = rest.split_once('/').ok_or(UrlError::NoMaster)?;
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let addrs = hosts.split(',').map(host_and_port).collect::<Result<Vec<_>, _>>()?;
        let (master_name, db) = path.split_once('/').unwrap_or((path, ""));
        if master_name.is_empty() {
            return Err(UrlError::EmptyMasterName);
        }
        let db = match db.trim_end_matches('/') {
            "" => 0,
            db => db.parse::<u16>().map_err(|_| UrlError::Database(db.into()))?.into(),
        };
        let (username, password) = userinfo.map(login).transpose()?.unwrap_or_default();
        let master_login = RedisConnectionInfo { db, username, password, ..Default::default() };
        let sentinel_login = sentinel_login(query)?;
        Ok(Some(Sentinels {
            addrs: Mutex::new(addrs),
            master_name: decoded(master_name)?,
            sentinel_login,
            master_login,
        }))
    }

    /// Where the master is now, with the URL's login and database, from the first sentinel that
    /// knows. The caller still checks that the server is a master (ROLE): a sentinel may lag.
    pub(crate) async fn master(&self) -> RedisResult<ConnectionInfo> {
        let addrs = self.addrs.lock().unwrap().clone();
        let mut problems = Vec::new();
        for (index, (host, port)) in addrs.iter().enumerate() {
            let answer = tokio::time::timeout(ASK_TIMEOUT, self.ask(host, *port)).await;
            match answer {
                Ok(Ok(Some((master_host, master_port)))) => {
                    self.asked_first(index);
                    let addr = ConnectionAddr::Tcp(master_host, master_port);
                    return Ok(ConnectionInfo { addr, redis: self.master_login.clone() });
                }
                Ok(Ok(None)) => {
                    problems.push(format!("{host}:{port} knows no master `{}`", self.master_name))
                }
                Ok(Err(error)) => problems.push(format!("{host}:{port}: {error}")),
                Err(_) => problems.push(format!("{host}:{port} did not answer within {ASK_TIMEOUT:?}")),
            }
        }
        Err(RedisError::from((
            ErrorKind::MasterNameNotFoundBySentinel,
            "no sentinel named the master",
            problems.join("; "),
        )))
    }

    /// Returns when a sentinel announces that another server is now the master (`+switch-master`):
    /// a reason to reconnect at once rather than after a backoff. Never returns when no sentinel
    /// can be subscribed to, or when its subscription ends: the caller's backoff then decides.
    pub(crate) async fn switched(&self) {
        let addrs = self.addrs.lock().unwrap().clone();
        for (host, port) in addrs {
            let subscribed = tokio::time::timeout(ASK_TIMEOUT, self.switches(&host, port)).await;
            let Ok(Ok(mut switches)) = subscribed else { continue };
            let ours = format!("{} ", self.master_name);
            while let Some(switch) = switches.next().await {
                if switch.get_payload::<String>().is_ok_and(|payload| payload.starts_with(&ours)) {
                    return;
                }
            }
            break;
        }
        std::future::pending().await
    }

    async fn switches(&self, host: &str, port: u16) -> RedisResult<redis::aio::PubSubStream> {
        let info = ConnectionInfo {
            addr: ConnectionAddr::Tcp(host.into(), port),
            redis: self.sentinel_login.clone(),
        };
        let mut pubsub = Client::open(info)?.get_async_pubsub().await?;
        pubsub.subscribe("+switch-master").await?;
        Ok(pubsub.into_on_message())
    }

    /// `SENTINEL get-master-addr-by-name` on one sentinel: the address, or none if it does not
    /// monitor that name.
    async fn ask(&self, host: &str, port: u16) -> RedisResult<Option<(String, u16)>> {
        let info = ConnectionInfo {
            addr: ConnectionAddr::Tcp(host.into(), port),
            redis: self.sentinel_login.clone(),
        };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(ASK_TIMEOUT)
            .set_response_timeout(ASK_TIMEOUT);
        let mut sentinel = Client::open(info)?.get_multiplexed_async_connection_with_config(&config).await?;
        let mut ask = redis::cmd("SENTINEL");
        ask.arg("get-master-addr-by-name").arg(&self.master_name);
        ask.query_async(&mut sentinel).await
    }

    /// The sentinel that just answered is asked first from now on (the guide's advice: it is
    /// likely up and on the majority's side).
    fn asked_first(&self, index: usize) {
        if index > 0 {
            self.addrs.lock().unwrap()[..=index].rotate_right(1);
        }
    }

    /// For logs: the master's name and the sentinels, without any password.
    pub(crate) fn describe(&self) -> String {
        let addrs = self.addrs.lock().unwrap();
        let hosts: Vec<String> = addrs.iter().map(|(host, port)| format!("{host}:{port}")).collect();
        format!("master `{}` of sentinels {} db {}", self.master_name, hosts.join(","), self.master_login.db)
    }
}

/// `HOST`, `HOST:PORT`, `[IPV6]` or `[IPV6]:PORT`.
fn host_and_port(text: &str) -> Result<(String, u16), UrlError> {
    let (host, port) = match text.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed.split_once(']').ok_or_else(|| UrlError::Unclosed(text.into()))?;
            (host, after.strip_prefix(':'))
        }
        None => match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        },
    };
    if host.is_empty() {
        return Err(UrlError::EmptyHost(text.into()));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => port.parse().map_err(|_| UrlError::Port(text.into()))?,
    };
    Ok((host.to_string(), port))
}

/// How to log in to the sentinels, from the URL's query: `sentinel_username=` and
/// `sentinel_password=`, percent-decoded (none by default).
fn sentinel_login(query: &str) -> Result<RedisConnectionInfo, UrlError> {
    let mut login = RedisConnectionInfo::default();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = Some(decoded(value)?);
        match name {
            "sentinel_username" => login.username = value,
            "sentinel_password" => login.password = value,
            _ => return Err(UrlError::UnknownParameter(name.into())),
        }
    }
    Ok(login)
}

/// `USER:PASSWORD`, `:PASSWORD` or `USER`, percent-decoded.
fn login(userinfo: &str) -> Result<(Option<String>, Option<String>), UrlError> {
    let (user, password) = match userinfo.split_once(':') {
        Some((user, password)) => (user, Some(decoded(password)?)),
        None => (userinfo, None),
    };
    let user = (!user.is_empty()).then(|| decoded(user)).transpose()?;
    Ok((user, password))
}

fn decoded(text: &str) -> Result<String, UrlError> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| UrlError::NotUtf8(text.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> Sentinels {
        Sentinels::parse(url).unwrap().unwrap()
    }

    #[test]
    fn a_sentinel_url_names_the_sentinels_the_master_its_login_and_database() {
        let sentinels = parsed("redis+sentinel://app:p%40ss@10.0.0.1,10.0.0.2:26380,[::1]:26381/main/3");
        assert_eq!(
            *sentinels.addrs.lock().unwrap(),
            [("10.0.0.1".into(), 26379), ("10.0.0.2".into(), 26380), ("::1".into(), 26381)]
        );
        assert_eq!(sentinels.master_name, "main");
        assert_eq!(sentinels.master_login.db, 3);
        assert_eq!(sentinels.master_login.username.as_deref(), Some("app"));
        assert_eq!(sentinels.master_login.password.as_deref(), Some("p@ss"));
        assert_eq!(sentinels.sentinel_login.password, None);
        assert!(!sentinels.describe().contains("p@ss"));

        let sentinels = parsed("redis+sentinel://:secret@h/m?sentinel_password=other");
        assert_eq!(sentinels.master_login.username, None);
        assert_eq!(sentinels.master_login.password.as_deref(), Some("secret"));
        assert_eq!(sentinels.master_login.db, 0);
        assert_eq!(sentinels.sentinel_login.password.as_deref(), Some("other"));
    }

    #[test]
    fn other_urls_are_not_sentinel_urls_and_bad_sentinel_urls_say_why() {
        assert!(Sentinels::parse("redis://127.0.0.1:6379/0").unwrap().is_none());
        let error = |url| Sentinels::parse(url).err().unwrap().to_string();
        assert!(error("redis+sentinel://h1,h2").contains("name the master"));
        assert!(error("redis+sentinel://h1,h2/").contains("name is empty"));
        assert!(error("redis+sentinel://h1,,h2/m").contains("host is empty"));
        assert!(error("redis+sentinel://h1:port/m").contains("not a port"));
        assert!(error("redis+sentinel://[::1/m").contains("closing"));
        assert!(error("redis+sentinel://h/m/x").contains("not a number"));
        assert!(error("redis+sentinel://h/m?tls=1").contains("unknown parameter `tls`"));
    }

    #[test]
    fn the_sentinel_that_answered_is_asked_first() {
        let sentinels = parsed("redis+sentinel://a,b,c/m");
        sentinels.asked_first(2);
        let order: Vec<String> =
            sentinels.addrs.lock().unwrap().iter().map(|(host, _)| host.clone()).collect();
        assert_eq!(order, ["c", "a", "b"]);
    }
}
