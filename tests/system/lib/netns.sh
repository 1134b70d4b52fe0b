# shellcheck shell=bash
# Sourced: network namespaces for multi-host scenarios. Addresses exist only inside the
# namespaces made here; the host's own network is never touched. Names start with the run's
# prefix and are listed in $WORK/netns so a trap can remove them.

NETNS_PREFIX=at$$

# netns_add NAME: create namespace $NETNS_PREFIX-NAME with lo up; prints its full name.
netns_add() {
    local ns=$NETNS_PREFIX-$1
    ip netns add "$ns"
    echo "$ns" >> "$WORK/netns"
    # lo stays down in a fresh namespace and the container cannot raise it itself.
    ip -n "$ns" link set lo up
    echo "$ns"
}

# netns_link NS_A ADDR_A/LEN NS_B ADDR_B/LEN: a veth pair between two namespaces.
netns_link() {
    local a=$1 addr_a=$2 b=$3 addr_b=$4 tmp_a=vta$$$RANDOM tmp_b=vtb$$$RANDOM
    ip link add "$tmp_a" type veth peer name "$tmp_b"
    ip link set "$tmp_a" netns "$a"
    ip link set "$tmp_b" netns "$b"
    ip -n "$a" addr add "$addr_a" dev "$tmp_a"
    ip -n "$b" addr add "$addr_b" dev "$tmp_b"
    ip -n "$a" link set "$tmp_a" up
    ip -n "$b" link set "$tmp_b" up
}

netns_cleanup_all() {
    local ns
    [ -f "$WORK/netns" ] || return 0
    while read -r ns; do
        ip netns delete "$ns" 2>/dev/null || true
    done < "$WORK/netns"
    rm -f "$WORK/netns"
}
