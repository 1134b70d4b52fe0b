# shellcheck shell=bash disable=SC2154  # sourced by lib/scenario.sh
# Watchdog: an instance that stops answering (SIGSTOP) stops pinging the watchdog; systemd
# aborts it after WatchdogSec= and starts a new one. A request sent while it was frozen waits
# in the socket's backlog and is answered by the new process.
ct_prepare w app-layout-b 8082
ct_boot w
start_all w 8082
old=$(main_pid w app@8082.service)
limit=$(prop w app@8082.service WatchdogUSec)
ct_exec w kill -STOP "$old"
note "app@8082 PID $old frozen (WatchdogSec=$limit)"
ct_net w curl -fsS --max-time 40 -o "$WORK/out/frozen.body" http://127.0.0.1:8082/info &
pending=$!
wait_until 40 "app@8082 restarted by the watchdog" restarted w app@8082.service "$old"
wait "$pending" || fail "the request sent while frozen failed"
[ "$(json pid < "$WORK/out/frozen.body")" = "$(main_pid w app@8082.service)" ] ||
    fail "the request sent while frozen was not answered by the new process"
ct_exec w journalctl -u app@8082 --no-pager -o cat | grep -q 'Watchdog timeout' ||
    fail "the journal of app@8082 does not mention the watchdog"
note "app@8082: PID $old -> $(main_pid w app@8082.service) after 'Watchdog timeout'; the pending request was answered"
report 2 0
