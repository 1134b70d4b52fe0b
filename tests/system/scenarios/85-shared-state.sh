# shellcheck shell=bash disable=SC2154  # sourced by lib/scenario.sh
# Shared state (issue 5) with a real redis-server, as docs/operations.md deploys it. Three hosts,
# each in its own network namespace (as in two-hosts): backends b1 and b2 (instances 8080, 8082
# and 8085 listening on the host's address, configured by /etc/app/PORT.env) and a balancer lb
# (nginx layout b over both backends, and Debian's redis-server.service listening on its links).
# 1. SQLite, the default store: todos written through b1's 8082 are read through b1's 8085, and a
#    kill -9 of 8082's main process while POSTs flow loses none that was answered 201.
# 2. APP_TODOS_STORE=redis on both hosts (env files, then a restart): todos written through b1
#    (kill -9 included) are read through b2 and through the balancer.
# 3. Chat: a message sent on b1's 8082 reaches b1's 8085, b2's 8085 and clients that came through
#    the balancer's nginx (upgraded there, landing on both hosts). Redis stopped mid-chat: the
#    sender gets an error frame; Redis back: a message reaches everyone again, and the todos of (2)
#    are still there.
lb=$(netns_add lb)
declare -A host=([b1]=10.231.1.2 [b2]=10.231.2.2) proxy=([b1]=10.231.1.1 [b2]=10.231.2.1)
PORTS=(8080 8082 8085)
for b in b1 b2; do
    ns=$(netns_add "$b")
    netns_link "$lb" "${proxy[$b]}/24" "$ns" "${host[$b]}/24"
    backend_prepare "$b" "${host[$b]}" "${proxy[$b]}" "${PORTS[@]}"
    for port in "${PORTS[@]}"; do
        echo "APP_REDIS_URL=redis://${proxy[$b]}:6379" > "$(ct_path "$b")/etc/app/$port.env"
    done
    ct_boot "$b" "$ns"
done
ct_prepare lb app-layout-b
balance_to lb "${host[b1]}" "${host[b2]}"
redis_enable lb 127.0.0.1 "${proxy[b1]}" "${proxy[b2]}"
ct_boot lb "$lb"
is_active lb redis-server.service || fail "redis-server is not active"
SENT_ALL=0
FAILED_ALL=0

# todo_count URL: how many todos the store behind URL holds.
todo_count() { ct_net lb curl -fsS --max-time 5 "$1/v1/todos?limit=1" | json total; }
todos_beyond() { [ "$(todo_count "$1")" -ge "$2" ]; }

# writes_survive_kill TAG CT PORT HOST:PORT...: POSTs to CT's instance PORT (4 clients) while its
# main process is killed with SIGKILL; then every todo that got a 201 is read back through each
# HOST:PORT (from the balancer's namespace), one GET each. POSTs cut by the kill (no answer)
# promise nothing and are only noted.
writes_survive_kill() {
    local tag=$1 ct=$2 port=$3 url=http://${host[$2]}:$3 before pid ids paths read
    shift 3
    before=$(todo_count "$url")
    load_start lb "$tag" --host "${host[$ct]}" --port "$port" --path /v1/todos \
        --post-json "{\"title\": \"$tag: written before a kill -9\"}" --tally-json id \
        --duration 15 --concurrency 4 --max-requests 5000 --rate 500
    wait_until 10 "20 todos written through $ct:$port" todos_beyond "$url" $((before + 20))
    pid=$(main_pid "$ct" "app@$port.service")
    ct_exec "$ct" kill -9 "$pid"
    wait_until 15 "app@$port on $ct restarted" restarted "$ct" "app@$port.service" "$pid"
    before=$(todo_count "$url")
    wait_until 10 "20 more todos after the restart" todos_beyond "$url" $((before + 20))
    load_stop "$tag"
    load_wait "$tag"
    [ "$(json non2xx < "$WORK/out/$tag.json")" = 0 ] || fail "POSTs answered neither 201 nor by a cut"
    ids=$(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["tally"]))' "$WORK/out/$tag.json")
    note "$tag: $(wc -w <<<"$ids") todos got a 201, $FAILED POSTs were cut by the kill -9 of PID $pid (no answer)"
    SENT_ALL=$((SENT_ALL + SENT))
    paths=()
    for id in $ids; do paths+=(--path "/v1/todos/$id"); done
    for read in "$@"; do
        load_start lb "$tag-read" --host "${read%:*}" --port "${read##*:}" "${paths[@]}" \
            --concurrency 1 --max-requests "$(wc -w <<<"$ids")" --duration 30
        load_wait "$tag-read"
        SENT_ALL=$((SENT_ALL + SENT))
        FAILED_ALL=$((FAILED_ALL + FAILED))
        [ "$FAILED" = 0 ] || fail "$FAILED of the todos answered 201 are missing through $read"
        [ "$SENT" = "$(wc -w <<<"$ids")" ] || fail "only $SENT of $(wc -w <<<"$ids") todos read through $read"
    done
    note "$tag: every one read back through $*"
}

