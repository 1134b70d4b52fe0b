#!/usr/bin/env bash
# The shipped monitoring files, checked by Prometheus' own tool (promtool, from Debian's
# prometheus package) against the real binary:
#   - monitoring/prometheus.yml is a valid configuration (with its rule file);
#   - monitoring/alerts.yml is valid, and each alert fires on the series it is for and on no
#     other (promtool test rules monitoring/alerts-test.yml);
#   - a real /metrics page (a cluster instance that has served) passes `promtool check metrics`;
#   - every metric the alerts and the Grafana dashboard query is one that page exports.
#   tests/monitoring.sh [APP_BINARY]     (default: target/release/app)
set -euo pipefail
cd "$(dirname "$0")/.."
trap 'echo "FAIL: exit $? at line $LINENO: $BASH_COMMAND" >&2' ERR
source tests/lib/deps.sh
need_packages curl jq python3

# promtool: from the package, unpacked into a cache rather than installed, as installing
# prometheus would start a Prometheus server on the test machine.
promtool() {
    local cache=${APP_TEST_CACHE:-/var/cache/app-tests}/prometheus-deb
    if [ ! -x "$cache/usr/bin/promtool" ]; then
        mkdir -p "$cache.tmp"
        (cd "$cache.tmp" && { apt-get download prometheus 2>/dev/null ||
            { DEBIAN_FRONTEND=noninteractive apt-get update -qq && apt-get download prometheus; }; } &&
            dpkg-deb -x prometheus_*.deb . && rm prometheus_*.deb)
        rm -rf "$cache" && mv "$cache.tmp" "$cache"
    fi
    "$cache/usr/bin/promtool" "$@"
}

promtool check config monitoring/prometheus.yml
promtool check rules monitoring/alerts.yml
(cd monitoring && promtool test rules alerts-test.yml)
jq -e '.panels | length > 0' monitoring/grafana-dashboard.json >/dev/null

# A cluster instance that has served a little, socket-activated on a free port: started as
# systemd starts it, so its READY=1 (every worker ready) says when it serves.
bin=${1:-target/release/app}
dir=$(mktemp -d)
exec {launcher}< <(exec tests/lib/activate.py "$bin" --mode cluster --workers 2 --data-dir "$dir" 2> "$dir/log")
launched=$!
# The launcher ends once the app has: then its files can go.
trap 'kill "${app:-}" 2>/dev/null; wait "$launched" 2>/dev/null; rm -rf "$dir"' EXIT
read -r app port <&"$launcher" || { cat "$dir/log" >&2; echo "the app did not start" >&2; exit 1; }
curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz"
curl -fsS -o /dev/null "http://127.0.0.1:$port/api/randoms?cant=5"
curl -sS -o /dev/null "http://127.0.0.1:$port/nope"
curl -fsS "http://127.0.0.1:$port/metrics" > "$dir/metrics"
promtool check metrics < "$dir/metrics"

# Every name the rules and the dashboard query: exported (app_memory_limit_bytes only where the
# cgroup has a MemoryMax=, which this test's process has not).
exported=$(awk '$1 == "#" && $2 == "TYPE" { print $3 }' "$dir/metrics"; echo app_memory_limit_bytes)
queried=$({ grep -v '^ *#' monitoring/alerts.yml; jq -r '.panels[].targets[].expr' monitoring/grafana-dashboard.json; } |
    grep -oE '\b(app|process)_[a-z_]+' | sed -E 's/_(bucket|count|sum)$//' | sort -u)
missing=$(comm -23 <(echo "$queried") <(echo "$exported" | sort -u))
[ -z "$missing" ] || { echo "queried but not exported: $missing" >&2; exit 1; }
echo "monitoring: config, rules, rule tests, a live page and $(wc -l <<<"$queried") queried metrics ok"
