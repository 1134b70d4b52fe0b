#!/usr/bin/env python3
"""Socket.IO check for the system tests: the real socket.io-client, in tests/socketio/driver.js
(one Node process per client), steered from here, beside /ws clients (chat.py's Client).

    socketio.py --driver tests/socketio/driver.js --room ROOM --timeout S [--signal-dir DIR]
        --client '{"name": "alice", "url": "http://127.0.0.1", "opts": {"transports": ["polling"]},
                   "transport": "polling"}' ...
        [--ws ws://HOST:PORT/ws?room=ROOM&name=NAME ...] --steps join,exchange,...

A --client's "opts" go to io() as they are (transports, upgrade, reconnection...); "transport" is
the transport it must be on once joined ("websocket" for a default client: polling first, then
the upgrade); "netns", if given, the network namespace its driver runs in (a client host). Every client must stay connected, except across a `rejoin` step. Steps, in order,
each bounded by --timeout:
  join       every Socket.IO client connects (auth {name}) on its transport and joins ROOM: each
             join is acknowledged {"ok": true}, and every earlier member sees its presence "join"
  exchange   each client (Socket.IO and /ws) sends one message; every client receives every one
             (its own included), Socket.IO senders get {"ok": true} as the acknowledgement
  idle:S     S seconds without a message: every client stays connected (Engine.IO pings)
  wait:NAME  create DIR/NAME.waiting, then wait for DIR/NAME: the caller acts meanwhile (e.g.
             restarts an instance) and creates DIR/NAME when done
  rejoin:A+B the Socket.IO clients A and B (each with reconnection on in its "opts") were
             disconnected, connect again by themselves, and join again; any other client must
             have stayed connected
Prints one JSON object: sent, deliveries, per client its transports and disconnects, steps
(seconds each). Exits 1 with the reason on stderr if a step fails.
"""
import argparse
import json
import os
import select
import subprocess
import sys
import time

from chat import Client as WsClient


