# shellcheck shell=bash disable=SC2154  # sourced by lib/scenario.sh
# Operating the instances (issue 6): `app status` lists every app@PORT unit with systemd's own
# view of it; app-reload.path moves every running instance (fork and cluster) to a replaced
# binary under load through nginx (layout b) with no failed request; /metrics reads from
# loopback and counts what was served.
PORTS=(8080 8082 8083 8084 8085)
ct_prepare op app-layout-b "${PORTS[@]}"
root=$(ct_path op)
install -m 0644 "$REPO"/systemd/app-reload.path "$REPO"/systemd/app-reload.service "$root/etc/systemd/system/"
mkdir -p "$root/etc/systemd/system/paths.target.wants" "$root/etc/systemd/system/multi-user.target.wants"
ln -sf ../app-reload.path "$root/etc/systemd/system/paths.target.wants/app-reload.path"
ln -sf ../app.target "$root/etc/systemd/system/multi-user.target.wants/app.target"
printf 'APP_MODE=cluster\nAPP_WORKERS=2\n' > "$root/etc/app/8084.env"
ct_boot op
out=$(ct_exec op systemd-analyze verify app-reload.path app-reload.service 2>&1)
[ -z "$out" ] || fail "systemd-analyze verify printed:"$'\n'"$out"
is_active op app-reload.path || fail "app-reload.path is not active"
start_all op "${PORTS[@]}"

# app status: one row per instance, as systemd sees it.
status=$(ct_exec op app status --json)
for port in "${PORTS[@]}"; do
    row=$(python3 -c 'import json,sys; print(json.dumps([r for r in json.load(sys.stdin) if r["port"] == int(sys.argv[1])][0]))' "$port" <<<"$status")
    [ "$(json name <<<"$row")" = "app@$port" ] || fail "no app@$port in: $status"
    [ "$(json state <<<"$row")" = active/running ] || fail "app@$port state: $row"
    [ "$(json main_pid <<<"$row")" = "$(main_pid op app@$port.service)" ] || fail "app@$port main pid: $row"
    [ "$(json requests <<<"$row")" -ge 1 ] || fail "app@$port served nothing: $row"
done
row=$(python3 -c 'import json,sys; print(json.dumps([r for r in json.load(sys.stdin) if r["port"] == 8084][0]))' <<<"$status")
[ "$(json mode <<<"$row")" = cluster ] || fail "8084 is not in cluster mode: $row"
workers=$(python3 -c 'import json,sys; print("\n".join(map(str, sorted(json.load(sys.stdin)["worker_pids"]))))' <<<"$row")
expected=$(cgroup_procs op app@8084.service | grep -vx "$(main_pid op app@8084.service)" | sort -n)
[ "$workers" = "$expected" ] || fail "8084 workers $(oneline "$workers"), cgroup has $(oneline "$expected")"
note "app status:"$'\n'"$(ct_exec op app status)"

# /metrics: readable from loopback, counting across the cluster's workers.
metrics=$(get op http://127.0.0.1:8084/metrics)
grep -q '^app_http_requests_total{route="/healthz",status="200"} 1$' <<<"$metrics" ||
    fail "8084 /metrics does not count the one /healthz: $(grep requests_total <<<"$metrics")"
# The process metrics under the unit's sandboxing (ProcSubset=pid hides /proc/stat).
for series in process_start_time_seconds process_cpu_seconds_total process_resident_memory_bytes process_open_fds; do
    grep -q "^$series " <<<"$metrics" || fail "8084 /metrics has no $series under the unit"
done

# Replace the binary under load: the path unit starts app-reload.service, whose `app reload`
# reloads every running instance onto it, one after another.
load_start op operate --path '/api/randoms?cant=10' --path /info --path /healthz \
    --duration 20 --concurrency 4 --max-requests 200000
wait_served op 200
before=$(cgroup_procs op app@8084.service | sort)
ct_exec op sh -c 'install -m 0755 /usr/local/bin/app /usr/local/bin/app.new && mv -f /usr/local/bin/app.new /usr/local/bin/app'
note "binary replaced"
for port in 8080 8082 8083 8085; do
    wait_until 30 "app@$port re-executed the new binary" runs_new_binary op app@$port.service
done
wait_until 30 "every worker of app@8084 replaced" replaced_all op app@8084.service "$before"
for pid in $(cgroup_procs op app@8084.service | grep -vx "$(main_pid op app@8084.service)"); do
    [ "$(ct_exec op readlink /proc/"$pid"/exe)" = /usr/local/bin/app ] || fail "worker $pid of 8084 runs an old binary"
done
wait_until 60 "app-reload.service finished" reload_done op
[ "$(prop op app-reload.service Result)" = success ] || fail "app-reload.service: $(prop op app-reload.service Result)"
note "app-reload.path moved every instance to the new binary:"$'\n'"$(ct_exec op journalctl -q --no-pager -u app-reload.service -o cat | grep reloaded)"
wait_served op 200
load_wait operate
if [ "$FAILED" != 0 ]; then
    note "nginx: $(ct_exec op grep -h -v ' 200 ' /var/log/nginx/access.log | tail -5)"
    note "nginx errors: $(ct_exec op tail -5 /var/log/nginx/error.log)"
    note "journal: $(ct_exec op journalctl -q --no-pager -n 40 -u 'app@*' | grep -iv 'serving\|started\|reload' | tail -15)"
    fail "$FAILED of $SENT requests failed during the reload"
fi
report "$SENT" 0
