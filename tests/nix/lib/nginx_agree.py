"""The Debian layouts (nginx/sites-available/app-layout-{a,b}) and the site the NixOS module
generates for the same layout (tests/nix/nginx-conf.nix) proxy every path the same way: for
each location, the same upstream server lines (addresses and parameters, in order), balancing
method (with its arguments: `hash $remote_addr consistent`), included snippets; both servers are
default_server and log with app_upstream; in each, /socket.io/ has a sticky upstream over the
servers of the location that serves the chat (/ws).

    python3 nginx_agree.py SITE_FILE GENERATED_FILE
"""
import re
import sys


def parse(text):
    """nginx configuration text -> list of (directive, args, children or None)."""
    text = re.sub(r"#[^\n]*", "", text)
    tokens = re.findall(r"'[^']*'|\"[^\"]*\"|[{};]|[^\s{};]+", text)
    pos = 0

    def block():
        nonlocal pos
        out = []
        while pos < len(tokens) and tokens[pos] != "}":
            words = []
            while tokens[pos] not in ("{", ";"):
                words.append(tokens[pos])
                pos += 1
            if tokens[pos] == "{":
                pos += 1
                children = block()
                pos += 1  # "}"
                out.append((words[0], words[1:], children))
            else:
                pos += 1
                out.append((words[0], words[1:], None))
        return out

    return block()


def routes(text):
    """location path -> what the upstream and the location contain."""
    top = parse(text)
    upstreams = {args[0]: children for name, args, children in top if name == "upstream"}
    servers = [children for name, _, children in top if name == "server"]
    assert len(servers) == 1, "one server block"
    server = servers[0]
    listens = [args for name, args, _ in server if name == "listen"]
    assert listens and all("default_server" in a for a in listens), f"not default_server: {listens}"
    logs = [args for name, args, _ in server if name == "access_log"]
    assert logs and all(a[-1] == "app_upstream" for a in logs), f"access_log: {logs}"
    out = {}
    for name, args, children in server:
        if name != "location":
            continue
        path = " ".join(args)
        proxy = [a[0] for n, a, _ in children if n == "proxy_pass"]
        upstream = upstreams[proxy[0].removeprefix("http://")]
        out[path] = {
            "servers": [a for n, a, _ in upstream if n == "server"],
            "balancing": [[n] + a for n, a, _ in upstream if n in ("least_conn", "ip_hash", "hash", "random")],
            "upstream includes": [a[0].rsplit("/", 2)[-2:] for n, a, _ in upstream if n == "include"],
            "location includes": [a[0].rsplit("/", 2)[-2:] for n, a, _ in children if n == "include"],
            "other location directives": sorted(n for n, _, _ in children if n not in ("proxy_pass", "include")),
        }
    check_socketio(out)
    return out


def check_socketio(out):
    """/socket.io/ goes to the chat's servers (those of the longest prefix location that /ws
    starts with), and keeps each client on one of them."""
    sio = out.get("/socket.io/")
    assert sio, "no location /socket.io/"
    chat = max((p for p in out if p != "/socket.io/" and "/ws".startswith(p)), key=len, default=None)
    assert chat, "no location serves /ws"
    assert sio["servers"] == out[chat]["servers"], f"/socket.io/ servers {sio['servers']} are not those of {chat}: {out[chat]['servers']}"
    assert sio["balancing"] == [["hash", "$remote_addr", "consistent"]], f"/socket.io/ balancing: {sio['balancing']}"


def main():
    site, generated = (open(f).read() for f in sys.argv[1:3])
    try:
        a, b = routes(site), routes(generated)
    except AssertionError as e:
        sys.exit(f"{sys.argv[1]} / {sys.argv[2]}: {e}")
    if a != b:
        for path in sorted(set(a) | set(b)):
            if a.get(path) != b.get(path):
                print(f"{path}:\n  {sys.argv[1]}: {a.get(path)}\n  module: {b.get(path)}", file=sys.stderr)
        sys.exit(1)
    print(f"ok {sys.argv[1]}: {len(a)} locations agree with the module's")


main()
