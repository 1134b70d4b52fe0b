# shellcheck shell=bash disable=SC2154  # sourced by lib/scenario.sh
# Layout (b): 400 requests to /api/randoms through nginx land on all of 8082..8085, none above
# 35% and none below 15% (counted from nginx's access log: the instance that answered).
ct_prepare b app-layout-b 8080 8082 8083 8084 8085
ct_boot b

load_start b b --path '/api/randoms?cant=100' --max-requests 400 --concurrency 4 --duration 60
load_wait b
[ "$SENT" = 400 ] || fail "sent $SENT requests, not 400"
no_failures b "through nginx"

counts=$(upstream_counts b /api/randoms)
note "answered by: $(oneline "$counts")"
[ "$(wc -l <<<"$counts")" = 4 ] || fail "not answered by exactly four instances"
while read -r n addr; do
    case $addr in 127.0.0.1:808[2-5]) ;; *) fail "unexpected upstream $addr" ;; esac
    if [ "$n" -lt 60 ] || [ "$n" -gt 140 ]; then fail "$addr answered $n of 400 (outside 15%..35%)"; fi
done <<<"$counts"
report "$SENT" "$FAILED"
