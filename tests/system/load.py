#!/usr/bin/env python3
"""Bounded HTTP load for the system tests (standard library only).

Each of --concurrency threads keeps one keep-alive connection and sends GETs (or, with
--post-json BODY, POSTs of that JSON body), cycling over the --path values, until --duration
seconds have passed, --max-requests were sent in all, or the --stop-file exists; with --rate R,
at most R requests a second in all. Every request ends as exactly one of: ok (2xx), non-2xx
(the status is counted) or error (connect/reset/timeout: the message is counted, then the thread
reconnects).
Prints one JSON object: sent, ok, non2xx, errors, statuses, error_kinds, seconds, and with
--tally-json FIELD the count of each value of that field in the JSON bodies of 2xx answers.
"""
import argparse
import http.client
import json
import os
import threading
import time
from collections import Counter


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--path", action="append", required=True)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--max-requests", type=int, default=100000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=15.0)
    ap.add_argument("--stop-file")
    ap.add_argument("--tally-json")
    ap.add_argument("--post-json", help="POST this JSON body instead of GETs")
    ap.add_argument("--rate", type=float, help="at most this many requests a second in all")
    a = ap.parse_args()
    method, body_out = ("POST", a.post_json.encode()) if a.post_json else ("GET", None)
    headers = {"Content-Type": "application/json"} if a.post_json else {}

    lock = threading.Lock()
    stats = Counter()
    statuses, kinds, tally = Counter(), Counter(), Counter()
    deadline = time.monotonic() + a.duration
    start = time.monotonic()

    def take_ticket():
        with lock:
            if stats["sent"] >= a.max_requests:
                return False
            stats["sent"] += 1
            due = start + stats["sent"] / a.rate if a.rate else 0
        time.sleep(max(0.0, due - time.monotonic()))
        return True

    def done():
        return time.monotonic() >= deadline or (a.stop_file and os.path.exists(a.stop_file))

    def worker(n):
        conn = None
        i = n
        while not done() and take_ticket():
            path = a.path[i % len(a.path)]
            i += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(a.host, a.port, timeout=a.timeout)
                conn.request(method, path, body=body_out, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                if resp.will_close:
                    conn.close()
                    conn = None
                with lock:
                    if 200 <= resp.status < 300:
                        stats["ok"] += 1
                        if a.tally_json:
                            tally[str(json.loads(body).get(a.tally_json))] += 1
                    else:
                        stats["non2xx"] += 1
                        statuses[resp.status] += 1
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    stats["errors"] += 1
                    kinds[type(e).__name__ + ": " + str(e)[:80]] += 1
                if conn is not None:
                    conn.close()
                conn = None

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(a.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = {
        "sent": stats["sent"] if stats["sent"] <= stats["ok"] + stats["non2xx"] + stats["errors"]
        else stats["ok"] + stats["non2xx"] + stats["errors"],
        "ok": stats["ok"],
        "non2xx": stats["non2xx"],
        "errors": stats["errors"],
        "statuses": {str(k): v for k, v in statuses.items()},
        "error_kinds": dict(kinds),
        "seconds": round(time.monotonic() - start, 2),
    }
    if a.tally_json:
        out["tally"] = dict(tally)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
