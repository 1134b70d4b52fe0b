//! A real nginx on a free loopback port in front of some app processes, with the deployment's own
//! proxy policy: the repository's nginx/conf.d/app.conf (the WebSocket upgrade map) and
//! nginx/snippets/app-{upstream,proxy,requests,socketio}.conf (keep-alive, HTTP/1.1, forwarded
//! headers, retries, timeouts, body limit), included from the source tree. `/socket.io/` goes to
//! the same processes as every other path, each client kept on one of them (hash of its
//! address), as in nginx/sites-available: Socket.IO's long-polling sessions live in one process.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use super::{temp_dir, wait_listening, TempDir};

pub struct Nginx {
    pub addr: SocketAddr,
    child: Child,
    dir: TempDir,
}

impl Nginx {
    pub fn start(upstreams: &[SocketAddr]) -> Nginx {
        let dir = temp_dir();
        let port = super::server_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let servers: String = upstreams.iter().map(|up| format!("    server {up} max_fails=0;\n")).collect();
        let root = dir.path().display();
        let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/nginx");
        // Workers of a root master run as `nobody` unless told otherwise; they need the temp dirs.
        // SAFETY: geteuid has no preconditions.
        let user = if unsafe { libc::geteuid() } == 0 { "user root;" } else { "" };
        let conf = format!(
            "{user}
worker_processes auto;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {root}/body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi;
  scgi_temp_path {root}/scgi;
  include {policy}/conf.d/app.conf;
  upstream app {{
{servers}    include {policy}/snippets/app-upstream.conf;
  }}
  upstream app_socketio {{
    hash $remote_addr consistent;
{servers}    include {policy}/snippets/app-upstream.conf;
  }}
  server {{
    listen {addr} backlog=4096;
    location / {{
      proxy_pass http://app;
      include {policy}/snippets/app-proxy.conf;
      include {policy}/snippets/app-requests.conf;
    }}
    location /socket.io/ {{
      proxy_pass http://app_socketio;
      include {policy}/snippets/app-proxy.conf;
      include {policy}/snippets/app-socketio.conf;
    }}
  }}
}}
"
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .spawn()
            .expect("nginx is installed (tests/lib/deps.sh)");
        let nginx = Nginx { addr, child, dir };
        wait_listening(addr, || format!("nginx listens: {}", nginx.errors()));
        nginx
    }

    pub fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    /// SIGTERM, not SIGKILL: a killed master leaves its worker behind.
    fn drop(&mut self) {
        super::signal(self.child.id() as i32, libc::SIGTERM);
        let _ = self.child.wait();
    }
}
