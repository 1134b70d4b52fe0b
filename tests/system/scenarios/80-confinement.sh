# shellcheck shell=bash disable=SC2154  # sourced by lib/scenario.sh
# Confinement: the instance runs as the dynamic user "app" without privileges, and can write
# only to its state directory (plus a private /tmp nobody else sees).
ct_prepare c app-layout-b 8082
ct_boot c
start_all c 8082
pid=$(main_pid c app@8082.service)
status=$(ct_exec c cat "/proc/$pid/status")
field() { awk -v k="$1:" '$1 == k { print $2 }' <<<"$status"; }

uid=$(field Uid); gid=$(field Gid)
# systemd's own registry of dynamic users (without libnss-systemd, ps shows only the number).
user=$(ct_exec c busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 \
    org.freedesktop.systemd1.Manager LookupDynamicUserByUID u "$uid")
[ "$user" = 's "app"' ] || fail "uid $uid of PID $pid is not the dynamic user app: $user"
if [ "$uid" -lt 61184 ] || [ "$uid" -gt 65519 ]; then fail "uid $uid is not a dynamic user's"; fi
[ "$(awk -v k=Uid: '$1 == k { print $2 $3 $4 $5 }' <<<"$status")" = "$uid$uid$uid$uid" ] || fail "mixed uids"
[ "$(field CapEff)$(field CapBnd)" = 00000000000000000000000000000000 ] || fail "capabilities left"
[ "$(field NoNewPrivs)" = 1 ] || fail "NoNewPrivs is not set"
[ "$(field Seccomp)" = 2 ] || fail "no seccomp filter"
note "PID $pid: user app (uid $uid), no capabilities, no_new_privs, seccomp filter"

# A shell in the instance's own mount namespace, as its user, tries to write.
as_app() { ct_exec c nsenter -t "$pid" -m -U -S "$uid" -G "$gid" -- sh -c "$1" 2>/dev/null; }
for dir in /etc /usr/local/bin /var/lib /var/log /var/cache /root /home /opt /srv /run /dev/shm /dev/mqueue; do
    if as_app "echo x > $dir/app-probe"; then fail "the instance can write to $dir"; fi
done
as_app 'echo x > /var/lib/app/probe' || fail "the instance cannot write to its state directory"
[ "$(ct_exec c stat -c %u /var/lib/private/app/probe)" = "$uid" ] || fail "state file not owned by the dynamic user"
as_app 'echo x > /tmp/probe' || fail "the instance has no /tmp"
ct_exec c test ! -e /tmp/probe || fail "the instance's /tmp is not private"
note "writes refused outside /var/lib/app; the state directory is writable, /tmp is private"
report 1 0
