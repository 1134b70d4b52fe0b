#!/usr/bin/env bash
# What the NixOS module generates, booted on a real systemd (Debian's, in systemd-nspawn, with the
# system tests' harness of tests/system/lib): the VM tests cannot run here, this checks the
# systemd half of their claims. Needs root; about 5 s once the system tests' root filesystem and
# the release binary exist.
#
#   tests/nix/nspawn-layout.sh
#
# Layout (tests/nix/nspawn-layout.nix, from nixos/lib.nix): template + drop-ins, NixOS-style
# dangling wants symlinks, /etc/app/PORT.env. Checks: lazy and eager instances come up, the
# socket drop-in moves the listener to 0.0.0.0, the environment file arrives byte-exact, and a
# switch (new env file and drop-in, daemon-reload, one-step restart as with stopIfChanged =
# false) under a direct curl loop loses no request and never stops the socket.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$REPO/tests/system
[ "$(id -u)" = 0 ] || { echo "nspawn-layout.sh: needs root" >&2; exit 1; }
if [ -z "${APP_BIN:-}" ]; then
    (cd "$REPO" && cargo build --release --quiet)
    APP_BIN=$REPO/target/release/app
fi
APP_BIN=$(readlink -f "$APP_BIN")
ROOTFS=$("$HERE/rootfs.sh")
WORK=$(mktemp -d /var/tmp/app-nspawn-layout.XXXXXX)
mount -t tmpfs -o mode=0700 app-nspawn-layout "$WORK"
mkdir -p "$WORK/ct" "$WORK/out"
NSPAWN_TMPFS=
if ! mountpoint -q /run/systemd/nspawn 2>/dev/null; then
    mkdir -p /run/systemd/nspawn
    mount -t tmpfs nspawn /run/systemd/nspawn
    NSPAWN_TMPFS=1
fi
export REPO HERE WORK ROOTFS APP_BIN
# shellcheck source=../system/lib/common.sh
. "$HERE/lib/common.sh"
# shellcheck source=../system/lib/container.sh
. "$HERE/lib/container.sh"
# shellcheck source=../system/lib/app.sh
. "$HERE/lib/app.sh"
SCENARIO=nixos-layout
cleanup() {
    set +e
    ct_cleanup_all
    umount "$WORK" && rmdir "$WORK"
    [ -n "$NSPAWN_TMPFS" ] && umount /run/systemd/nspawn
}
trap cleanup EXIT

# layout WORKERS: write the generation with 8082 in cluster mode with WORKERS workers.
layout() {
    nix-instantiate --eval --strict --json "$REPO/tests/nix/nspawn-layout.nix" --arg workers "$1" >"$WORK/gen.json"
    python3 - "$WORK/gen.json" "$(ct_path n)/etc" <<'PY'
import json, os, sys
gen, etc = json.load(open(sys.argv[1])), sys.argv[2]
for path, text in gen["files"].items():
    os.makedirs(os.path.dirname(f"{etc}/{path}"), exist_ok=True)
    with open(f"{etc}/{path}", "w") as f:
        f.write(text)
for link in gen["links"]:
    path = f"{etc}/systemd/system/{link}"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.islink(path):
        os.symlink("../" + os.path.basename(link), path)
PY
}
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

ct_prepare n app-layout-b # no port given: no wants symlinks of the plain (non-NixOS) kind
layout 2
ct_boot n
note "booted: $(ct_exec n systemctl is-system-running)"

for port in 8082 8083; do
    is_active n app@$port.socket || fail "app@$port.socket is not active"
    ct_exec n ss -Htln "sport = :$port" | grep -q "0.0.0.0:$port" || fail "app@$port.socket does not listen on 0.0.0.0"
done
is_active n app@8082.service && fail "app@8082.service runs before any connection (should be lazy)"
is_active n app@8083.service || fail "app@8083.service (lazy = false) did not start with app.target"
[ "$(prop n app@8082.service FragmentPath)" = /etc/systemd/system/app@.service ] || fail "not the packaged template"
prop n app@8082.service DropInPaths | grep -q 'app@8082.service.d/overrides.conf' || fail "drop-in not loaded"
note "lazy 8082, eager 8083, both on 0.0.0.0, template + drop-in"

info=$(get n http://127.0.0.1:8082/info)
[ "$(field mode <<<"$info")/$(field workers <<<"$info")/$(field instance <<<"$info")" = cluster/2/8082 ] ||
    fail "8082 /info: $info"
want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["quoting"])' "$WORK/gen.json")
got=$(ct_exec n cat "/proc/$(main_pid n app@8083.service)/environ" | tr '\0' '\n' | sed -n 's/^APP_TEST_QUOTING=//p')
[ "$got" = "$want" ] || fail "environment file quoting: got [$got], want [$want]"
note "8082 in cluster mode with 2 workers from /etc/app/8082.env; quoting exact: [$got]"

# A switch: new generation, daemon-reload, then what switch-to-configuration does for a changed
# unit with X-StopIfChanged=false: one `systemctl restart`.
socket_since=$(prop n app@8082.socket ActiveEnterTimestampMonotonic)
run_8083=$(prop n app@8083.service InvocationID)
pid_8082=$(main_pid n app@8082.service)
trigger_before=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["trigger8082"])' "$WORK/gen.json")
ct_net n bash -c '
    ok=0 failed=0
    while [ ! -e "$1/stop" ]; do
        if curl -sf --max-time 20 -o /dev/null "http://127.0.0.1:8082/api/randoms?cant=5"; then ok=$((ok + 1)); else failed=$((failed + 1)); fi
        echo "$ok" >"$1/ok"
    done
    echo "$ok $failed" >"$1/result"' _ "$WORK/out" &
loop=$!
wait_until 20 "50 requests" bash -c "[ \"\$(cat $WORK/out/ok 2>/dev/null)\" -ge 50 ]"
layout 3
trigger_after=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["trigger8082"])' "$WORK/gen.json")
[ "$trigger_before" != "$trigger_after" ] || fail "the restart trigger of app@8082 did not change with its settings"
ct_exec n systemctl daemon-reload
ct_exec n systemctl restart app@8082.service
n=$(cat "$WORK/out/ok")
wait_until 20 "50 more requests" bash -c "[ \"\$(cat $WORK/out/ok)\" -ge $((n + 50)) ]"
touch "$WORK/out/stop"
wait "$loop"
read -r ok failed <"$WORK/out/result"
note "direct requests during the switch: $ok ok, $failed failed"
[ "$failed" = 0 ] || fail "$failed requests failed during the restart"
[ "$(prop n app@8082.socket ActiveEnterTimestampMonotonic)" = "$socket_since" ] || fail "app@8082.socket was restarted"
[ "$(main_pid n app@8082.service)" != "$pid_8082" ] || fail "app@8082 was not restarted"
[ "$(prop n app@8083.service InvocationID)" = "$run_8083" ] || fail "app@8083 was restarted"
[ "$(get n http://127.0.0.1:8082/info | field workers)" = 3 ] || fail "8082 did not pick up workers = 3"
note "socket kept, 8082 restarted with 3 workers, 8083 untouched"
echo "nspawn-layout: ok"
