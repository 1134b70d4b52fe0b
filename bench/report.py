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
        targets.append(target("/info through nginx, share of nginx's own proxy floor", share, 0.9, "{:.0%}"))
    for scenario, limit in [("/api/randoms?cant=100000", 10.0), ("POST /v1/todos", 1.5)]:
        ours_r, node_r = find("ours", scenario), find("node", scenario)
        if ours_r and node_r:
            what = f"`{scenario}` req/s, times Node's" + (" (in-memory list)" if "todos" in scenario else "")
            targets.append(target(what, rate(ours_r) / rate(node_r), limit, "{:.2f}x"))
    todos = find("ours", "POST /v1/todos")
    if todos:
        tail = todos["wrk"]["p99_us"] / max(todos["wrk"]["p50_us"], 1)
        targets.append(target("`POST /v1/todos` p99 / p50", tail, 3.0, "{:.2f}x", below=True))
    bench = [r["randoms_bench"] for r in rows if "randoms_bench" in r]
    fastest = next((line for line in bench if "the one the server uses" in line), None)
    if fastest:
        seconds = float(fastest.split(" min ")[1].split(" s")[0])
        targets.append(target("`cargo bench --bench randoms`: 1e8 draws, one core (best run, s)", seconds, 0.05, "{:.3f} s", below=True))
    cold = [r["cold_start"] for r in rows if "cold_start" in r]
    if cold:
        ms_first = cold[0]["first_response_ms"]
        targets.append(target("cold start: connection to first response, inactive socket-activated instance (ms)", ms_first, 20.0, "{:.1f} ms", below=True))
    if "ours" in rss and "node" in rss:
        ratio = (sum(rss["node"]) / len(rss["node"])) / (sum(rss["ours"]) / len(rss["ours"]))
        targets.append(target("RSS per instance, times smaller than Node's", ratio, 5.0, "{:.1f}x"))
    ours_failed = sum(errors(r["wrk"]) for r in reloads if r["stack"] == "ours")
    node_failed = sum(errors(r["wrk"]) for r in reloads if r["stack"] == "node")
    targets.append(
        f"| failed requests during a live reload (Node during pm2 reload: {node_failed}) | {ours_failed} | 0 | "
        f"{'at the limit' if ours_failed == 0 else f'{ours_failed} over'} | {'yes' if ours_failed == 0 else 'NO'} |"
    )
    commits = [r for r in rows if "commits" in r]
    durable = ""
    if commits:
        total_commits = sum(r["commits"] for r in commits)
        total_writes = sum(r["writes"] for r in commits)
        seconds = sum(r["seconds"] for r in commits)
        durable = (
            f"Durable writes (`ours`, all {len(commits)} POST runs, from `/metrics`): {total_writes:,} writes in "
            f"{total_commits:,} SQLite commits over {seconds} s: {total_commits / seconds:,.0f} commits (WAL fsyncs) "
            f"per second across the four instances, {total_writes / max(total_commits, 1):.1f} writes per commit on average."
        )
    bench_text = "\n".join(f"    {line}" for line in bench) or "    (not run)"
    target_table = "\n".join(
        ["| figure | measured | limit | distance to the limit | met |", "|---|---:|---:|---:|---|"] + targets
    )

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = f"""# Benchmarks

Measured by `bench/run.sh` on {now}. Reproduce with that one command (about four minutes).

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

{durable}

## The randoms computation alone

`cargo bench --bench randoms`: 100 000 000 draws counted on one thread, without HTTP, with each
kernel this CPU runs (wall time; CPU time leaves out the time other processes held the core).

{bench_text}

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
- "Distance to the limit" is the margin as a share of the limit: how much better than the target a
  figure is, or how far short.
- The cold start is measured by the system suite (`tests/system/run.sh lazy`, a real systemd):
  from the connection to an inactive socket-activated instance to the first byte of its answer.
  bench/run.sh shows the figure that suite run last wrote; it is absent if the suite has not run.
"""
    text += kept_section(out_path)
    with open(out_path, "w") as out:
        out.write(text)
    print(text)


# The chat capacity section is bench/chat-capacity.sh's (a run of its own): kept as it is.
KEPT_BEGIN, KEPT_END = "<!-- chat-capacity: begin -->", "<!-- chat-capacity: end -->"


def kept_section(out_path):
    try:
        old = open(out_path).read()
    except FileNotFoundError:
        return ""
    start, end = old.find(KEPT_BEGIN), old.find(KEPT_END)
    return "\n" + old[start : end + len(KEPT_END)] + "\n" if 0 <= start < end else ""


def rate(r):
    return r["wrk"]["requests"] / (r["wrk"]["duration_us"] / 1e6)


def ms(us):
    return f"{us / 1000:.2f} ms"


def mb(kb):
    return f"{kb / 1024:.1f} MB"


def target(what, value, limit, shown, below=False):
    """A row: the figure, its limit, and how far it is from it (a share of the limit)."""
    met = value <= limit if below else value >= limit
    margin = (limit - value) / limit if below else (value - limit) / limit
    distance = f"{abs(margin):.0%} {'better' if margin >= 0 else 'short'}"
    return f"| {what} | {shown.format(value)} | {'≤' if below else '≥'} {shown.format(limit)} | {distance} | {'yes' if met else 'NO'} |"


if __name__ == "__main__":
    main()
