#!/usr/bin/env python3
"""Chat checks for the system suite and the NixOS VM tests: WebSocket clients in Python's standard
library (the one Python chat client of the project; tests/system/socketio.py uses it too).

    chat.py --sender URL --receiver URL [...] [--steps ...]     (the system suite)
    chat.py across [--timeout S] ROOM NAME=ws://HOST:PORT/ws [...] (nixos/tests/chat-across-instances.nix)

The first form: one --sender and one or more --receiver clients join a room (each URL is ws://HOST:PORT/ws?...),
then the --steps run in order, each bounded in time:
  deliver     one message from the sender reaches every receiver
  refused     a message gets an error frame back and reaches no receiver (the relay is away)
  recover     messages every 0.25 s until one reaches every receiver (the relay is back)
  wait:NAME   create DIR/NAME.waiting, then wait for DIR/NAME (--signal-dir): the caller acts
              meanwhile (e.g. stops Redis) and creates DIR/NAME when done
Prints one JSON object: sent, delivered (messages that reached every receiver), errors (error
frames the sender got), steps (seconds each). Exits 1 with the reason on stderr if a step fails.

`across`: connects the clients in order (each to its own URL: an instance, or nginx), then checks
that
  1. every client sees the join notice of every client that joined after it,
  2. a message from each client reaches every client, its sender included (the app delivers what
     comes back from Redis, so everyone sees one order),
whichever process each one is connected to. Prints one JSON line per check; exits 1 on the first
failure and 2 past the deadline. Bounded: every wait ends by --timeout (default 30 s).
"""
import argparse
import base64
import hashlib
import json
import os
import select
import socket
import sys
import time
import urllib.parse

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Client:
    def __init__(self, url, timeout):
        u = urllib.parse.urlsplit(url)
        self.url = url
        self.sock = socket.create_connection((u.hostname, u.port or 80), timeout=timeout)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(b"GET %s?%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                          % (u.path.encode(), u.query.encode(), u.netloc.encode(), key))
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise OSError(f"{url}: closed during the handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        if not head.startswith(b"HTTP/1.1 101") or (b"sec-websocket-accept: " + accept).lower() not in head.lower():
            raise OSError(f"{url}: no upgrade: {head.decode(errors='replace')!r}")
        self.frames = []  # JSON objects received, in order
        self.closed = False

    def send(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0xFE]) + n.to_bytes(2, "big"))
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def read(self):
        """Reads what is there (the socket is readable) and parses every whole frame."""
        chunk = self.sock.recv(65536)
        if not chunk:
            self.closed = True
        self.buf += chunk
        while len(self.buf) >= 2:
            opcode, n, at = self.buf[0] & 0x0F, self.buf[1] & 0x7F, 2
            if n == 126:
                n, at = int.from_bytes(self.buf[2:4], "big"), 4
            elif n == 127:
                n, at = int.from_bytes(self.buf[2:10], "big"), 10
            if len(self.buf) < at + n:
                break
            payload, self.buf = self.buf[at:at + n], self.buf[at + n:]
            if opcode == 1:
                self.frames.append(json.loads(payload))
            elif opcode == 9:
                self.send(0xA, payload)
            elif opcode == 8:
                self.closed = True


def log(**fields):
    print(json.dumps(fields), flush=True)


def expect(client, what, match, deadline):
    """The first frame `client` received (before or now) that `match`es, taken from its frames; an
    error frame fails the check, and so does the deadline."""
    while True:
        for frame in client.frames:
            if "error" in frame:
                raise RuntimeError(f"{client.url}: error frame while waiting for {what}: {frame}")
            if match(frame):
                client.frames.remove(frame)
                return frame
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{client.url}: no {what} within the deadline (frames seen: {client.frames})")
        ready, _, _ = select.select([client.sock], [], [], left)
        if ready:
            client.read()
            if client.closed:
                raise RuntimeError(f"{client.url}: closed while waiting for {what}")


