# shellcheck shell=bash
# Sourced: small helpers shared by the runner and the scenarios.

# elapsed T0: seconds since T0 (an $EPOCHREALTIME value).
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

fail() { echo "FAIL [${SCENARIO:-?}]: $*" >&2; exit 1; }
note() { echo "  [${SCENARIO:-?}] $*"; }

# report SENT FAILED: the scenario's line in the final table.
report() {
    printf '%-28s %13s %8s\n' "$SCENARIO" "$1" "$2" > "$WORK/out/${SCENARIO_FILE:-$SCENARIO}.result"
    note "requests sent=$1 failed=$2"
}

# wait_until SECONDS DESCRIPTION CMD...: poll CMD (every 0.1 s) until it succeeds, or fail.
wait_until() {
    local limit=$1 what=$2 t0=$EPOCHREALTIME
    shift 2
    until "$@" >/dev/null 2>&1; do
        awk -v a="$t0" -v b="$EPOCHREALTIME" -v l="$limit" 'BEGIN { exit !(b - a > l) }' &&
            fail "timed out after ${limit}s waiting for: $what"
        sleep 0.1
    done
}

# oneline TEXT: TEXT with its lines joined by spaces (for notes).
oneline() { tr '\n' ' ' <<<"$1" | sed 's/ *$//'; }
