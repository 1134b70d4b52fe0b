# shellcheck shell=bash disable=SC2154  # sourced by lib/scenario.sh
# Layout (a): /api/randoms is answered by the cluster instance on 8081 (a primary and N
# workers in its cgroup), every other path by the fork instance on 8080.
WORKERS=3
ct_prepare a app-layout-a 8080 8081
echo "APP_MODE=fork" > "$(ct_path a)/etc/app/8080.env"
printf 'APP_MODE=cluster\nAPP_WORKERS=%s\n' "$WORKERS" > "$(ct_path a)/etc/app/8081.env"
ct_boot a

# Two clients: a worker computes at most two /api/randoms at once and answers 503 beyond that,
# and the kernel does not spread nginx's keep-alive connections evenly over the workers.
load_start a a --path '/api/randoms?cant=100' --path /info --path /healthz \
    --max-requests 300 --concurrency 2 --duration 30
load_wait a
no_failures a "through nginx"

counts=$(upstream_counts a /api/randoms)
note "/api/randoms answered by: $(oneline "$counts")"
[ "$(awk '{ print $2 }' <<<"$counts")" = 127.0.0.1:8081 ] || fail "/api/randoms not answered by 8081 alone"
counts=$(upstream_counts a /info)
[ "$(awk '{ print $2 }' <<<"$counts")" = 127.0.0.1:8080 ] || fail "/info not answered by 8080 alone"

info=$(get a http://127.0.0.1/info)
[ "$(json mode <<<"$info")" = fork ] || fail "/info through nginx is not the fork instance: $info"
[ "$(json instance <<<"$info")" = 8080 ] || fail "/info through nginx is not instance 8080: $info"
info=$(get a http://127.0.0.1:8081/info)
[ "$(json mode <<<"$info")" = cluster ] || fail "8081 is not in cluster mode: $info"
[ "$(json workers <<<"$info")" = "$WORKERS" ] || fail "8081 does not say $WORKERS workers: $info"

# nginx refuses a body over the app's limit itself (client_max_body_size 1m = 1048576 bytes).
post_status() {
    head -c "$1" /dev/zero | ct_net a curl -sS -o /dev/null -w '%{http_code}' --max-time 10 \
        -H 'Content-Type: application/octet-stream' --data-binary @- http://127.0.0.1/info
}
[ "$(post_status 1048577)" = 413 ] || fail "a body of 1 MiB + 1 byte was not refused with 413"
[ "$(post_status 1048576)" != 413 ] || fail "a body of exactly 1 MiB was refused"
note "client_max_body_size: 1 MiB passes, 1 MiB + 1 byte gets 413"

main=$(main_pid a app@8081.service)
procs=$(cgroup_procs a app@8081.service)
[ "$(wc -l <<<"$procs")" = $((WORKERS + 1)) ] || fail "app@8081's cgroup holds $(oneline "$procs"), not a primary and $WORKERS workers"
for pid in $procs; do
    [ "$pid" = "$main" ] && continue
    [ "$(ct_exec a ps -o ppid= -p "$pid" | tr -d ' ')" = "$main" ] || fail "process $pid in app@8081 is not a worker of $main"
done
note "app@8081: primary $main + $WORKERS workers in its cgroup"
report $((SENT + 2)) "$FAILED"
