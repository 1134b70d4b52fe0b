#!/usr/bin/env python3
"""Turns bench/run.sh's results (JSON lines) into the printed tables and docs/benchmarks.md.

Usage: report.py RESULTS.jsonl OUT.md MACHINE LOAD_DESCRIPTION
"""
import datetime
import json
import sys


def main():
    results_path, out_path, machine, load = sys.argv[1:5]
    rows = [json.loads(line) for line in open(results_path) if line.strip()]
    # The best round of each scenario (the runs least disturbed by the rest of the machine).
    runs, seen = [], {}
    for r in (r for r in rows if "scenario" in r):
        key = (r["stack"], r["scenario"])
        if key not in seen:
            seen[key] = len(runs)
            runs.append(r)
        elif "wrk" in r and "wrk" in runs[seen[key]] and rate(r) > rate(runs[seen[key]]):
            runs[seen[key]] = r
    runs.sort(key=lambda r: ["nginx", "ours", "node"].index(r["stack"]))
    rss = {r["stack"]: r["rss_kb"] for r in rows if "rss_kb" in r}
    reloads = [r for r in rows if "reload" in r]

    def errors(w):
        return w["connect"] + w["read"] + w["write"] + w["timeout"] + w["status"]

    def find(stack, scenario):
        return next((r for r in runs if r["stack"] == stack and r["scenario"] == scenario and "wrk" in r), None)

    lines = ["| stack | scenario | req/s | p50 | p99 | errors |", "|---|---|---:|---:|---:|---:|"]
    for r in runs:
        if "absent" in r:
            lines.append(f"| {r['stack']} | {r['scenario']} | {r['absent']} | | | |")
            continue
        w = r["wrk"]
        lines.append(
            f"| {r['stack']} | `{r['scenario']}` | {rate(r):,.0f} | {ms(w['p50_us'])} | {ms(w['p99_us'])} | {errors(w)} |"
        )
    load_table = "\n".join(lines)

    lines = ["| stack | RSS per instance | mean |", "|---|---|---:|"]
    for stack, kbs in rss.items():
        lines.append(f"| {stack} | {', '.join(mb(kb) for kb in kbs)} | {mb(sum(kbs) / len(kbs))} |")
    rss_table = "\n".join(lines)

    lines = [
        "| stack | reload | requests | failed (client saw) | upstream errors nginx hid by retrying |",
        "|---|---|---:|---:|---:|",
    ]
    for r in reloads:
        w = r["wrk"]
        lines.append(f"| {r['stack']} | {r['reload']} | {w['requests']:,} | {errors(w)} | {r['upstream_errors']} |")
    reload_table = "\n".join(lines)

    targets = []
    floor, info = find("nginx", "return 200 (floor)"), find("ours", "/info")
    if floor and info:
        share = rate(info) / rate(floor)
        targets.append(check("/info through nginx >= 80% of nginx's own proxy floor", f"{share:.0%}", share >= 0.8))
    ours_r, node_r = find("ours", "/api/randoms?cant=100000"), find("node", "/api/randoms?cant=100000")
    if ours_r and node_r:
        ratio = rate(ours_r) / rate(node_r)
        targets.append(check("/api/randoms?cant=100000 >= 5x Node (aim 10x)", f"{ratio:.1f}x", ratio >= 5))
    if "ours" in rss and "node" in rss:
        ratio = (sum(rss["node"]) / len(rss["node"])) / (sum(rss["ours"]) / len(rss["ours"]))
        targets.append(check("RSS per instance 5x smaller than Node's", f"{ratio:.1f}x smaller", ratio >= 5))
    ours_failed = sum(errors(r["wrk"]) for r in reloads if r["stack"] == "ours")
    node_failed = sum(errors(r["wrk"]) for r in reloads if r["stack"] == "node")
    targets.append(
        check(
            "zero failed requests during a live reload",
            f"{ours_failed} (Node during pm2 reload: {node_failed})",
            ours_failed == 0,
        )
    )
    target_table = "\n".join(["| target | measured | met |", "|---|---|---|"] + targets)

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = f"""# Benchmarks

Measured by `bench/run.sh` on {now}. Reproduce with that one command (about two minutes).

Machine:

{chr(10).join('- ' + line for line in machine.strip().splitlines())}

Load: {load}.

`ours` is four fork-mode `app` instances (release build, one event loop each);
`node` is the seeds' stack, an Express app (bench/node) as four fork-mode pm2 instances; both
behind the same nginx with the repository's proxy settings (nginx/snippets/app-proxy.conf). The floor is
that nginx proxying, with the same upstream settings, to a server block of its own that answers
`return 200`. wrk, nginx and the instances share the machine's cores, as they would on one host.

## Targets

{target_table}

## Load

{load_table}

## Memory

{rss_table}

## Live reload under load

`ours`: SIGHUP, what `systemctl reload app@PORT` sends (fork mode re-executes on the same socket,
same PID). `node`: `pm2 reload`. "Through nginx" reloads the four instances one after another;
nginx retries a failed upstream attempt on another instance (proxy_next_upstream), so the last
column counts the failures it hid. "Direct" sends the load to one instance while it reloads
twice: what a client without a retrying proxy in front sees. While an instance is down, wrk
tries to reconnect at once, again and again, so a failure count there measures the downtime
(failed attempts), not distinct users.

{reload_table}

## Notes

- The machine is shared (other builds run on its two cores: see the load average above), so
  numbers move from run to run by 20% or more; the ratios of one run are what the targets use.
- The floor runs both sides in nginx itself, so /info can come out above 100% of it.
- Both stacks get the same wrk load, so `app` runs with `APP_RANDOMS_CONCURRENCY=64`: computations
  queue instead of being shed with 503 beyond the default of 2 per process.
- The Node app computes `/api/randoms` in its event loop (no child process per request, which
  some versions of the seeds use and which would be slower still), and keeps todos in memory.
- `POST /v1/todos` is measured for `app` only when the route exists in this build.
"""
    with open(out_path, "w") as out:
        out.write(text)
    print(text)


def rate(r):
    return r["wrk"]["requests"] / (r["wrk"]["duration_us"] / 1e6)


def ms(us):
    return f"{us / 1000:.2f} ms"


def mb(kb):
    return f"{kb / 1024:.1f} MB"


def check(what, measured, met):
    return f"| {what} | {measured} | {'yes' if met else 'NO'} |"


if __name__ == "__main__":
    main()
