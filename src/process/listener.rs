//! Where the listening socket comes from (systemd, a cluster primary, or our own bind) and how it is
//! handed on to a process that replaces or joins this one.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::RawFd;

use listenfd::ListenFd;
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Config;
use crate::http::state::Source;

/// The fd a handed-over socket lives at, by the `sd_listen_fds` convention.
pub(crate) const INHERITED_FD: RawFd = 3;

/// Why no listening socket could be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// `--host:--port` could not be bound (in use, or a privileged port).
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    /// `LISTEN_FDS` named a descriptor that is something else than a TCP listening socket.
    #[error("fd 3 was passed in LISTEN_FDS but is not a TCP listener")]
    NotTcp,
    /// The socket could not be made, configured or inspected.
    #[error(transparent)]
    Socket(#[from] io::Error),
}

pub(crate) struct Acquired {
    pub(crate) listener: TcpListener,
    pub(crate) source: Source,
    pub(crate) local_addr: SocketAddr,
}

/// Takes the socket handed over in `LISTEN_FDS` if there is one, otherwise binds `--host:--port`.
/// The result is non-blocking: a socket from systemd is blocking unless the unit says
/// `NonBlocking=true`, and tokio cannot drive a blocking one.
pub(crate) fn acquire(config: &Config) -> Result<Acquired, Error> {
    let mut fds = ListenFd::from_env();
    let (listener, source) = if fds.len() > 0 {
        if fds.len() > 1 {
            tracing::warn!(count = fds.len(), "several sockets were passed; serving the first only");
        }
        let listener = fds.take_tcp_listener(0)?.ok_or(Error::NotTcp)?;
        (listener, Source::Inherited)
    } else {
        (bind(SocketAddr::new(config.host, config.port), config.backlog)?, Source::Bound)
    };
    listener.set_nonblocking(true)?;
    let local_addr = listener.local_addr()?;
    Ok(Acquired { listener, source, local_addr })
}

fn bind(addr: SocketAddr, backlog: u32) -> Result<TcpListener, Error> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // A restarted process must be able to bind while old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into()).map_err(|source| Error::Bind { addr, source })?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    Ok(socket.into())
}

/// Puts `fd` at fd 3 for the program about to be executed, without close-on-exec. Meant for the
/// window between fork (or in place of it) and exec, so it only makes async-signal-safe calls.
pub fn install_as_inherited(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain fd syscalls on fds this process owns.
    let result = unsafe {
        if fd == INHERITED_FD {
            libc::fcntl(fd, libc::F_SETFD, 0)
        } else {
            // dup2 gives the copy no close-on-exec flag.
            libc::dup2(fd, INHERITED_FD)
        }
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
