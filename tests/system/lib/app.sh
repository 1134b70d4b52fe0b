# shellcheck shell=bash
# Sourced: helpers about the app and nginx inside a container.

# prop CT UNIT PROPERTY: one systemd property's value.
prop() { ct_exec "$1" systemctl show -P "$3" "$2"; }

# main_pid CT UNIT
main_pid() { prop "$1" "$2" MainPID; }

# cgroup_procs CT UNIT: the PIDs in the unit's cgroup (as seen inside the container).
cgroup_procs() {
    local cg
    cg=$(prop "$1" "$2" ControlGroup)
    ct_exec "$1" sh -c "cat /sys/fs/cgroup/unified$cg/cgroup.procs 2>/dev/null ||
                        cat /sys/fs/cgroup$cg/cgroup.procs 2>/dev/null ||
                        cat /sys/fs/cgroup/systemd$cg/cgroup.procs"
}

# is_active CT UNIT
is_active() { [ "$(ct_exec "$1" systemctl is-active "$2")" = active ]; }

# get CT URL: body of a GET from inside the container's network (fails on non-2xx).
get() { ct_net "$1" curl -fsS --max-time 10 "$2"; }

# json FIELD: read one field of a JSON object on stdin.
json() { python3 -c 'import json, sys; v = json.load(sys.stdin)[sys.argv[1]]; print(v)' "$1"; }

# load_start CT TAG LOAD_ARGS...: start tests/system/load.py in the background inside the
# container's network; the result goes to $WORK/out/TAG.json. Stop it early with load_stop.
load_start() {
    local ct=$1 tag=$2
    shift 2
    rm -f "$WORK/out/$tag.stop"
    ct_net "$ct" python3 "$HERE/load.py" --stop-file "$WORK/out/$tag.stop" "$@" \
        > "$WORK/out/$tag.json" &
    echo $! > "$WORK/out/$tag.pid"
}

load_stop() { touch "$WORK/out/$1.stop"; }

# shellcheck disable=SC2034  # SENT and FAILED are read by the scenarios
# load_wait TAG: wait for the load to end, print its summary, set SENT and FAILED
# (FAILED = non-2xx answers + connection errors).
load_wait() {
    local tag=$1 out=$WORK/out/$1.json
    wait "$(cat "$WORK/out/$tag.pid")" || fail "load tool failed"
    rm -f "$WORK/out/$tag.pid"
    SENT=$(json sent < "$out")
    FAILED=$(( $(json non2xx < "$out") + $(json errors < "$out") ))
    note "load $tag: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d.pop("tally", None); print(json.dumps(d))' "$out")"
}

# upstream_counts CT PATH_PREFIX: "count upstream" lines from nginx's access log, one per
# instance that finally answered requests under PATH_PREFIX (the last address of each line).
upstream_counts() {
    ct_exec "$1" cat /var/log/nginx/access.log |
        awk -v p="\"GET $2" 'index($0, p) { s = $0; sub(/.*upstream=/, "", s); sub(/ upstream_status=.*/, "", s)
                                             n = split(s, a, ", "); print a[n] }' | sort | uniq -c
}

# served CT: how many requests nginx has logged so far.
served() { ct_exec "$1" sh -c 'wc -l < /var/log/nginx/access.log'; }

# wait_served CT N: wait (bounded) until nginx has logged N more requests: traffic flows.
wait_served() { wait_until 20 "$2 more requests through nginx" served_at_least "$1" $(( $(served "$1") + $2 )); }
served_at_least() { [ "$(served "$1")" -ge "$2" ]; }

# replaced_all CT UNIT PIDS: of PIDS (sorted), only the main process is still in the unit.
replaced_all() {
    [ "$(comm -12 <(echo "$3") <(cgroup_procs "$1" "$2" | sort) | wc -l)" = 1 ]
}

# runs_new_binary CT UNIT: the main process runs the current /usr/local/bin/app (not a
# replaced, deleted file).
runs_new_binary() {
    local exe
    exe=$(ct_exec "$1" readlink "/proc/$(main_pid "$1" "$2")/exe")
    [ "$exe" = /usr/local/bin/app ] && is_active "$1" "$2"
}

# start_all CT PORT...: wake instances with one direct request each (they start lazily).
start_all() {
    local port
    for port in "${@:2}"; do get "$1" "http://127.0.0.1:$port/healthz" >/dev/null || fail "instance $port does not answer"; done
}

# restarted CT UNIT OLD_PID: the unit is active again under another main PID.
restarted() {
    local pid
    pid=$(main_pid "$1" "$2")
    [ "$pid" != 0 ] && [ "$pid" != "$3" ] && is_active "$1" "$2"
}

# worker_replaced CT UNIT DEAD_PID COUNT: DEAD_PID is gone and the unit has COUNT processes.
worker_replaced() {
    local procs
    procs=$(cgroup_procs "$1" "$2")
    ! grep -qx "$3" <<<"$procs" && [ "$(wc -l <<<"$procs")" = "$4" ]
}

# journal_with CT UNIT FIELD VALUE: the messages of UNIT's journal entries whose structured
# field FIELD (as the app logs it, e.g. F_PID) equals VALUE.
journal_with() {
    ct_exec "$1" journalctl -u "$2" --no-pager -o json |
        python3 -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    if str(e.get(sys.argv[1])) == sys.argv[2]:
        print(e.get("MESSAGE"))' "$3" "$4"
}

