# shellcheck shell=bash disable=SC2154  # sourced by lib/scenario.sh
# Socket.IO through nginx (layout b as shipped, with Debian's redis-server in the container): the
# real socket.io-client (tests/socketio/driver.js with the test command's npm ci, run from the host
# by tests/system/socketio.py in the container's network namespace, or in a client host's, as
# load.py and chat.py are) on port 80 with each transport.
# 1. WebSocket only, polling only, and the default (polling, then the upgrade) through nginx to
#    the fork instance 8080, with a Socket.IO client and a /ws client on instance 8082: every
#    message reaches every client (through Redis across the instances), after a silence longer
#    than Engine.IO's ping interval too (nginx's read timeout on /socket.io/ is above it).
# 2. The sticky upstream over two instances (8080 and 8082), polling clients on four client hosts
#    (network namespaces of their own): every client's polls answered by one instance (round robin
#    breaks them: "xhr poll error"), the clients spread over both, chatting through Redis.
# 3. The same over a cluster-mode instance (8081, two workers): a poll that reaches the worker
#    which does not own the session is passed on to the one that does.
# 4. app@8080 restarted under a polling client: it reconnects by itself, joins again, and chats.
PORTS=(8080 8081 8082)
# Four client hosts, each in its own network namespace linked to the container's: four client
# addresses for nginx's hash.
ns=$(netns_add s)
client_ns=()
for i in 1 2 3 4; do
    client_ns[i]=$(netns_add "c$i")
    netns_link "$ns" "10.231.3$i.1/24" "${client_ns[i]}" "10.231.3$i.2/24"
done
ct_prepare s app-layout-b "${PORTS[@]}"
for port in "${PORTS[@]}"; do echo "APP_REDIS_URL=redis://127.0.0.1:6379" > "$(ct_path s)/etc/app/$port.env"; done
printf 'APP_MODE=cluster\nAPP_WORKERS=2\n' >> "$(ct_path s)/etc/app/8081.env"
redis_enable s 127.0.0.1
ct_boot s "$ns"
start_all s "${PORTS[@]}"
# The npm client, as the test command installs it (tests/lib/deps.sh), when this runs alone.
[ -e "$REPO/tests/socketio/node_modules/socket.io-client/package.json" ] ||
    (cd "$REPO" && . tests/lib/deps.sh && need_npm_clients) || fail "cannot install tests/socketio's npm clients"
signals=$WORK/out/socketio-signals
mkdir -p "$signals"
SENT_ALL=0

# client NAME URL TRANSPORT [OPTS [NETNS]]: the JSON of a --client of socketio.py that must end
# up on TRANSPORT, with io() options OPTS, its driver in network namespace NETNS.
client() {
    local opts=${4:-'{}'}
    printf '{"name": "%s", "url": "%s", "transport": "%s", "opts": %s%s}' "$1" "$2" "$3" "$opts" "${5:+, \"netns\": \"$5\"}"
}
POLLING='{"transports": ["polling"]}'
# io()'s default (reconnection: true), made quick: the test waits for it.
RECONNECTING='{"transports": ["polling"], "reconnection": true, "reconnectionDelay": 100}'
# socketio TAG ARGS...: socketio.py in the container's network; its JSON goes to $WORK/out/TAG.json.
socketio() {
    local tag=$1
    shift
    ct_net s python3 "$HERE/socketio.py" --driver "$REPO/tests/socketio/driver.js" --room lobby \
        --signal-dir "$signals" "$@" > "$WORK/out/$tag.json" || fail "socketio check '$tag' failed"
    note "$tag: $(cat "$WORK/out/$tag.json")"
    SENT_ALL=$((SENT_ALL + $(json sent < "$WORK/out/$tag.json")))
}
# socketio_upstream PORT...: the enabled site's app_socketio lists these instances, once each.
socketio_upstream() {
    local site port servers=
    site=$(readlink -f "$(ct_path s)/etc/nginx/sites-enabled/app")
    for port in "$@"; do servers+="    server 127.0.0.1:$port max_fails=0;\n"; done
    awk -v servers="$servers" '
        /^upstream app_socketio \{/ { inside = 1 }
        inside && /^ *server / { next }
        inside && /^ *hash / { print; printf "%s", servers; next }
        inside && /^\}/ { inside = 0 }
        { print }' "$site" > "$site.new" && mv "$site.new" "$site"
    ct_exec s sh -c 'nginx -t -q && systemctl restart nginx' || fail "nginx refuses app_socketio over $*"
}
# answered_by PATH_PREFIX: the instances that answered requests under PATH_PREFIX since the log
# was emptied (log_reset), one per line.
answered_by() { upstream_counts s "$1" | awk '{ print $2 }'; }
log_reset() { ct_exec s truncate -s 0 /var/log/nginx/access.log; }
via_nginx=(--client "$(client ws-only http://127.0.0.1 websocket '{"transports": ["websocket"]}')"
           --client "$(client polling-only http://127.0.0.1 polling "$POLLING")"
           --client "$(client upgrading http://127.0.0.1 websocket)")
