# shellcheck shell=bash disable=SC2154  # sourced by lib/scenario.sh
# Crash under load (layout a): kill -9 of the fork instance's main process and of one worker of
# the cluster instance while GETs flow through nginx. No GET may fail, both come back, and the
# journal says what happened.
WORKERS=2
ct_prepare k app-layout-a 8080 8081
printf 'APP_MODE=cluster\nAPP_WORKERS=%s\n' "$WORKERS" > "$(ct_path k)/etc/app/8081.env"
ct_boot k
start_all k 8080 8081

# Two clients: a cluster worker computes at most two /api/randoms at once (503 beyond).
load_start k crash --path '/api/randoms?cant=10' --path /info --path /healthz \
    --duration 12 --concurrency 2 --max-requests 100000
wait_served k 300

# The fork instance: systemd restarts it (Restart=on-failure); meanwhile its socket holds the
# new connections and nginx retries the ones that died with the process.
old=$(main_pid k app@8080.service)
restarts=$(prop k app@8080.service NRestarts)
ct_exec k kill -9 "$old"
wait_until 15 "app@8080 restarted" restarted k app@8080.service "$old"
[ "$(prop k app@8080.service NRestarts)" -gt "$restarts" ] || fail "NRestarts of app@8080 did not grow"
ct_exec k journalctl -u app@8080 --no-pager -o cat | grep -q 'Main process exited, code=killed, status=9/KILL' ||
    fail "the journal of app@8080 does not say it was killed"
note "app@8080: PID $old killed -> $(main_pid k app@8080.service), journal: main process killed by SIGKILL"
wait_served k 300

# A cluster worker: the primary starts a new one.
main=$(main_pid k app@8081.service)
worker=$(cgroup_procs k app@8081.service | grep -vx "$main" | head -n1)
ct_exec k kill -9 "$worker"
wait_until 15 "a new worker in app@8081" worker_replaced k app@8081.service "$worker" $((WORKERS + 1))
[ "$(main_pid k app@8081.service)" = "$main" ] || fail "the primary of app@8081 changed"
why=$(journal_with k app@8081.service F_PID "$worker" | grep -i 'signal\|kill' | head -n1) || true
[ -n "$why" ] || fail "the journal of app@8081 says nothing about worker $worker"
note "app@8081: worker $worker killed; journal: $why"
wait_served k 300
load_wait crash
no_failures k "(GETs)"
report "$SENT" "$FAILED"
