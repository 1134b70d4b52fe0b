# shellcheck shell=bash disable=SC2154  # sourced by lib/scenario.sh
# The process limits of issue 10 on systemd 252, with the repository's unit:
# - `systemctl reload` returns once the new processes are ready (fork and cluster), and a
#   reload that fails (a new worker that never gets ready) is reported failed;
# - a cluster worker pushed over --worker-max-memory under load through nginx is replaced with
#   no failed request;
# - a bad setting (exit status 2) is not restarted; a crash loop backs off instead of hitting
#   the start limit; the soft descriptor limit fits --max-connections; OOMPolicy=continue.
ct_prepare pl app-layout-a 8080 8081 8082
root=$(ct_path pl)
printf 'APP_MODE=cluster\nAPP_WORKERS=2\nAPP_MAX_HEADER_BYTES=1048576\nAPP_HEADER_TIMEOUT=60s\nAPP_DRAIN_TIMEOUT=2s\n' \
    > "$root/etc/app/8081.env"
# 8082: a setting that cannot work; 8083: a store that cannot open (exit 1, a crash loop).
echo 'APP_WORKERS=two' > "$root/etc/app/8082.env"
echo 'APP_DATA_DIR=/proc/no-such-dir' > "$root/etc/app/8083.env"
ct_boot pl
start_all pl 8080 8081

# Descriptors and OOM policy, as systemd and the kernel see them.
soft=$(ct_exec pl awk '/^Max open files/ { print $4 }' "/proc/$(main_pid pl app@8080.service)/limits")
[ "$soft" -ge 1280 ] || fail "the soft descriptor limit of app@8080 is $soft, below 1024 connections + 256"
[ "$(prop pl app@8081.service OOMPolicy)" = continue ] || fail "OOMPolicy is $(prop pl app@8081.service OOMPolicy)"
note "app@8080: soft RLIMIT_NOFILE $soft; OOMPolicy=continue"

# systemctl reload returns when the reload is done. Fork mode: by then the main process runs
# the new binary and says it serves.
ct_exec pl sh -c 'install -m 0755 /opt/app/app /usr/local/bin/app.new && mv -f /usr/local/bin/app.new /usr/local/bin/app'
ct_exec pl systemctl reload app@8080.service
[ "$(ct_exec pl readlink "/proc/$(main_pid pl app@8080.service)/exe")" = /usr/local/bin/app ] ||
    fail "systemctl reload app@8080 returned before the process re-executed the new binary"
case "$(prop pl app@8080.service StatusText)" in serving*) ;; *) fail "app@8080 after reload: $(prop pl app@8080.service StatusText)" ;; esac
# Cluster: by then both slots have a new worker, ready.
before=$(cgroup_procs pl app@8081.service | sort)
ct_exec pl systemctl reload app@8081.service
new=$(comm -13 <(echo "$before") <(cgroup_procs pl app@8081.service | sort) | wc -l)
[ "$new" = 2 ] || fail "systemctl reload app@8081 returned with $new new workers"
case "$(prop pl app@8081.service StatusText)" in "2/2 workers ready"*) ;; *) fail "app@8081 after reload: $(prop pl app@8081.service StatusText)" ;; esac
note "systemctl reload returned with app@8080 on the new binary and 2 new ready workers in app@8081"

# A reload that fails: the new workers' program exits at once (only `app reload`, the unit's
# ExecReload=, still runs the real binary); the old workers serve on.
ct_exec pl sh -c 'cp /usr/local/bin/app /usr/local/bin/app.good &&
    printf "#!/bin/sh\n[ \"\$1\" = reload ] && exec /usr/local/bin/app.good \"\$@\"\nexit 1\n" > /usr/local/bin/app.bad &&
    chmod 0755 /usr/local/bin/app.bad && mv -f /usr/local/bin/app.bad /usr/local/bin/app'
before=$(cgroup_procs pl app@8081.service | sort)
if ct_exec pl systemctl reload app@8081.service 2>"$WORK/out/reload.err"; then
    fail "systemctl reload app@8081 succeeded although its new workers cannot start"