# journal_wait CT UNIT SECONDS PATTERN: waits until a message of UNIT's journal (from its start)
# matches the grep PATTERN, following the journal as it is written rather than reading it again
# and again; false if none did within SECONDS. (The follower, left behind by grep, ends at its next
# line or at SECONDS; its exit status means nothing.)
journal_wait() {
    grep -m1 -q -- "$4" < <(ct_exec "$1" timeout "$3" journalctl -u "$2" -f -n all --no-pager -o cat || true)
}

# no_failures CT WHAT: fail (showing nginx's view of the failed requests) unless the last
# load_wait counted no failed request.
no_failures() {
    [ "$FAILED" = 0 ] && return 0
    echo "  nginx access log, failed requests (first 10):" >&2
    ct_exec "$1" awk '$0 !~ /" 2[0-9][0-9] /' /var/log/nginx/access.log | head -n 10 >&2 || true
    echo "  nginx error log (last 10):" >&2
    ct_exec "$1" tail -n 10 /var/log/nginx/error.log >&2 || true
    fail "$FAILED of $SENT requests $2 failed"
}

# backend_prepare NAME ADDR PROXY_ADDR PORT...: a backend host behind a balancer on another host
# (ct_prepare with layout b and no nginx of its own): the drop-ins docs/operations.md describes
# make its sockets listen on ADDR and trust PROXY_ADDR for X-Forwarded-For. Boot it with
# ct_boot NAME NETNS.
backend_prepare() {
    local name=$1 addr=$2 proxy=$3 root
    shift 3
    ct_prepare "$name" app-layout-b "$@"
    root=$(ct_path "$name")
    mkdir -p "$root/etc/systemd/system/app@.socket.d" "$root/etc/systemd/system/app@.service.d"
    printf '[Socket]\nListenStream=\nListenStream=%s:%%i\n' "$addr" \
        > "$root/etc/systemd/system/app@.socket.d/listen.conf"
    printf '[Service]\nEnvironment=APP_TRUSTED_PROXIES=%s/32\n' "$proxy" \
        > "$root/etc/systemd/system/app@.service.d/proxy.conf"
    rm -f "$root/etc/systemd/system/multi-user.target.wants/nginx.service"
}

# balance_to CT ADDR...: the prepared balancer's nginx (layout b) sends each instance address
# 127.0.0.1:PORT to the same port on every ADDR (max_fails=0 kept: a 503 from a busy instance
# must not take it out of the rotation; a halted host refuses at once).
balance_to() {
    local ct=$1 site servers addr
    shift
    servers=
    for addr in "$@"; do servers+="server $addr:\\1\\2; "; done
    site=$(readlink -f "$(ct_path "$ct")/etc/nginx/sites-enabled/app")
    sed -i -E "s/server 127\.0\.0\.1:(808[0-5])(.*);/${servers% }/" "$site"
    grep -q "^ *server 127\\." "$site" && fail "a local address is left in the balancer's config"
    return 0
}

# redis_enable CT ADDR...: the prepared container runs Debian's redis-server.service, listening
# on ADDR... (addresses of its network namespace), with every write fsynced before its answer.
redis_enable() {
    local root
    root=$(ct_path "$1")
    shift
    # Later lines override the packaged ones. No password: only the test's namespaces reach it.
    printf 'bind %s\nprotected-mode no\nappendonly yes\nappendfsync always\n' "$*" >> "$root/etc/redis/redis.conf"
    ln -sf /lib/systemd/system/redis-server.service \
        "$root/etc/systemd/system/multi-user.target.wants/redis-server.service"
}

# reload_done CT: app-reload.service has run and is done.
reload_done() { [ "$(prop "$1" app-reload.service ActiveState)" = inactive ] && [ "$(prop "$1" app-reload.service ExecMainStartTimestampMonotonic)" != 0 ]; }

# run_doc CT FILE NAME [DIR]: the shell blocks of FILE (README.md, docs/operations.md) marked
# `<!-- run: NAME -->`, run inside the container as written, by /bin/sh (dash on Debian, as the
# blocks say `sh`), stopping at the first failing command; in DIR (default /root).
run_doc() {
    local ct=$1 file=$2 name=$3 dir=${4:-/root} script
    script=$WORK/ct/$ct/merged/root/doc-$name.sh
    python3 "$HERE/docblock.py" "$REPO/$file" "$name" > "$script"
    note "$file, $name: $(grep -vc '^#' "$script") lines"
    ct_exec "$ct" sh -c "cd '$dir' && sh -ex /root/doc-$name.sh" 2>&1 | sed 's/^/    /' ||
        fail "$file: the block '$name' failed"
}

# replaced_some CT UNIT PIDS: at least one of PIDS (sorted, the unit's before) is gone and the
# unit has as many processes as before.
replaced_some() {
    local now
    now=$(cgroup_procs "$1" "$2" | sort)
    [ "$(comm -23 <(echo "$3") <(echo "$now") | wc -l)" -ge 1 ] && [ "$(wc -l <<<"$now")" = "$(wc -l <<<"$3")" ]
}