# 1. One host, SQLite in the state directory shared by its instances.
writes_survive_kill sqlite b1 8082 "${host[b1]}:8085" "${host[b1]}:8082"
# ... one file in StateDirectory=app, owned by the dynamic user both instances run as.
owner=$(ct_exec b1 stat -c %u /var/lib/private/app/todos.sqlite3)
for port in 8082 8085; do
    [ "$(ct_exec b1 ps -o uid= -p "$(main_pid b1 app@$port.service)" | tr -d ' ')" = "$owner" ] ||
        fail "app@$port does not run as the owner ($owner) of the SQLite file"
done
[ "$(todo_count "http://${host[b2]}:8085")" = 0 ] || fail "b2 sees b1's SQLite todos"

# 2. Every instance of both hosts on Redis: what docs/operations.md says to change, then restart.
for b in b1 b2; do
    for port in "${PORTS[@]}"; do
        echo APP_TODOS_STORE=redis >> "$(ct_path "$b")/etc/app/$port.env"
    done
    ct_exec "$b" systemctl restart app.target
done
writes_survive_kill redis b1 8082 "${host[b2]}:8085" 127.0.0.1:80
ct_exec lb redis-cli ping >/dev/null || fail "redis-cli cannot reach redis-server"

# 3. Chat through Redis, across instances, hosts and the balancer's nginx.
signals=$WORK/out/chat-signals
mkdir -p "$signals"
receivers=(--receiver "ws://${host[b1]}:8085/ws?room=shared&name=b1-8085"
           --receiver "ws://${host[b2]}:8085/ws?room=shared&name=b2-8085")
for n in 1 2 3 4; do receivers+=(--receiver "ws://127.0.0.1:80/ws?room=shared&name=lb-$n"); done
ct_net lb python3 "$HERE/chat.py" --sender "ws://${host[b1]}:8082/ws?room=shared&name=b1-8082" \
    "${receivers[@]}" --signal-dir "$signals" --timeout 15 \
    --steps deliver,wait:redis-down,refused,wait:redis-up,recover,deliver > "$WORK/out/chat.json" &
chat=$!
# chat_at STEP: the chat check waits at wait:STEP (and is still running).
chat_at() { [ -e "$signals/$1.waiting" ] || { kill -0 "$chat" || fail "the chat check ended early"; false; }; }
wait_until 20 "the first message delivered" chat_at redis-down
ct_exec lb systemctl stop redis-server.service
touch "$signals/redis-down"
wait_until 20 "a message refused while Redis is away" chat_at redis-up
ct_exec lb systemctl start redis-server.service
touch "$signals/redis-up"
wait "$chat" || fail "the chat check failed"
note "chat: $(cat "$WORK/out/chat.json")"
SENT_ALL=$((SENT_ALL + $(json sent < "$WORK/out/chat.json")))
# The balancer logs each WebSocket when it closes: they were spread over both hosts.
ws_logged() { [ "$(upstream_counts lb /ws | awk '{ n += $1 } END { print n + 0 }')" -ge 4 ]; }
wait_until 10 "the balancer logged the 4 WebSockets" ws_logged
counts=$(upstream_counts lb /ws)
note "chat through the balancer, answered by: $(oneline "$counts")"
for b in b1 b2; do
    grep -q " ${host[$b]}:8080" <<<"$counts" || fail "no WebSocket through the balancer reached $b"
done

# The todos of (2) outlived the Redis restart (appendfsync always).
[ "$(todo_count "http://${host[b2]}:8085")" -ge "$(json ok < "$WORK/out/redis.json")" ] ||
    fail "todos were lost in the Redis restart"
report "$SENT_ALL" "$FAILED_ALL"