on_b=(--client "$(client on-8082 http://127.0.0.1:8082 websocket)")

# 1. Both transports through nginx, across instances and protocols.
log_reset
socketio transports "${via_nginx[@]}" "${on_b[@]}" \
    --ws 'ws://127.0.0.1/ws?room=lobby&name=ws-8080' --ws 'ws://127.0.0.1:8082/ws?room=lobby&name=ws-8082' \
    --steps join,exchange,idle:30,exchange --timeout 40
python3 - "$WORK/out/transports.json" <<'PY' || fail "the clients did not use the transports they were given"
import json, sys
c = json.load(open(sys.argv[1]))["clients"]
assert c["ws-only"]["connects"] == ["websocket"] and not c["ws-only"]["upgrades"], c["ws-only"]
assert c["polling-only"]["connects"] == ["polling"] and not c["polling-only"]["upgrades"], c["polling-only"]
# Started on polling, moved onto a WebSocket (the upgrade may finish before Socket.IO's connect).
assert c["upgrading"]["upgrades"] == ["websocket"], c["upgrading"]
PY
[ "$(answered_by /socket.io/)" = 127.0.0.1:8080 ] || fail "/socket.io/ through nginx not answered by 8080 alone: $(answered_by /socket.io/)"
polls=$(ct_exec s grep -c '"POST /socket.io/?' /var/log/nginx/access.log) || true
[ "${polls:-0}" -gt 0 ] || fail "no polling POST went through nginx"
note "through nginx: $polls polling POSTs, every /socket.io/ request answered by 8080"

# 2. The sticky upstream over two instances, polling clients on four client hosts.
socketio_upstream 8080 8082
log_reset
hosts=()
for i in 1 2 3 4; do
    hosts+=(--client "$(client "polling-$i" "http://10.231.3$i.1" polling "$POLLING" "${client_ns[i]}")")
done
socketio sticky "${hosts[@]}" "${on_b[@]}" --steps join,exchange,exchange,exchange --timeout 20
# Per client address, the instances that answered its polls (nginx's access log).
per_client=$(ct_exec s awk '$0 ~ /"GET \/socket\.io\// { s = $0; sub(/.*upstream=/, "", s); sub(/ .*/, "", s); print $1, s }' \
    /var/log/nginx/access.log | sort -u)
note "polling over app_socketio = 8080 + 8082, client -> instance: $(oneline "$per_client")"
[ "$(awk '{ print $1 }' <<<"$per_client" | sort | uniq -d)" = "" ] || fail "a client's polls reached two instances"
[ "$(awk '{ print $1 }' <<<"$per_client" | wc -l)" = 4 ] || fail "not every client host polled through nginx"
# The hash of these four addresses puts clients on both instances: they chatted through Redis.
[ "$(awk '{ print $2 }' <<<"$per_client" | sort -u | wc -l)" = 2 ] || fail "the four clients all landed on one instance"

# 3. Polling to a cluster: its two workers share the socket, and nginx's connections to it land
# on either; a poll that reaches the worker which does not own the session is passed on to it.
socketio_upstream 8081
socketio cluster --client "$(client polling-c http://127.0.0.1 polling "$POLLING")" \
    --client "$(client upgrading-c http://127.0.0.1 websocket)" \
    "${on_b[@]}" --steps join,exchange,exchange,exchange,exchange --timeout 20
[ "$(ct_exec s sh -c 'ls /run/app/8081/app-primary-*/socketio-*.sock' | wc -l)" = 2 ] ||
    fail "the cluster's workers do not each take forwarded requests on a unix socket"

# 4. The fork instance restarted under a polling client (reconnection on, as by default).
socketio_upstream 8080
socketio_restart() {
    wait_until 30 "the polling client to join and chat" test -e "$signals/restart.waiting"
    local pid
    pid=$(main_pid s app@8080.service)
    # Type=notify: returns once the new process is ready.
    ct_exec s systemctl restart app@8080.service
    restarted s app@8080.service "$pid" || fail "app@8080 did not come back"
    touch "$signals/restart"
}
socketio_restart &
restart=$!
socketio restart --client "$(client polling-r http://127.0.0.1 polling "$RECONNECTING")" \
    "${on_b[@]}" --steps join,exchange,wait:restart,rejoin:polling-r,exchange --timeout 30
wait "$restart" || fail "the restart of app@8080 failed"
report "$SENT_ALL" 0
