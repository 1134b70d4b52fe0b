# shellcheck shell=bash disable=SC2154  # sourced by lib/scenario.sh
# Two hosts: a load-balancer container and two backend containers, each in its own network
# namespace, joined by veth pairs whose addresses exist only inside those namespaces. The
# backends run the repository's units with the documented listen drop-in; the balancer runs
# layout (b) with each upstream address replaced by both backends. Stopping one backend host
# under load costs no GET.
lb=$(netns_add lb)
declare -A host=([b1]=10.231.1.2 [b2]=10.231.2.2) proxy=([b1]=10.231.1.1 [b2]=10.231.2.1)
PORTS=(8080 8082 8083 8084 8085)
for b in b1 b2; do
    ns=$(netns_add "$b")
    netns_link "$lb" "${proxy[$b]}/24" "$ns" "${host[$b]}/24"
    backend_prepare "$b" "${host[$b]}" "${proxy[$b]}" "${PORTS[@]}"
    ct_boot "$b" "$ns"
done

# Each local instance address becomes the same port on both hosts.
ct_prepare lb app-layout-b
balance_to lb "${host[b1]}" "${host[b2]}"
ct_boot lb "$lb"
ct_exec lb nginx -t -q || fail "the balancer's nginx config is invalid"

info=$(ct_net lb curl -fsS --max-time 10 -H 'X-Forwarded-For: 203.0.113.9' http://127.0.0.1/info)
[ "$(json client <<<"$info")" = 127.0.0.1 ] ||
    fail "a backend did not take the client from X-Forwarded-For of its trusted proxy: $info"

load_start lb hosts --path '/api/randoms?cant=10' --path /info --duration 12 --concurrency 4 --max-requests 100000
wait_served lb 2000
ct_stop b1
note "backend host b1 halted"
wait_served lb 300
load_wait hosts
no_failures lb "(GETs)"

counts=$(upstream_counts lb /)
note "answered by: $(oneline "$counts")"
for b in b1 b2; do
    grep -q " ${host[$b]}:" <<<"$counts" || fail "host $b answered nothing"
done
report "$SENT" "$FAILED"