def across(argv):
    ap = argparse.ArgumentParser(prog="chat.py across")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("room")
    ap.add_argument("clients", nargs="+", metavar="NAME=URL")
    a = ap.parse_args(argv)
    specs = [tuple(c.split("=", 1)) for c in a.clients]
    if any(len(s) != 2 for s in specs):
        ap.error("each client is NAME=ws://HOST:PORT/ws")
    deadline = time.monotonic() + a.timeout
    clients = []
    try:
        for name, url in specs:
            query = urllib.parse.urlencode({"room": a.room, "name": name})
            client = Client(f"{url}?{query}", max(1.0, deadline - time.monotonic()))
            client.name = name
            log(event="connected", name=name, url=client.url)
            # Every client already in the room hears of this one: across processes, that is Redis.
            for earlier in clients:
                frame = expect(earlier, f"join notice of {name}",
                               lambda f, n=name: f.get("event") == "join" and f.get("name") == n, deadline)
                log(check="join", to=earlier.name, about=name, ts=frame["ts"])
            clients.append(client)
        for sender in clients:
            text = f"hello from {sender.name} ({time.time_ns()})"
            sender.send(1, json.dumps({"text": text}).encode())
            for receiver in clients:
                frame = expect(receiver, f"the message of {sender.name}", lambda f, t=text: f.get("text") == t, deadline)
                if frame.get("from") != sender.name or frame.get("room") != a.room:
                    raise RuntimeError(f"{receiver.name}: wrong frame for {sender.name}'s message: {frame}")
                log(check="message", sender=sender.name, receiver=receiver.name)
    except TimeoutError as e:
        log(result="timeout", error=str(e))
        sys.exit(2)
    except Exception as e:  # noqa: BLE001 (report any failure as one line)
        log(result="failed", error=f"{type(e).__name__}: {e}")
        sys.exit(1)
    finally:
        for c in clients:
            try:
                c.send(8, (1000).to_bytes(2, "big"))
            except OSError:
                pass
            c.sock.close()
    log(result="ok", clients=[name for name, _ in specs])


def main():
    if sys.argv[1:2] == ["across"]:
        return across(sys.argv[2:])
    ap = argparse.ArgumentParser()
    ap.add_argument("--sender", required=True)
    ap.add_argument("--receiver", action="append", required=True)
    ap.add_argument("--steps", default="deliver")
    ap.add_argument("--signal-dir", default=".")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per step")
    a = ap.parse_args()
    sender = Client(a.sender, a.timeout)
    receivers = [Client(url, a.timeout) for url in a.receiver]
    everyone = [sender] + receivers
    stats = {"sent": 0, "delivered": 0, "errors": 0, "steps": []}

    def pump(seconds):
        ready, _, _ = select.select([c.sock for c in everyone], [], [], seconds)
        for c in everyone:
            if c.sock in ready:
                c.read()
            if c.closed:
                sys.exit(f"chat: {c.url} was closed")

    def got(c, text):
        return any(f.get("text") == text for f in c.frames)

    def error_for(text):
        """An error frame came back since `text` was sent."""
        return any("error" in f for f in sender.frames[stats["seen"]:])

    def say(text):
        stats["seen"] = len(sender.frames)
        sender.send(1, json.dumps({"text": text}).encode())
        stats["sent"] += 1

    def until(deadline, done):
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            pump(min(left, 0.05))
        return True

    for n, step in enumerate(a.steps.split(",")):
        t0 = time.monotonic()
        deadline = t0 + a.timeout
        text = f"message {n} ({step})"
        if step == "deliver":
            say(text)
            if not until(deadline, lambda: all(got(c, text) for c in receivers)):
                sys.exit(f"chat: {text!r} reached {sum(got(c, text) for c in receivers)} of {len(receivers)} receivers")
            stats["delivered"] += 1
        elif step == "refused":
            say(text)
            if not until(deadline, lambda: error_for(text)):
                sys.exit(f"chat: {text!r} got no error frame while the relay was away")
            stats["errors"] += 1
            until(time.monotonic() + 0.5, lambda: False)
            if any(got(c, text) for c in receivers):
                sys.exit(f"chat: {text!r} was refused yet delivered")
        elif step == "recover":
            tries = []
            while not any(all(got(c, t) for c in receivers) for t in tries):
                if time.monotonic() > deadline:
                    sys.exit(f"chat: no message reached every receiver within {a.timeout}s of the relay's return")
                tries.append(f"{text} try {len(tries)}")
                say(tries[-1])
                until(time.monotonic() + 0.25, lambda: all(got(c, tries[-1]) for c in receivers))
                stats["errors"] += error_for(tries[-1])
            stats["delivered"] += 1
        elif step.startswith("wait:"):
            path = os.path.join(a.signal_dir, step[5:])
            open(path + ".waiting", "w").close()
            if not until(deadline, lambda: os.path.exists(path)):
                sys.exit(f"chat: nobody created {path}")
        else:
            sys.exit(f"chat: unknown step {step!r}")
        stats["steps"].append([step, round(time.monotonic() - t0, 2)])
    for c in everyone:
        c.send(8, (1000).to_bytes(2, "big"))
        c.sock.close()
    stats.pop("seen", None)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
