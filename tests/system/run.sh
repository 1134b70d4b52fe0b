#!/usr/bin/env bash
# System tests: a real systemd (PID 1 in systemd-nspawn containers) running the repository's
# own units, nginx configs and release binary, checked with real traffic.
#
#   sudo tests/system/run.sh                 # every scenario
#   sudo tests/system/run.sh lazy watchdog   # only scenarios whose file name contains a word
#
# Environment: APP_BIN (default: target/release/app, built here with cargo), APP_TEST_CACHE
# (root filesystem cache, default /var/cache/app-tests), KEEP_GOING=1 (run every scenario
# even after a failure), APP_COLD_START_OUT (where the lazy scenario's cold-start figure is kept,
# default /var/tmp/app-cold-start.json). Needs root; installs its Debian packages when missing.
set -euo pipefail
START=$EPOCHREALTIME

REPO=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=lib/setup.sh
. "$REPO/tests/system/lib/setup.sh"
harness_setup app-system-tests
trap harness_cleanup EXIT
trap 'exit 130' INT TERM

failed=()
passed=0
for scenario in "$HERE"/scenarios/*.sh; do
    name=$(basename "$scenario" .sh)
    if [ $# -gt 0 ]; then
        match=
        for word in "$@"; do [[ $name == *"$word"* ]] && match=1; done
        [ -n "$match" ] || continue
    fi
    echo "=== $name"
    t0=$EPOCHREALTIME
    if bash "$HERE/lib/scenario.sh" "$scenario"; then
        verdict=ok
        passed=$((passed + 1))
    else
        verdict=FAILED
        failed+=("$name")
    fi
    printf '=== %s: %s (%.1f s)\n' "$name" "$verdict" "$(elapsed "$t0")"
    ct_cleanup_all
    netns_cleanup_all
    if [ "$verdict" = FAILED ] && [ -z "${KEEP_GOING:-}" ]; then break; fi
done

echo
echo "scenario                     requests sent   failed"
cat "$WORK"/out/*.result 2>/dev/null || true
[ -s "$WORK/out/exposure" ] && echo "systemd-analyze security app@8082.service: exposure $(cat "$WORK/out/exposure")"
# The cold-start figure, also kept for bench/run.sh (which reports it beside its target).
if [ -s "$WORK/out/cold-start.json" ]; then
    echo "cold start (lazy): $(cat "$WORK/out/cold-start.json")"
    cp "$WORK/out/cold-start.json" "${APP_COLD_START_OUT:-/var/tmp/app-cold-start.json}"
fi
printf 'system suite: total %.1f s\n' "$(elapsed "$START")"
echo "system: $passed passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ] || { echo "failed: ${failed[*]}"; exit 1; }
