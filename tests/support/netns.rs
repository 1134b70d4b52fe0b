//! A second host for a test: a network namespace of its own, reached from the test's namespace over
//! a veth link with addresses that exist only there. It can vanish the way a powered-off host does
//! (its link and all its kernel state gone, nothing sent to its peers) and come back empty.

use std::net::IpAddr;
use std::process::Command;

/// Runs `ip ARGS`, failing the test if it fails.
fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("ip (iproute2) is installed");
    assert!(output.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

pub struct Host {
    /// The namespace's name, for `ip netns exec`.
    pub netns: String,
    link: String,
    /// The host's address, as the test reaches it.
    pub addr: IpAddr,
    local: IpAddr,
}

impl Host {
    pub fn new() -> Host {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = std::process::id() % 60_000;
        // A /30 per host out of 10.211.0.0/16, from the test process's pid and a counter.
        let net = (id * 4 + n * 4) % 65_536;
        let (a, b) = ((net >> 8) as u8, (net & 0xff) as u8);
        let host = Host {
            netns: format!("apptest-{id}-{n}"),
            link: format!("at{id}x{n}"),
            addr: IpAddr::from([10, 211, a, b + 2]),
            local: IpAddr::from([10, 211, a, b + 1]),
        };
        host.boot();
        host
    }

    fn boot(&self) {
        let (peer, local, addr) =
            (format!("{}p", self.link), format!("{}/30", self.local), format!("{}/30", self.addr));
        ip(&["netns", "add", &self.netns]);
        ip(&["-n", &self.netns, "link", "set", "lo", "up"]);
        ip(&["link", "add", &self.link, "type", "veth", "peer", "name", &peer, "netns", &self.netns]);
        ip(&["addr", "add", &local, "dev", &self.link]);
        ip(&["link", "set", &self.link, "up"]);
        ip(&["-n", &self.netns, "addr", "add", &addr, "dev", &peer]);
        ip(&["-n", &self.netns, "link", "set", &peer, "up"]);
    }

    /// Cuts the link: from now on nothing of this host reaches the test's namespace. Stop what
    /// runs on the host, then `reboot`.
    pub fn cut(&self) {
        ip(&["link", "set", &self.link, "down"]);
    }

    /// The host comes back with nothing of its past: a new namespace and link, same addresses.
    /// Peers' connections to it are half-open: the next thing they send is answered with a reset.
    pub fn reboot(&self) {
        self.remove();
        self.boot();
    }

    fn remove(&self) {
        let _ = Command::new("ip").args(["link", "del", &self.link]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.netns]).output();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.remove();
    }
}
