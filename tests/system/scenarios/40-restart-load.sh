# shellcheck shell=bash disable=SC2154  # sourced by lib/scenario.sh
# Restart under load: about 20 s of GETs through nginx (layout b) while app@8083 is restarted
# three times, the binary is replaced, 8080 and 8082 are reloaded (re-exec on the same socket)
# and every instance is restarted through app.target. No request may fail, and no socket may
# be closed on the way. Then the same for the cluster instance of layout (a): reload (workers
# replaced one by one) and restart under load.
PORTS=(8080 8082 8083 8084 8085)
ct_prepare r app-layout-b "${PORTS[@]}"
ct_boot r
start_all r "${PORTS[@]}"
declare -A since
for port in "${PORTS[@]}"; do since[$port]=$(prop r app@$port.socket ActiveEnterTimestampMonotonic); done

load_start r restart --path '/api/randoms?cant=10' --path /info --path /healthz \
    --duration 20 --concurrency 4 --max-requests 200000
wait_served r 200
for i in 1 2 3; do
    old=$(main_pid r app@8083.service)
    ct_exec r systemctl restart app@8083.service
    [ "$(main_pid r app@8083.service)" != "$old" ] || fail "app@8083 kept PID $old over a restart"
    note "restart $i of app@8083: PID $old -> $(main_pid r app@8083.service)"
    wait_served r 200
done

ct_exec r sh -c 'install -m 0755 /opt/app/app /usr/local/bin/app.new && mv -f /usr/local/bin/app.new /usr/local/bin/app'
note "binary replaced"
for port in 8080 8082; do
    old=$(main_pid r app@$port.service)
    ct_exec r systemctl reload app@$port.service
    wait_until 20 "app@$port re-executed the new binary" runs_new_binary r app@$port.service
    [ "$(main_pid r app@$port.service)" = "$old" ] || fail "app@$port changed PID on reload"
    note "reload of app@$port: same PID $old, new binary"
    wait_served r 200
done
ct_exec r systemctl restart app.target
for port in "${PORTS[@]}"; do
    wait_until 20 "app@$port restarted on the new binary" runs_new_binary r app@$port.service
done
note "app.target restarted every instance"
wait_served r 200
load_wait restart
for port in "${PORTS[@]}"; do
    [ "$(prop r app@$port.socket ActiveEnterTimestampMonotonic)" = "${since[$port]}" ] ||
        fail "app@$port.socket was restarted: connections could have been refused"
done
no_failures r "through nginx"
total_sent=$SENT
ct_stop r

# The cluster instance: reload replaces the workers one by one, restart replaces the primary.
ct_prepare rc app-layout-a 8080 8081
printf 'APP_MODE=cluster\nAPP_WORKERS=2\n' > "$(ct_path rc)/etc/app/8081.env"
ct_boot rc
start_all rc 8081
# Two clients at a time: each worker computes at most two /api/randoms at once and answers
# 503 beyond that (load shedding, not what this test is about).
load_start rc restart-cluster --path '/api/randoms?cant=10' --duration 10 --concurrency 2 --max-requests 100000
wait_served rc 200
before=$(cgroup_procs rc app@8081.service | sort)
ct_exec rc systemctl reload app@8081.service
wait_until 30 "every worker of app@8081 replaced" replaced_all rc app@8081.service "$before"
note "reload of app@8081: workers $(oneline "$before") -> $(oneline "$(cgroup_procs rc app@8081.service)")"
wait_served rc 200
ct_exec rc systemctl restart app@8081.service
wait_served rc 200
load_wait restart-cluster
no_failures rc "to the cluster instance"
report $((total_sent + SENT)) 0
