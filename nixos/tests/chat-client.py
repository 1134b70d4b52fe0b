# Chat clients for the VM test chat-across-instances.nix (also runnable by hand against any app):
#
#   chat-client.py ROOM NAME=ws://HOST:PORT/ws NAME=ws://... [...]
#
# Connects the clients in order (each to its own URL: an instance, or nginx), then checks that
#   1. every client sees the join notice of every client that joined after it,
#   2. a message from each client reaches every client, its sender included (the app delivers
#      what comes back from Redis, so everyone sees one order),
# whichever process each one is connected to. Prints one JSON line per check; exits 1 on the
# first failure and 2 past the deadline. Bounded: every wait ends by --timeout (default 30 s).
# Uses only the `websockets` package's asyncio API (present from version 10 to 15).
import argparse
import asyncio
import json
import sys
import time
from urllib.parse import urlencode

import websockets


def log(**fields):
    print(json.dumps(fields), flush=True)


class Client:
    def __init__(self, name, url, room):
        self.name, self.room = name, room
        self.url = f"{url}?{urlencode({'room': room, 'name': name})}"
        self.ws = None
        self.frames = []

    async def connect(self, timeout):
        self.ws = await websockets.connect(self.url, open_timeout=timeout, close_timeout=2)
        log(event="connected", name=self.name, url=self.url)

    async def expect(self, what, match, deadline):
        """The first frame (seen before or read now) that `match`es, or an error at the deadline."""
        for frame in self.frames:
            if match(frame):
                self.frames.remove(frame)
                return frame
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.name}: no {what} (frames seen: {self.frames})")
            try:
                raw = await asyncio.wait_for(self.ws.recv(), timeout=left)
            except asyncio.TimeoutError:
                raise TimeoutError(f"{self.name}: no {what} within the deadline (frames seen: {self.frames})")
            frame = json.loads(raw)
            if "error" in frame:
                raise RuntimeError(f"{self.name}: error frame while waiting for {what}: {frame}")
            if match(frame):
                return frame
            self.frames.append(frame)


async def run(room, specs, timeout):
    deadline = time.monotonic() + timeout
    clients = [Client(name, url, room) for name, url in specs]
    try:
        for i, client in enumerate(clients):
            await client.connect(max(1.0, deadline - time.monotonic()))
            # Every client already in the room hears of this one: across processes, that is Redis.
            for earlier in clients[:i]:
                frame = await earlier.expect(
                    f"join notice of {client.name}",
                    lambda f, n=client.name: f.get("event") == "join" and f.get("name") == n,
                    deadline,
                )
                log(check="join", to=earlier.name, about=client.name, ts=frame["ts"])

        for sender in clients:
            text = f"hello from {sender.name} ({time.time_ns()})"
            await sender.ws.send(json.dumps({"text": text}))
            for receiver in clients:
                frame = await receiver.expect(
                    f"the message of {sender.name}", lambda f, t=text: f.get("text") == t, deadline
                )
                if frame.get("from") != sender.name or frame.get("room") != room:
                    raise RuntimeError(f"{receiver.name}: wrong frame for {sender.name}'s message: {frame}")
                log(check="message", sender=sender.name, receiver=receiver.name)
    finally:
        for client in clients:
            if client.ws is not None:
                await client.ws.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("room")
    parser.add_argument("clients", nargs="+", metavar="NAME=URL")
    args = parser.parse_args()
    specs = [tuple(c.split("=", 1)) for c in args.clients]
    if any(len(s) != 2 for s in specs):
        parser.error("each client is NAME=ws://HOST:PORT/ws")
    try:
        asyncio.run(run(args.room, specs, args.timeout))
    except (asyncio.TimeoutError, TimeoutError) as e:
        log(result="timeout", error=str(e))
        sys.exit(2)
    except Exception as e:  # noqa: BLE001 (report any failure as one line)
        log(result="failed", error=f"{type(e).__name__}: {e}")
        sys.exit(1)
    log(result="ok", clients=[name for name, _ in specs])


if __name__ == "__main__":
    main()
