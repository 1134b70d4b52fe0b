# shellcheck shell=bash disable=SC2154  # sourced by lib/scenario.sh
# Lazy activation: after boot the sockets of 8082..8085 listen and no instance runs; the first
# request to one port starts that instance alone, which reaches READY with a status text. The
# time from that first connection to the first byte of its answer (the cold start) is written to
# the suite's output (a figure for bench/run.sh, not asserted: speed targets live in benchmarks).
ct_prepare lazy app-layout-b 8082 8083 8084 8085
ct_boot lazy

listening=$(ct_exec lazy ss -Hltn)
for port in 8082 8083 8084 8085; do
    grep -q "127.0.0.1:$port " <<<"$listening" || fail "nothing listens on 127.0.0.1:$port"
    [ "$(ct_exec lazy systemctl is-active app@$port.socket)" = active ] || fail "app@$port.socket not active"
    [ "$(ct_exec lazy systemctl is-active app@$port.service)" = inactive ] || fail "app@$port.service runs before any request"
done
note "4 sockets listening, 4 services inactive"

timing=$(ct_net lazy curl -fsS --max-time 10 -o /dev/null -w '%{time_connect} %{time_starttransfer}' \
    http://127.0.0.1:8083/info) || fail "first request to 8083 failed"
cold_ms=$(awk '{ printf "%.1f", ($2 - $1) * 1000 }' <<<"$timing")
note "cold start: first response ${cold_ms} ms after the connection to the inactive app@8083 (target 20 ms)"
printf '{"first_response_ms":%s,"route":"/info"}\n' "$cold_ms" > "$WORK/out/cold-start.json"
get lazy http://127.0.0.1:8083/healthz >/dev/null || fail "app@8083 is not healthy after its first request"
[ "$(prop lazy app@8083.service ActiveState)/$(prop lazy app@8083.service SubState)" = active/running ] ||
    fail "app@8083 is not active/running after its first request"
status=$(prop lazy app@8083.service StatusText)
[ -n "$status" ] || fail "app@8083 sent no STATUS= text"
note "app@8083: active/running, status: $status"
for port in 8082 8084 8085; do
    [ "$(ct_exec lazy systemctl is-active app@$port.service)" = inactive ] || fail "app@$port started too"
done
ct_exec lazy journalctl -u app@8083 --no-pager -o verbose | grep -q 'LISTENER=inherited' ||
    fail "app@8083 did not log that it inherited its listener from systemd"
listener=$(get lazy http://127.0.0.1:8083/info | json listener)
[[ $listener == inherited* ]] || fail "app@8083 /info says listener: $listener"
note "app@8083 started alone, on the inherited socket"
report 2 0
