# shellcheck shell=bash
# Sourced: boot throw-away containers running a real systemd as PID 1 (systemd-nspawn) with
# the repository's own units and nginx config; see shared/notes/real-systemd.md.
# Needs: REPO, ROOTFS, WORK (a tmpfs), APP_BIN (the release binary).
# Every container leaves its state in $WORK/ct/NAME, so ct_cleanup_all (run from a trap EXIT)
# can stop what a failed scenario left behind.

CT_PREFIX=apptest$$

# ct_path NAME: the merged root of a container, as the host sees it.
ct_path() { echo "$WORK/ct/$1/merged"; }

# ct_prepare NAME NGINX_LAYOUT PORT... : overlay root with units, nginx config and binary.
# NGINX_LAYOUT is a site of nginx/sites-available (app-layout-a, app-layout-b), installed beside
# Debian's own nginx.conf as README's Deploy says. The listed ports get their socket enabled
# (lazy activation).
ct_prepare() {
    local name=$1 layout=$2 root port
    shift 2
    ct_overlay "$name"
    root=$(ct_path "$name")
    install -m 0644 "$REPO"/systemd/app@.socket "$REPO"/systemd/app@.service \
        "$REPO"/systemd/app.target "$REPO"/systemd/app.slice "$root/etc/systemd/system/"
    mkdir -p "$root/etc/systemd/system/sockets.target.wants" "$root/etc/app"
    for port in "$@"; do
        ln -sf ../app@.socket "$root/etc/systemd/system/sockets.target.wants/app@$port.socket"
    done
    nginx_install "$root/etc/nginx" "$layout"
    install -m 0755 "$APP_BIN" "$root/usr/local/bin/app"
    # The units' Documentation=man:app(1), which systemd-analyze verify checks with man(1).
    mkdir -p "$root/usr/local/share/man/man1"
    "$APP_BIN" man > "$root/usr/local/share/man/man1/app.1"
}

