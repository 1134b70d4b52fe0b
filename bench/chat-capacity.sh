#!/usr/bin/env bash
# Chat capacity on this machine, written into its own section of docs/benchmarks.md (the rest of
# that file is bench/run.sh's; bench/report.py keeps this section as it is):
#
#     bench/chat-capacity.sh [STACK...]     (stacks: ws socketio node; default all three)
#
# For each stack, `cargo bench --bench capacity -- idle STACK` (memory per idle socket, 10,000
# sockets, best of 3) and `-- load STACK` (10,000 sockets over four instances + Redis, 100 rooms,
# 10,000 deliveries a second for 20 s). `node` is Node's Socket.IO with @socket.io/redis-adapter,
# installed from bench/node-socketio/package-lock.json. Needs cargo, redis-server, node + npm.
# Loopback only; every run bounded in count and time (see benches/capacity.rs).
# Environment: BENCH_OUT (docs/benchmarks.md), and the CAPACITY_* counts of benches/capacity.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${BENCH_OUT:-docs/benchmarks.md}
stacks=("$@")
[ ${#stacks[@]} -gt 0 ] || stacks=(ws socketio node)
trap 'echo "chat-capacity: failed at line $LINENO" >&2' ERR

if [[ " ${stacks[*]} " == *" node "* ]]; then
    (cd bench/node-socketio && npm ci --no-audit --no-fund --silent)
fi
cargo bench --locked --quiet --bench capacity --no-run
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
for mode in idle load; do
    for stack in "${stacks[@]}"; do
        echo "==> $mode $stack" >&2
        cargo bench --locked --quiet --bench capacity -- "$mode" "$stack" | tee /dev/stderr |
            sed -n 's/^CAPACITY_ROW //p' >> "$rows"
    done
done

python3 - "$OUT" "$rows" "$(nproc) CPUs, $(uname -r)" <<'EOF'
import datetime, sys
out, rows_path, machine = sys.argv[1:4]
rows = [line.rstrip("\n").split(" ", 1) for line in open(rows_path) if line.strip()]
idle = "\n".join(r for kind, r in rows if kind == "idle")
load = "\n".join(r for kind, r in rows if kind == "load")
section = f"""<!-- chat-capacity: begin -->
## Chat capacity

`bench/chat-capacity.sh` ({datetime.date.today()}, {machine}; `cargo bench --bench capacity`).
Clients bind 127.0.0.2 to 127.0.0.9 before connecting. `ours /ws` and `ours /socket.io/` are this
server (fork mode, one event loop per process); `Node` is Socket.IO 4 with
`@socket.io/redis-adapter` (bench/node-socketio), driven by the same Rust client speaking
Engine.IO 4 over WebSocket.

Memory per idle chat socket (target: at most 8 KiB): one fresh process, 10,000 sockets in 100
rooms, each client reading; the process's resident memory with them open less before, per
socket; best of 3 rounds.

| stack | sockets | per socket | load average |
|---|---:|---:|---|
{idle}

Load (targets: 0 lost, p99 at most 100 ms): 10,000 sockets over four instances sharing one
redis-server, 100 rooms of 100, one sender per room posting one message a second, each delivered
to the whole room (sender included), for 20 s. Lost: deliveries expected and not received within
10 s of the last send. RSS: mean per instance after the load; per socket: connected less empty,
per socket. CPU: mean per instance over the run (100% = one core). The 20 s start once a probe
message has reached every member of every room, so the join notices of 10,000 clients (each
relayed through Redis) are delivered first; the bench prints how long that took.

| stack | sockets | deliveries | lost | p50 | p99 | RSS per instance | per socket | CPU per instance | load average (before → after) |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---|
{load}
<!-- chat-capacity: end -->
"""
try:
    text = open(out).read()
except FileNotFoundError:
    text = "# Benchmarks\n"
begin, end = text.find("<!-- chat-capacity: begin -->"), text.find("<!-- chat-capacity: end -->\n")
if 0 <= begin < end:
    text = text[:begin] + section + text[end + len("<!-- chat-capacity: end -->\n"):]
else:
    text = text.rstrip("\n") + "\n\n" + section
open(out, "w").write(text)
print(section)
EOF
