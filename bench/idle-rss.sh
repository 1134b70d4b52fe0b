#!/usr/bin/env bash
# Resident memory of idle processes of the release binary: a fork-mode process, and a cluster's
# primary and each of its workers, after a few requests. Target: 10 MB or less per serving process.
# Usage: bench/idle-rss.sh [WORKERS]   (loopback only; ports from the kernel)
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-4}
cargo build --release --locked -q
bin=target/release/app

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# Starts the binary on a free port, waits for it to answer, warms it with a few requests.
start() {
  local log=$1
  shift
  # stdout elsewhere: the caller reads ours through $(...), which waits for every writer to close.
  "$bin" --port 0 "$@" >/dev/null 2>"$log" &
  local pid=$! port=""
  for _ in $(seq 1 200); do
    port=$(grep -o 'listen=127.0.0.1:[0-9]*' "$log" | head -1 | cut -d: -f2 || true)
    [ -n "$port" ] && curl -sf "127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "the server did not start: $(cat "$log")" >&2; exit 1; }
  for _ in $(seq 1 50); do curl -sf "127.0.0.1:$port/info" >/dev/null; curl -sf "127.0.0.1:$port/api/randoms?cant=1000" >/dev/null; done
  echo "$pid"
}

tmp=$(mktemp -d)
# The servers start inside $(...), so they are not this shell's jobs: stop them by pid.
trap 'kill $fork $primary 2>/dev/null; rm -rf "$tmp"' EXIT
fork="" primary=""

fork=$(start "$tmp/fork.log")
printf 'fork mode, idle after 100 requests: %s kB\n' "$(rss_kb "$fork")"

primary=$(start "$tmp/cluster.log" --mode cluster --workers "$workers")
children() { cat "/proc/$primary/task/$primary/children"; }
for _ in $(seq 1 200); do [ "$(children | wc -w)" -eq "$workers" ] && break; sleep 0.05; done
printf 'cluster primary: %s kB\n' "$(rss_kb "$primary")"
for worker in $(children); do
  printf 'cluster worker %s: %s kB\n' "$worker" "$(rss_kb "$worker")"
done
