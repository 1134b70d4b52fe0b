//! The signals a serving process and a cluster primary act on: SIGTERM and SIGINT (stop, after a
//! drain) and SIGHUP (reload). Both install the handlers before they announce READY=1, so that a
//! stop that comes right after is acted on, not the default action (which kills).

use std::io;

use tokio::signal::unix::{signal, Signal, SignalKind};

/// One of the signals [`Signals`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    Terminate,
    Interrupt,
    Hangup,
}

/// The installed handlers.
pub(crate) struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

impl Signals {
    /// Installs the handlers; must run inside the runtime.
    pub(crate) fn install() -> io::Result<Signals> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal that arrives. Cancel-safe: a signal that arrives while this is not awaited is
    /// kept for the next call.
    pub(crate) async fn recv(&mut self) -> Received {
        tokio::select! {
            _ = self.terminate.recv() => Received::Terminate,
            _ = self.interrupt.recv() => Received::Interrupt,
            _ = self.hangup.recv() => Received::Hangup,
        }
    }
}
