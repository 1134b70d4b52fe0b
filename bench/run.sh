#!/usr/bin/env bash
# One command, one reproducible comparison on this machine (about four minutes):
#
#     bench/run.sh
#
# nginx on loopback in front of four fork-mode `app` instances (release build) and, in the same
# run and behind the same nginx with the same proxy settings (nginx/snippets/app-proxy.conf) and upstream
# settings, the seeds' Node stack: an Express app (bench/node, installed from npm with its
# lockfile) as four fork-mode pm2 instances. Bounded wrk runs on /info, /api/randoms?cant=1000,
# /api/randoms?cant=100000 and POST /v1/todos, plus nginx proxying to a server block of its own
# that answers `return 200`: the floor. Then a live reload of each stack under load (ours:
# SIGHUP, what `systemctl reload` sends; Node: `pm2 reload`), through nginx and straight to one
# instance. Also `cargo bench --bench randoms` (the computation alone, one core), the SQLite
# commits (fsyncs) and batch sizes of the POST runs from /metrics, and the cold-start figure the
# system suite last wrote (BENCH_COLD_START, default /var/tmp/app-cold-start.json) when there is
# one. Prints the tables and writes them to docs/benchmarks.md with the machine, date and targets.
#
# Needs: cargo, nginx, wrk, node + npm, curl, python3 (installed with apt-get when run as root).
# Only loopback receives traffic; every load is bounded in time.
# Environment: BENCH_DURATION (seconds per run, 4), BENCH_ROUNDS (2: each run repeated, the best
# kept), BENCH_CONNECTIONS (32), BENCH_THREADS (2), BENCH_OUT (docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
DURATION=${BENCH_DURATION:-4}
ROUNDS=${BENCH_ROUNDS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
OUT=${BENCH_OUT:-docs/benchmarks.md}
COLD_START=${BENCH_COLD_START:-/var/tmp/app-cold-start.json}
OURS=(18082 18083 18084 18085)
NODE=(18182 18183 18184 18185)
PROXY_OURS=18080 PROXY_NODE=18081 PROXY_FLOOR=18079 FLOOR=18190

# shellcheck source=tests/lib/deps.sh
source tests/lib/deps.sh
# As root, installs what is missing (as the test command does); otherwise says what is.
# By command, not package: NodeSource's nodejs carries npm, and Debian's npm package conflicts.
missing=()
for pair in nginx:nginx wrk:wrk node:nodejs npm:npm curl:curl python3:python3; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if [ "$(id -u)" -eq 0 ] && [ ${#missing[@]} -gt 0 ]; then need_packages "${missing[@]}"; fi
for tool in cargo nginx wrk node npm curl python3; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is needed (apt-get install nginx wrk nodejs npm)" >&2; exit 1; }
done
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
WORK=$(mktemp -d /tmp/app-bench.XXXXXX)
export PM2_HOME=$WORK/pm2
PM2=$REPO/bench/node/node_modules/.bin/pm2
our_pids=()
cleanup() {
    [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null
    for pid in "${our_pids[@]}"; do kill "$pid" 2>/dev/null; done
    [ -x "$PM2" ] && "$PM2" kill >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
say() { printf '\n==> %s\n' "$*" >&2; }
join() { local IFS=,; echo "$*"; }

say "building the release binary; installing the Node stack from npm (package-lock.json)"
cargo build --release --locked --quiet
RANDOMS_BENCH=$(cargo bench --locked --quiet --bench randoms 2>/dev/null | grep '^randoms tally')
install -m 0755 target/release/app "$WORK/app"   # the file a reload re-executes
(cd bench/node && npm ci --no-audit --no-fund --silent)

say "starting 4 app instances, 4 pm2 instances, nginx"
for port in "${OURS[@]}"; do
    # One event loop per process, as a Node process. Computations queue instead of being shed
    # with 503 (the default of 2 at once per process) so both stacks face the same load.
    # The four share one todo file, as a host's instances do: a fresh one each run, so a run never
    # writes into the rows (and the WAL) of the last one.
    APP_RANDOMS_CONCURRENCY=64 RUST_LOG=warn "$WORK/app" --port "$port" --mode fork --data-dir "$WORK/data" \
        2>>"$WORK/app.log" &
    our_pids+=($!)
done
BENCH_NODE_PORTS=$(join "${NODE[@]}") "$PM2" start bench/node/ecosystem.config.js >/dev/null

upstream() {
    local name=$1 port
    shift
    echo "    upstream $name {"
    for port in "$@"; do echo "        server 127.0.0.1:$port max_fails=0;"; done
    echo "        include $REPO/nginx/snippets/app-upstream.conf;"
    echo "    }"
}
proxy() {
    echo "    server { listen 127.0.0.1:$1; access_log off;"
    echo "        location / { proxy_pass http://$2; include $REPO/nginx/snippets/app-proxy.conf; include $REPO/nginx/snippets/app-requests.conf; } }"
}
{
    echo "worker_processes auto;"
    echo "pid $WORK/nginx.pid;"
    echo "error_log $WORK/nginx-error.log warn;"
    echo "events { worker_connections 4096; }"
    echo "http {"
    echo "    include $REPO/nginx/conf.d/app.conf;"
    echo "    access_log off;"
    upstream ours "${OURS[@]}"
    upstream node "${NODE[@]}"
    upstream floor "$FLOOR"
    proxy "$PROXY_OURS" ours
    proxy "$PROXY_NODE" node
    proxy "$PROXY_FLOOR" floor
    printf '    server { listen 127.0.0.1:%s; access_log off; location / { return 200 "ok"; } }\n' "$FLOOR"
    echo "}"
} > "$WORK/nginx.conf"
mkdir -p "$WORK/nginx"
nginx -t -q -p "$WORK/nginx" -c "$WORK/nginx.conf"
nginx -p "$WORK/nginx" -c "$WORK/nginx.conf"

wait_up() {
    local port=$1 _
    for _ in $(seq 100); do
        curl -fs -o /dev/null "http://127.0.0.1:$port/info" && return 0
        sleep 0.1
    done
    echo "bench: nothing answers on port $port" >&2
    exit 1
}
for port in "${OURS[@]}" "${NODE[@]}" "$PROXY_OURS" "$PROXY_NODE"; do wait_up "$port"; done

RESULTS=$WORK/results.jsonl
: > "$RESULTS"
# run STACK SCENARIO PORT PATH [METHOD BODY]: one bounded wrk run, one JSON line of results.
run() {
    local stack=$1 scenario=$2 port=$3 path=$4 method=${5:-GET} body=${6:-} out
    out=$(WRK_METHOD=$method WRK_BODY=$body timeout $((DURATION + 30)) \
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s -s bench/wrk.lua "http://127.0.0.1:$port$path")
    printf '{"stack":"%s","scenario":"%s","wrk":%s}\n' "$stack" "$scenario" \
        "$(sed -n 's/^WRK_JSON //p' <<<"$out")" >> "$RESULTS"
    echo "   $stack $scenario: $(sed -n 's/^Requests\/sec: *//p' <<<"$out") req/s" >&2
}
status_of() { curl -s -o /dev/null -w '%{http_code}' -X "$2" -H 'content-type: application/json' -d "$3" "http://127.0.0.1:$1/v1/todos"; }
rss() { # STACK PID...: resident memory of each instance after the load
    local stack=$1 pid kb=()
    shift
    for pid in "$@"; do kb+=("$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")"); done
    printf '{"stack":"%s","rss_kb":[%s]}\n' "$stack" "$(join "${kb[@]}")" >> "$RESULTS"
}
node_pids() { "$PM2" jlist | python3 -c 'import json,sys; print(" ".join(str(p["pid"]) for p in json.load(sys.stdin)))'; }

TODO='{"title":"benchmark"}'
# todo_counters: the SQLite commits and the writes they carried, summed over our instances.
todo_counters() {
    local port
    for port in "${OURS[@]}"; do curl -fs "http://127.0.0.1:$port/metrics"; done |
        awk '/^app_todo_commits_total/ {c += $2} /^app_todo_committed_writes_total/ {w += $2} END {printf "%d %d", c, w}'
}
say "load: ${DURATION}s per run, wrk -t$THREADS -c$CONNECTIONS, through nginx"
# Warm-up, not recorded: first connections, JIT, page faults.
for port in "$PROXY_OURS" "$PROXY_NODE" "$PROXY_FLOOR"; do
    timeout 20 wrk -t1 -c8 -d1s "http://127.0.0.1:$port/info" >/dev/null
done
# Each scenario ROUNDS times, the stacks taking turns, and the best round kept: on a shared
# machine a run that met another process's burst is the one to discard, for either stack.
todo_present() { local code; code=$(status_of "$1" POST "$TODO"); [ "$code" = 201 ] || [ "$code" = 200 ]; }
for round in $(seq "$ROUNDS"); do
    echo "   round $round of $ROUNDS" >&2
    run nginx "return 200 (floor)" "$PROXY_FLOOR" /
    for scenario in "/info" "/api/randoms?cant=1000" "/api/randoms?cant=100000" "POST /v1/todos"; do
        for stack in ours node; do
            port=$PROXY_OURS
            [ "$stack" = node ] && port=$PROXY_NODE
            if [ "$scenario" != "POST /v1/todos" ]; then
                run "$stack" "$scenario" "$port" "$scenario"
            elif todo_present "$port"; then
                if [ "$stack" = ours ]; then read -r commits_before writes_before <<<"$(todo_counters)"; fi
                run "$stack" "$scenario" "$port" /v1/todos POST "$TODO"
                if [ "$stack" = ours ]; then
                    read -r commits_after writes_after <<<"$(todo_counters)"
                    printf '{"stack":"ours","commits":%d,"writes":%d,"seconds":%d}\n' \
                        $((commits_after - commits_before)) $((writes_after - writes_before)) "$DURATION" >> "$RESULTS"
                fi
            elif [ "$round" = 1 ]; then
                printf '{"stack":"%s","scenario":"POST /v1/todos","absent":"route not present (POST answered %s)"}\n' \
                    "$stack" "$(status_of "$port" POST "$TODO")" >> "$RESULTS"
                echo "   $stack POST /v1/todos: route not present" >&2
            fi
        done
    done
done
while read -r line; do
    if [ -n "$line" ]; then printf '{"randoms_bench":"%s"}\n' "$line" >> "$RESULTS"; fi
done <<<"$RANDOMS_BENCH"
if [ -s "$COLD_START" ]; then
    printf '{"cold_start":%s}\n' "$(cat "$COLD_START")" >> "$RESULTS"
fi
rss ours "${our_pids[@]}"
# shellcheck disable=SC2046  # one pid per word
rss node $(node_pids)

# reload STACK WHERE PORT CMD...: a bounded wrk on /info while CMD reloads; wrk's failures and
# the upstream errors nginx logged (and hid from the client by retrying another instance).
reload() {
    local stack=$1 where=$2 port=$3 out upstream_errors
    shift 3
    : > "$WORK/nginx-error.log"
    WRK_METHOD=GET timeout 40 wrk -t1 -c16 -d8s --timeout 10s -s bench/wrk.lua "http://127.0.0.1:$port/info" \
        > "$WORK/reload.out" &
    local wrk_pid=$!
    sleep 1.5
    "$@" >> "$WORK/reload.log" 2>&1
    wait "$wrk_pid"
    out=$(sed -n 's/^WRK_JSON //p' "$WORK/reload.out")
    upstream_errors=$(grep -c upstream "$WORK/nginx-error.log" || true)
    printf '{"stack":"%s","reload":"%s","wrk":%s,"upstream_errors":%s}\n' "$stack" "$where" "$out" "$upstream_errors" >> "$RESULTS"
    echo "   $stack reload $where: $out" >&2
}
hup_each() { local pid; for pid in "$@"; do kill -HUP "$pid"; sleep 1; done; }
hup_twice() { kill -HUP "$1"; sleep 2; kill -HUP "$1"; }
pm2_reload_twice() { "$PM2" reload "$1"; sleep 2; "$PM2" reload "$1"; }
say "live reload under load (wrk -c16, 8s on /info)"
reload ours "every instance, through nginx" "$PROXY_OURS" hup_each "${our_pids[@]}"
reload node "every instance, through nginx" "$PROXY_NODE" "$PM2" reload all
reload ours "one instance, direct, twice" "${OURS[0]}" hup_twice "${our_pids[0]}"
reload node "one instance, direct, twice" "${NODE[0]}" pm2_reload_twice "node-${NODE[0]}"

say "report"
machine=$(
    printf 'CPU: %s, %s cores available; memory %s; Linux %s\n' \
        "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" "$(nproc)" \
        "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)" "$(uname -r)"
    printf '%s; %s; node %s; pm2 %s; %s\n' "$(nginx -v 2>&1 | sed 's/^nginx version: //')" \
        "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)" "$(node -v)" "$("$PM2" -v 2>/dev/null | tail -1)" "$(rustc --version)"
    printf 'load average before the run: %s\n' "$LOAD_BEFORE"
)
python3 bench/report.py "$RESULTS" "$OUT" "$machine" \
    "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s through nginx (keepalive 32 to each upstream), best of $ROUNDS rounds; reloads: wrk -t1 -c16 -d8s on /info"