class SioClient:
    """One socket.io-client in its own driver process; `events` holds what it printed."""

    def __init__(self, driver, spec):
        self.spec = spec
        self.name = spec["name"]
        # "netns": the driver runs in that network namespace (another client host, its own address).
        netns = ["ip", "netns", "exec", spec["netns"]] if "netns" in spec else []
        self.proc = subprocess.Popen(netns + ["node", driver], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.fd = self.proc.stdout.fileno()
        self.buf = b""
        self.events = []
        self.acks = 0
        self.joined_at = 0  # index in events of the last join: disconnects before it are settled

    def command(self, **cmd):
        self.proc.stdin.write((json.dumps({"id": self.name, **cmd}) + "\n").encode())
        self.proc.stdin.flush()

    def connect(self):
        self.command(cmd="connect", url=self.spec["url"], auth={"name": self.name}, opts=self.spec.get("opts", {}))

    def emit(self, event, *args):
        """Emits with an acknowledgement; returns its number (see `ack`)."""
        self.acks += 1
        self.command(cmd="emit", event=event, args=list(args), ack=self.acks)
        return self.acks

    def read(self):
        chunk = os.read(self.fd, 65536)
        if not chunk:
            sys.exit(f"socketio: the driver of {self.name} ended: {self.proc.wait()}")
        self.buf += chunk
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            e = json.loads(line)
            if "error" in e and "event" not in e:
                sys.exit(f"socketio: the driver of {self.name} says {e['error']}")
            self.events.append(e)

    def ack(self, n):
        return next((e["reply"] for e in self.events if e.get("ack") == n), None)

    def since(self, at, event):
        return [e for e in self.events[at:] if e.get("event") == event]

    def transport(self):
        """The transport it is on now: that of its last connect, or of a later upgrade."""
        now = None
        for e in self.events:
            if e.get("event") in ("connect", "upgrade"):
                now = e["transport"]
        return now

    def got(self, text):
        return any(e.get("event") == "message" and e["data"].get("text") == text for e in self.events)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--room", required=True)
    ap.add_argument("--client", action="append", default=[], type=json.loads)
    ap.add_argument("--ws", action="append", default=[])
    ap.add_argument("--steps", default="join,exchange")
    ap.add_argument("--signal-dir", default=".")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per step")
    a = ap.parse_args()
    sio = [SioClient(a.driver, spec) for spec in a.client]
    ws = [WsClient(url, a.timeout) for url in a.ws]
    stats = {"sent": 0, "deliveries": 0, "steps": []}
    expected_gone = set()  # clients whose disconnect a step allows (rejoin)

    def pump(seconds):
        ready, _, _ = select.select([c.fd for c in sio] + [c.sock for c in ws], [], [], seconds)
        for c in sio:
            if c.fd in ready:
                c.read()
            gone = c.since(c.joined_at, "disconnect") + c.since(c.joined_at, "connect_error")
            if gone and c.name not in expected_gone:
                sys.exit(f"socketio: {c.name} lost its connection: {gone[0]}")
        for c in ws:
            if c.sock in ready:
                c.read()
            if c.closed:
                sys.exit(f"socketio: {c.url} was closed")

    def until(deadline, done, what):
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                sys.exit(f"socketio: timed out: {what()}")
            pump(min(left, 0.05))

    def join(c, deadline, members, at):
        """c, connecting since its event `at`, connects and joins; every member sees it arrive."""
        until(deadline, lambda: c.since(at, "connect"), lambda: f"{c.name} did not connect: {c.events[at:]}")
        n = c.emit("join", a.room)
        until(deadline, lambda: c.ack(n) is not None, lambda: f"{c.name}: no acknowledgement of join")
        if c.ack(n) != {"ok": True}:
            sys.exit(f"socketio: {c.name} joining {a.room}: {c.ack(n)}")
        c.joined_at = len(c.events)
        seen = lambda m: any(e.get("event") == "presence" and e["data"].get("event") == "join"  # noqa: E731
                             and e["data"].get("name") == c.name and e["data"].get("room") == a.room
                             for e in m.events)
        until(deadline, lambda: all(seen(m) for m in members),
              lambda: f"the join of {c.name} not seen by {[m.name for m in members if not seen(m)]}")

    for n, step in enumerate(a.steps.split(",")):
        t0 = time.monotonic()
        deadline = t0 + a.timeout
        if step == "join":
            for i, c in enumerate(sio):
                at = len(c.events)
                c.connect()
                join(c, deadline, sio[:i], at)
        elif step == "exchange":
            texts, acks = [], {}
            for c in sio:
                texts.append(f"step {n}: from {c.name}")
                acks[c] = c.emit("message", {"room": a.room, "text": texts[-1]})
            for i, c in enumerate(ws):
                texts.append(f"step {n}: from /ws client {i}")
                c.send(1, json.dumps({"text": texts[-1]}).encode())
            stats["sent"] += len(texts)
            everyone = sio + ws

            def got(c, t):
                return c.got(t) if isinstance(c, SioClient) else any(f.get("text") == t for f in c.frames)

            until(deadline, lambda: all(got(c, t) for c in everyone for t in texts)
                  and all(c.ack(k) is not None for c, k in acks.items()),
                  lambda: "undelivered: " + ", ".join(f"{t!r} to {getattr(c, 'name', c.url)}"
                                                      for c in everyone for t in texts if not got(c, t))
                  + "; unacknowledged: " + ", ".join(c.name for c, k in acks.items() if c.ack(k) is None))
            for c, k in acks.items():
                if c.ack(k) != {"ok": True}:
                    sys.exit(f"socketio: {c.name}'s message was acknowledged {c.ack(k)}")
            stats["deliveries"] += len(texts) * len(everyone)
        elif step.startswith("idle:"):
            end = t0 + float(step[5:])
            until(end + a.timeout, lambda: time.monotonic() >= end, lambda: "idle")
        elif step.startswith("wait:"):
            path = os.path.join(a.signal_dir, step[5:])
            expected_gone.update(c.name for c in sio)
            open(path + ".waiting", "w").close()
            until(deadline, lambda: os.path.exists(path), lambda: f"nobody created {path}")
        elif step.startswith("rejoin:"):
            for name in step[7:].split("+"):
                c = next(c for c in sio if c.name == name)
                # Its disconnect, then its own reconnection (a connect event after it).
                until(deadline, lambda: c.since(c.joined_at, "disconnect"),
                      lambda: f"{c.name} was not disconnected: {c.events[c.joined_at:]}")
                gone = next(i for i in range(c.joined_at, len(c.events)) if c.events[i].get("event") == "disconnect")
                until(deadline, lambda: c.since(gone, "connect"),
                      lambda: f"{c.name} did not reconnect by itself: {c.events[gone:]}")
                back = next(i for i in range(gone, len(c.events)) if c.events[i].get("event") == "connect")
                c.joined_at = back
                join(c, deadline, [], back)
            expected_gone.clear()
        else:
            sys.exit(f"socketio: unknown step {step!r}")
        stats["steps"].append([step, round(time.monotonic() - t0, 2)])

    for c in sio:
        want = c.spec.get("transport")
        if want and c.transport() != want:
            sys.exit(f"socketio: {c.name} is on {c.transport()}, not {want}")
    stats["clients"] = {c.name: {"connects": [e["transport"] for e in c.events if e.get("event") == "connect"],
                                 "upgrades": [e["transport"] for e in c.events if e.get("event") == "upgrade"],
                                 "disconnects": [e.get("reason") for e in c.events if e.get("event") == "disconnect"],
                                 # In order, with the reasons: what the reconnections looked like.
                                 "history": [[e["event"], e.get("transport") or e.get("reason") or e.get("message")]
                                             for e in c.events if e.get("event") in ("connect", "upgrade", "disconnect", "connect_error")]}
                        for c in sio}
    for c in sio:
        c.close()
    for c in ws:
        c.send(8, (1000).to_bytes(2, "big"))
        c.sock.close()
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