# ct_overlay NAME: the bare root filesystem of a container (Debian with nginx, nothing of the
# app), on its own overlay; ct_prepare adds the app, a scenario may install it its own way.
ct_overlay() {
    local dir=$WORK/ct/$1 root
    mkdir -p "$dir/upper" "$dir/work" "$dir/merged"
    mount -t overlay overlay -o "lowerdir=$ROOTFS,upperdir=$dir/upper,workdir=$dir/work" "$dir/merged"
    root=$dir/merged
    # Nothing the tests need from these; they only slow the boot down. Redis runs only where a
    # scenario enables it (redis_enable).
    rm -f "$root"/etc/systemd/system/timers.target.wants/* \
        "$root/etc/systemd/system/multi-user.target.wants/redis-server.service"
    : > "$root/etc/machine-id"
}

# nginx_install ETC_NGINX SITE: the repository's nginx files beside a Debian nginx.conf, SITE
# enabled in place of Debian's default site (both are default_server on port 80).
nginx_install() {
    local etc=$1 site=$2
    # A dangling sites-enabled link would only show as a failed nginx.service after the boot.
    [ -f "$REPO/nginx/sites-available/$site" ] || { echo "nginx_install: no site nginx/sites-available/$site" >&2; return 1; }
    mkdir -p "$etc/conf.d" "$etc/snippets" "$etc/sites-available" "$etc/sites-enabled"
    install -m 0644 "$REPO"/nginx/conf.d/app.conf "$etc/conf.d/"
    install -m 0644 "$REPO"/nginx/snippets/app-*.conf "$etc/snippets/"
    install -m 0644 "$REPO"/nginx/sites-available/app-layout-* "$etc/sites-available/"
    rm -f "$etc/sites-enabled/default"
    ln -sf "../sites-available/$site" "$etc/sites-enabled/app"
}

# ct_boot NAME [NETNS]: boot a prepared container, wait until systemd says it is running.
ct_boot() {
    local name=$1 netns=${2:-} dir=$WORK/ct/$1 unit=$CT_PREFIX-$1 net leader state
    if [ -n "$netns" ]; then net=--network-namespace-path=/run/netns/$netns; else net=--private-network; fi
    mkdir -p "/sys/fs/cgroup/systemd/$unit" "/sys/fs/cgroup/unified/$unit"
    echo "$unit" > "$dir/cgroup"
    (
        echo "$BASHPID" > "/sys/fs/cgroup/systemd/$unit/cgroup.procs"
        echo "$BASHPID" > "/sys/fs/cgroup/unified/$unit/cgroup.procs"
        exec systemd-nspawn --quiet --register=no --keep-unit --link-journal=no \
            --console=read-only -D "$dir/merged" -M "$unit" "$net" \
            --bind-ro="$(dirname "$APP_BIN"):/opt/app" -b >"$dir/console.log" 2>&1
    ) &
    echo $! > "$dir/nspawn.pid"
    # The container's PID 1 is nspawn's child running systemd.
    for _ in $(seq 200); do
        leader=$(ps -o pid=,comm= --ppid "$(cat "$dir/nspawn.pid")" | awk '$2 == "systemd" { print $1 }') || true
        [ -n "$leader" ] && break
        kill -0 "$(cat "$dir/nspawn.pid")" 2>/dev/null || break
        sleep 0.05
    done
    [ -n "$leader" ] || { echo "ct_boot $name: container did not start" >&2; cat "$dir/console.log" >&2; return 1; }
    echo "$leader" > "$dir/leader"
    # systemctl needs PID 1's private bus socket to exist before it can --wait on anything.
    for _ in $(seq 200); do
        [ -S "/proc/$leader/root/run/systemd/private" ] && break
        sleep 0.05
    done
    state=$(timeout 60 nsenter -t "$leader" -a systemctl is-system-running --wait) || true
    if [ "$state" != running ]; then
        echo "ct_boot $name: system is '$state'" >&2
        ct_exec "$name" systemctl --failed --no-pager >&2 || true
        ct_exec "$name" journalctl -b --no-pager -n 80 >&2 || true
        return 1
    fi
}

# ct_exec NAME CMD...: run a command inside the container (all its namespaces).
ct_exec() {
    local name=$1; shift
    nsenter -t "$(cat "$WORK/ct/$name/leader")" -a \
        env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

# ct_net NAME CMD...: run a host command in the container's network namespace only
# (curl, the load tool: traffic never leaves that namespace).
ct_net() {
    local name=$1; shift
    nsenter -t "$(cat "$WORK/ct/$name/leader")" -n "$@"
}

# ct_stop NAME: clean halt, then force; unmount. Safe to call twice.
ct_stop() {
    local name=$1 dir=$WORK/ct/$1 pid unit
    [ -d "$dir" ] || return 0
    pid=$(cat "$dir/nspawn.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    fi
    unit=$(cat "$dir/cgroup" 2>/dev/null || true)
    if [ -n "$unit" ]; then
        echo 1 > "/sys/fs/cgroup/unified/$unit/cgroup.kill" 2>/dev/null || true
        for _ in 1 2 3; do
            cat "/sys/fs/cgroup/systemd/$unit/cgroup.procs" "/sys/fs/cgroup/unified/$unit/cgroup.procs" \
                2>/dev/null | xargs -r kill -9 2>/dev/null || true
            sleep 0.1
        done
        # nested cgroups made by the container's systemd go first (deepest first)
        find "/sys/fs/cgroup/systemd/$unit" "/sys/fs/cgroup/unified/$unit" -depth -type d \
            -exec rmdir {} \; 2>/dev/null || true
    fi
    if [ -n "$pid" ]; then wait "$pid" 2>/dev/null || true; fi
    umount -l "$dir/merged" 2>/dev/null || true
    rm -rf "$dir"
}

ct_cleanup_all() {
    local d
    for d in "$WORK"/ct/*/; do
        [ -d "$d" ] && ct_stop "$(basename "$d")"
    done
    return 0
}