fi
ct_exec pl sh -c 'mv -f /usr/local/bin/app.good /usr/local/bin/app'
is_active pl app@8081.service || fail "app@8081 is not active after the failed reload"
[ "$(cgroup_procs pl app@8081.service | sort)" = "$before" ] || fail "the failed reload changed the workers"
get pl http://127.0.0.1:8081/healthz >/dev/null || fail "app@8081 does not answer after the failed reload"
note "a failed reload: $(oneline "$(cat "$WORK/out/reload.err")"); the old workers serve on"

# Memory: the limit a few MiB above what a worker uses now, then half-sent 512 KiB request
# heads sent straight to 8081 push a worker over it while GETs flow through nginx.
worker=$(cgroup_procs pl app@8081.service | grep -vx "$(main_pid pl app@8081.service)" | head -n1)
rss=$(( $(ct_exec pl awk '{ print $2 }' "/proc/$worker/statm") * 4096 ))
limit=$(( rss + 4 * 1024 * 1024 ))
echo "APP_WORKER_MAX_MEMORY=$limit" >> "$root/etc/app/8081.env"
ct_exec pl systemctl restart app@8081.service
start_all pl 8081
before=$(cgroup_procs pl app@8081.service | sort)
load_start pl memory --path '/api/randoms?cant=10' --path /info --duration 15 --concurrency 2 --max-requests 100000
wait_served pl 100
# The heads are held until this script says it is done (SIGTERM), 20 s at the most.
ct_net pl python3 -c '
import signal, socket
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
held = []
for _ in range(32):
    s = socket.create_connection(("127.0.0.1", 8081))
    s.sendall(b"GET /info HTTP/1.1\r\nx-filler: " + b"a" * 512 * 1024)
    held.append(s)
signal.sigtimedwait({signal.SIGTERM}, 20)
' &
heads=$!
journal_wait pl app@8081 20 'over --worker-max-memory' ||
    fail "no worker of app@8081 went over --worker-max-memory within 20s"
wait_until 20 "the worker over its limit has gone" replaced_some pl app@8081.service "$before"
kill "$heads" 2>/dev/null || true
wait "$heads" || true
wait_served pl 100
load_wait memory
no_failures pl "while a worker over its memory limit was replaced"
note "app@8081 (limit $limit bytes): $(ct_exec pl journalctl -u app@8081 --no-pager -o cat | grep -m1 'over --worker-max-memory')"
memory_sent=$SENT

# A bad setting exits 2 and is not restarted.
ct_exec pl systemctl start app@8082.service 2>/dev/null && fail "app@8082 started with APP_WORKERS=two"
[ "$(prop pl app@8082.service ExecMainStatus)" = 2 ] || fail "app@8082 exited with $(prop pl app@8082.service ExecMainStatus), not 2"
[ "$(prop pl app@8082.service NRestarts)" = 0 ] || fail "app@8082 was restarted $(prop pl app@8082.service NRestarts) times"
note "APP_WORKERS=two: exit status 2, not restarted: $(ct_exec pl journalctl -u app@8082 --no-pager -o cat | grep -m1 -- '--workers')"

# A crash loop backs off: the 5th restart begins after the 0.5+1+2+4 s the first four waited
# (at a constant 500 ms the unit hit the start limit within 6 s), and the unit has not failed.
t0=$EPOCHREALTIME
ct_exec pl systemctl start --no-block app@8083.service
journal_wait pl app@8083 40 'restart counter is at 5\.' || fail "app@8083 was not restarted 5 times within 40s"
took=$(elapsed "$t0")
[ "$(prop pl app@8083.service NRestarts)" -ge 5 ] || fail "app@8083: NRestarts $(prop pl app@8083.service NRestarts) after its 5th restart"
state=$(prop pl app@8083.service ActiveState)
[ "$state" != failed ] || fail "app@8083 failed (start limit hit?): $(prop pl app@8083.service Result)"
awk -v t="$took" 'BEGIN { exit !(t >= 7.5) }' || fail "5 restarts of app@8083 took only ${took}s: no back-off"
ct_exec pl journalctl -u app@8083 --no-pager -o cat | grep -q 'restart back-off' || fail "the journal of app@8083 says nothing of the back-off"
note "crash loop of app@8083: 5 restarts in ${took}s, state $state: $(ct_exec pl journalctl -u app@8083 --no-pager -o cat | grep 'restart back-off' | tail -n1)"
ct_exec pl systemctl stop app@8083.service
report "$memory_sent" 0
