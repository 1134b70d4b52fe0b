# shellcheck shell=bash disable=SC2154  # sourced by lib/scenario.sh
# docs/operations.md followed as written: every block marked `run:` runs inside a bare Debian
# container (dash as sh), from a copy of the repository, in the document's order: install by hand,
# layout (b) with traffic and a reload under it, layout (a), settings, inspection, logs,
# retention, a binary upgrade through app-reload.path under traffic, the timer, stop. Between them,
# the walk-through's defects: a socket whose port another process holds, and an instance that
# failed on a bad env value, show in `app status` (exit 3); an env file written after the start is warned about; an instance moved to another
# address by a socket drop-in is asked there.
ct_overlay docs
root=$(ct_path docs)
src=$root/root/app
mkdir -p "$src/target/release"
cp -r "$REPO/systemd" "$REPO/nginx" "$REPO/docs" "$src/"
install -m 0755 "$APP_BIN" "$src/target/release/app"
ct_boot docs
doc() { run_doc docs docs/operations.md "$1" /root/app; }

doc hand-install
out=$(ct_exec docs systemd-analyze verify app@8082.service app@8082.socket app-reload.path app-reload.timer 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify: $out"

doc layout-b
load_start docs b --path '/api/randoms?cant=10' --path /info --path /healthz --max-requests 100000 \
    --concurrency 4 --duration 60
wait_served docs 200
doc reload
wait_served docs 200
load_stop b
load_wait b
no_failures docs "through layout (b) while reloading"
sent=$SENT

# A dev server holding 8080: the socket cannot listen, and app status says so, exit 3.
ct_exec docs systemctl stop app@8080.socket app@8080.service
ct_exec docs systemd-run --quiet --unit devserver /usr/local/bin/app --port 8080 --data-dir /var/tmp/dev
wait_until 10 "the dev server answers on 8080" ct_net docs curl -fsS -o /dev/null http://127.0.0.1:8080/healthz
ct_exec docs systemctl restart app@8080.socket 2>/dev/null && fail "app@8080.socket listened on a taken port"
code=0
status=$(ct_exec docs app status) || code=$?
[ "$code" = 3 ] || fail "app status exited $code with a failed socket:"$'\n'"$status"
grep -q "app@8080 .*(socket failed)" <<<"$status" || fail "no failed socket in:"$'\n'"$status"
grep -q "another process listens on 127.0.0.1:8080" <<<"$status" || fail "the taken address is not named:"$'\n'"$status"
note "a taken port, as app status shows it:"$'\n'"$(grep -A1 '^app@8080' <<<"$status" | tail -n 2)"
ct_exec docs systemctl stop devserver
ct_exec docs systemctl restart app@8080.socket
code=0
status=$(ct_exec docs app status) || code=$?
[ "$code" = 0 ] || fail "app status exits $code once the socket listens again:"$'\n'"$status"

# An instance moved to 127.0.0.2 by the documented drop-in is asked there.
drop=$root/etc/systemd/system/app@8085.socket.d
mkdir -p "$drop"
printf '[Socket]\nListenStream=\nListenStream=127.0.0.2:%%i\n' > "$drop/listen.conf"
ct_exec docs systemctl daemon-reload
ct_exec docs systemctl stop app@8085.service
ct_exec docs systemctl restart app@8085.socket
ct_net docs curl -fsS -o /dev/null http://127.0.0.2:8085/healthz
row=$(ct_exec docs app status --json | python3 -c 'import json,sys; print(json.dumps([r for r in json.load(sys.stdin) if r["port"] == 8085][0]))')
[ "$(json address <<<"$row")" = 127.0.0.2:8085 ] || fail "8085 asked elsewhere: $row"
[ "$(json requests <<<"$row")" = 1 ] && [ "$(json mode <<<"$row")" = fork ] || fail "8085 not asked at 127.0.0.2: $row"
note "app@8085 asked where its socket listens: $(json address <<<"$row")"

doc layout-a
# An env file written after the start: a reload keeps the old one, and says so.
ct_net docs curl -fsS -o /dev/null http://127.0.0.1:8080/healthz
ct_exec docs sh -c 'echo APP_DRAIN_TIMEOUT=5s > /etc/app/8080.env'
warned=$(ct_exec docs app reload 2>&1 >/dev/null)
grep -q "/etc/app/8080.env changed after app@8080 started: .*systemctl restart app@8080" <<<"$warned" ||
    fail "app reload did not warn about the new env file: $warned"
ct_exec docs app status | grep -q "/etc/app/8080.env changed after app@8080 started" ||
    fail "app status does not warn about the new env file"
doc settings

# A bad value in an env file: the instance exits 2 naming the flag, systemd ends up with it failed
# (at once, or at its start limit), and app status exits 3 showing it.
ct_exec docs sh -c 'printf "APP_MODE=cluster\nAPP_WORKERS=two\n" > /etc/app/8086.env'
ct_exec docs systemctl start app@8086.socket
ct_net docs curl -s -o /dev/null --max-time 5 http://127.0.0.1:8086/healthz || true
failed_unit() { [ "$(prop docs app@8086.service ActiveState)" = failed ]; }
wait_until 60 "app@8086 failed" failed_unit
code=0
status=$(ct_exec docs app status) || code=$?
[ "$code" = 3 ] || fail "app status exited $code with a failed instance:"$'\n'"$status"
grep -q "│ app@8086 .*│ failed/" <<<"$status" || fail "app@8086 not shown failed:"$'\n'"$status"
[ "$(prop docs app@8086.service ExecMainStatus)" = 2 ] || fail "app@8086 exited $(prop docs app@8086.service ExecMainStatus), not 2"
ct_exec docs systemctl stop app@8086.socket
ct_exec docs systemctl reset-failed app@8086.service app@8086.socket
ct_exec docs rm /etc/app/8086.env
note "a bad env value: app@8086 failed, app status exit 3"
doc inspect
doc logs
doc retention

load_start docs a --path '/api/randoms?cant=10' --path /info --max-requests 100000 --concurrency 4 --duration 60
wait_served docs 200
before=$(main_pid docs app@8080.service)
doc upgrade
wait_until 30 "app@8080 re-executed the new binary" runs_new_binary docs app@8080.service
[ "$(main_pid docs app@8080.service)" = "$before" ] || fail "app@8080 restarted instead of reloading"
wait_until 60 "app-reload.service finished" reload_done docs
wait_served docs 200
load_stop a
load_wait a
no_failures docs "through layout (a) while app-reload.path reloaded"
sent=$((sent + SENT))
[ "$(ct_exec docs systemctl is-enabled app-reload.path)" = enabled ] || fail "app-reload.path is not enabled"
ct_exec docs test -L /etc/systemd/system/paths.target.wants/app-reload.path ||
    fail "app-reload.path is not wanted by paths.target (it would be inactive after a reboot)"

doc timer
is_active docs app-reload.timer || fail "app-reload.timer is not active"
doc stop
ct_exec docs sh -c '! ss -Hltn | grep -q ":808[0-5] "' || fail "something listens after the stop block"
report "$sent" 0
