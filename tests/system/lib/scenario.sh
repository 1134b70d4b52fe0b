#!/usr/bin/env bash
# Runs one scenario file in a fresh shell with the helper libraries (called by run.sh, which
# owns the clean-up trap: containers and namespaces are recorded under $WORK).
set -eEuo pipefail
trap 'echo "FAIL [${SCENARIO:-?}]: exit $? at ${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND" >&2' ERR
# shellcheck source=setup.sh
. "$HERE/lib/setup.sh"
harness_libs
# A failing scenario stops its background loads (they poll a stop file) before returning.
stop_loads() {
    local f
    for f in "$WORK"/out/*.pid; do
        [ -e "$f" ] || continue
        touch "${f%.pid}.stop"
        wait "$(cat "$f")" 2>/dev/null || true
        rm -f "$f"
    done
}
trap stop_loads EXIT
SCENARIO_FILE=$(basename "$1" .sh)
SCENARIO=${SCENARIO_FILE#[0-9][0-9]-}
# shellcheck disable=SC1090
. "$1"
