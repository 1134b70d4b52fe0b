//! The server's side of `app reload --pid` (its client is `cli/reload/wait.rs`, which plays
//! the service manager's part for one reload): where the waiter for a process listens, and the
//! states the process sends it besides systemd. Here, so the process layer speaks the protocol
//! without depending on the command line.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

use sd_notify::NotifyState;

use crate::process::systemd;

/// The extra line of a READY=1 that ends a failed reload (systemd ignores `X_` variables).
pub(crate) const RESULT_PREFIX: &str = "X_APP_RELOAD=";

/// Where the waiter for process `pid` listens: a directory of the unit's own (PrivateTmp= or
/// RuntimeDirectory=), shared by ExecStart= and ExecReload=.
pub(crate) fn socket_path(pid: u32) -> PathBuf {
    systemd::runtime_dir().join(format!("app-reload-{pid}.sock"))
}

/// Sends `states` to this process's reload waiter, if one listens (nothing happens otherwise).
pub(crate) fn tell(states: &[NotifyState]) {
    let path = socket_path(std::process::id());
    if !path.exists() {
        return;
    }
    let text: String = states.iter().map(|state| format!("{state}\n")).collect();
    if let Ok(socket) = UnixDatagram::unbound() {
        let _ = socket.send_to(text.as_bytes(), &path);
    }
}
