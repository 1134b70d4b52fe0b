#!/usr/bin/env python3
"""Starts a program as systemd starts a socket-activated Type=notify service, for shell tests that
must know when it serves without polling it: a listening socket on a free loopback port at fd 3
(LISTEN_FDS=1, LISTEN_PID of the program), and a NOTIFY_SOCKET of this script's own.

    tests/lib/activate.py [--timeout S] PROGRAM [ARG...]

Prints `PID PORT` once the program sent READY=1 (exits 1 if it did not within --timeout, default
30 s, or ended first), then stays until the program ends and exits with its status; the caller
stops the program by PID. What the program notifies after READY=1 is not read. The program's stdout and stderr are this script's.
"""
import argparse
import os
import select
import socket
import subprocess
import sys
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("program", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="activate-") as tmp:
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(os.path.join(tmp, "notify.sock"))
        env = dict(os.environ, LISTEN_FDS="1", NOTIFY_SOCKET=notify.getsockname())
        # The socket at fd 3 for the program (it may be there already).
        if listener.fileno() != 3:
            os.dup2(listener.fileno(), 3)
        # sh sets LISTEN_PID to its own pid and execs the program, which keeps it.
        child = subprocess.Popen(["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"'] + a.program,
                                 env=env, pass_fds=(3,), stdout=sys.stderr)
        if listener.fileno() != 3:
            os.close(3)
        listener.close()
        # Woken by a notification or by the program's end (its pidfd), whichever comes first.
        ended = os.pidfd_open(child.pid)
        deadline = time.monotonic() + a.timeout
        ready = False
        while not ready:
            left = deadline - time.monotonic()
            readable, _, _ = select.select([notify, ended], [], [], max(left, 0))
            if ended in readable:
                sys.exit(f"activate: {a.program[0]} ended (status {child.wait()}) before READY=1")
            if not readable:
                child.kill()
                sys.exit(f"activate: {a.program[0]} sent no READY=1 within {a.timeout}s")
            ready = "READY=1" in notify.recv(4096).decode(errors="replace").splitlines()
        print(child.pid, port, flush=True)
        # Later notifications go nowhere (the program logs that it could not send them).
        notify.close()
        child.wait()
    sys.exit(child.returncode)


if __name__ == "__main__":
    main()
