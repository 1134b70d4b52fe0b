#!/usr/bin/env bash
# Where a cold start goes: boots the system suite's container (a real systemd, the repository's
# units, the release binary), then measures connection -> first byte of /info on an inactive
# socket-activated instance (app@8083, what tests/system/scenarios/10-lazy.sh reports), ROUNDS
# times for each variant of the unit, taking turns: as shipped, with one hardening option (or a
# group of them) switched off by a drop-in, with only one of the mount-namespace options on
# (with-X), and the binary alone under systemd-socket-activate (no service start, no sandbox). Each start finds no state directory (as the first start
# after installation) unless KEEP_STATE=1. A measurement, not a test: nothing is asserted.
#
#   sudo bench/cold-start.sh                 # APP_BIN=target/release/app, ROUNDS=7
#   sudo ROUNDS=15 bench/cold-start.sh base no-sandbox
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../tests/system/lib/setup.sh
. "$REPO/tests/system/lib/setup.sh"
harness_setup app-cold-start
trap harness_cleanup EXIT
trap 'exit 130' INT TERM
ROUNDS=${ROUNDS:-7}
PORT=8083
ALONE=9083

# Variants: a name and the [Service] lines of its drop-in ("" for the unit as shipped).
# The options that make systemd build a mount namespace for the service (DynamicUser= implies
# some of them, so it goes too: the service then runs as root), and the seccomp filters.
MOUNT_NS="DynamicUser=no
User=
Group=
ProtectSystem=no
ProtectHome=no
PrivateTmp=no
PrivateDevices=no
InaccessiblePaths=
PrivateIPC=no
ProtectHostname=no
ProtectClock=no
ProtectKernelTunables=no
ProtectKernelModules=no
ProtectKernelLogs=no
ProtectControlGroups=no
ProtectProc=default
ProcSubset=all"
SYSCALLS="SystemCallFilter=
SystemCallArchitectures="
SECCOMP_OTHERS="RestrictAddressFamilies=
RestrictNamespaces=no
MemoryDenyWriteExecute=no
LockPersonality=no
RestrictRealtime=no"
declare -A VARIANT=(
    [base]=""
    [no-sandbox]="$MOUNT_NS
$SYSCALLS
$SECCOMP_OTHERS
PrivateUsers=no
NoNewPrivileges=no
RestrictSUIDSGID=no
RemoveIPC=no
DevicePolicy=auto
KeyringMode=shared
CapabilityBoundingSet=~"
    [DynamicUser]="DynamicUser=no
User=
Group=
RemoveIPC=no"
    [PrivateUsers]="PrivateUsers=no"
    [mount-namespace]=$MOUNT_NS
    [PrivateDevices]="PrivateDevices=no
DevicePolicy=auto"
    [ProtectProc]="ProtectProc=default
ProcSubset=all"
    [seccomp]="$SYSCALLS
$SECCOMP_OTHERS"
    [SystemCallFilter]=$SYSCALLS
    [seccomp-others]=$SECCOMP_OTHERS
)
# with-X: no mount-namespace option but X (one of those above), to see what each costs alone.
for option in ProtectSystem ProtectHome PrivateTmp PrivateDevices InaccessiblePaths PrivateIPC \
    ProtectHostname ProtectClock ProtectKernelTunables ProtectKernelModules ProtectKernelLogs \
    ProtectControlGroups ProtectProc ProcSubset; do
    VARIANT[with-$option]=$(grep -v "^$option=" <<<"${VARIANT[mount-namespace]}")
done
ORDER=(base no-sandbox DynamicUser PrivateUsers mount-namespace PrivateDevices ProtectProc seccomp
    SystemCallFilter seccomp-others binary-alone)
[ $# -gt 0 ] && ORDER=("$@")

ct_prepare cold app-layout-b "$PORT"
ct_boot cold
dropin=/etc/systemd/system/app@$PORT.service.d

# one_start: stop the instance (its socket stays), then time the first request. Prints ms.
one_start() {
    ct_exec cold systemctl stop "app@$PORT.service" 2>/dev/null
    [ -n "${KEEP_STATE:-}" ] || ct_exec cold rm -rf /var/lib/private/app /var/lib/app
    [ "$(ct_exec cold systemctl is-active "app@$PORT.service")" != active ] || { echo "still active" >&2; return 1; }
    ct_net cold curl -fsS --max-time 10 -o /dev/null -w '%{time_connect} %{time_starttransfer}\n' \
        "http://127.0.0.1:$PORT/info" | awk '{ printf "%.1f\n", ($2 - $1) * 1000 }'
}

# binary_start: the same request to the binary started by systemd-socket-activate on the first
# connection (no unit, no sandbox, no service manager in the way), as root in a fresh data dir.
binary_start() {
    ct_exec cold rm -rf /var/tmp/cold-data
    ct_exec cold sh -c "APP_DATA_DIR=/var/tmp/cold-data setsid systemd-socket-activate -l 127.0.0.1:$ALONE \
        /usr/local/bin/app >/var/tmp/cold.log 2>&1 & echo \$! > /var/tmp/cold.pid"
    for _ in $(seq 100); do ct_net cold ss -Hltn | grep -q ":$ALONE " && break; sleep 0.05; done
    ct_net cold curl -fsS --max-time 10 -o /dev/null -w '%{time_connect} %{time_starttransfer}\n' \
        "http://127.0.0.1:$ALONE/info" | awk '{ printf "%.1f\n", ($2 - $1) * 1000 }'
    ct_exec cold sh -c 'kill -TERM "$(cat /var/tmp/cold.pid)"; while kill -0 "$(cat /var/tmp/cold.pid)" 2>/dev/null; do sleep 0.05; done'
}

# Round-robin over the variants, so that a burst of load elsewhere on the machine falls on all of
# them alike rather than on one.
declare -A TIMES
for _ in $(seq "$ROUNDS"); do
    for name in "${ORDER[@]}"; do
        ct_exec cold rm -rf "$dropin"
        if [ "$name" = binary-alone ]; then
            TIMES[$name]+=" $(binary_start)"
            continue
        fi
        ct_exec cold mkdir -p "$dropin"
        printf '[Service]\n%s\n' "${VARIANT[$name]}" | ct_exec cold tee "$dropin/cold.conf" >/dev/null
        ct_exec cold systemctl daemon-reload
        TIMES[$name]+=" $(one_start)"
    done
done
printf '%-24s %8s %8s %8s   %s\n' variant min median max "all (ms)"
for name in "${ORDER[@]}"; do
    tr ' ' '\n' <<<"${TIMES[$name]}" | sed '/^$/d' | sort -n | awk -v n="$name" '{ a[NR] = $1; s = s " " $1 }
        END { printf "%-24s %8.1f %8.1f %8.1f  %s\n", n, a[1], a[int((NR + 1) / 2)], a[NR], s }'
done
