# shellcheck shell=bash
# Sourced by a runner of containers (tests/system/run.sh; any other script that boots the
# system tests' containers can do the same): harness_setup NAME prepares the release binary,
# the cached root filesystem, a tmpfs work directory and nspawn's tmpfs, and loads the helper
# libraries; harness_cleanup (from a trap EXIT) stops every container and namespace and
# unmounts what harness_setup mounted. Needs REPO.

harness_setup() {
    local name=$1
    HERE=$REPO/tests/system
    [ "$(id -u)" = 0 ] || { echo "$name: needs root (containers, mounts, network namespaces)" >&2; exit 1; }
    "$HERE/deps.sh"
    if [ -z "${APP_BIN:-}" ]; then
        (cd "$REPO" && cargo build --release --quiet)
        APP_BIN=$REPO/target/release/app
    fi
    [ -x "$APP_BIN" ] || { echo "$name: no binary at $APP_BIN" >&2; exit 1; }
    APP_BIN=$(readlink -f "$APP_BIN")
    ROOTFS=$("$HERE/rootfs.sh")

    WORK=$(mktemp -d "/var/tmp/$name.XXXXXX")
    mount -t tmpfs -o mode=0700 "$name" "$WORK"
    mkdir -p "$WORK/ct" "$WORK/out"
    # /run is not a tmpfs on every host; nspawn keeps its propagation mounts and locks in
    # /run/systemd/nspawn, so it gets a tmpfs, shared by every run of this harness going on at
    # once: mounted under an exclusive lock, used under a shared one, unmounted by the last run.
    exec {HARNESS_LOCK}>>/var/tmp/app-system-tests.lock
    flock -x "$HARNESS_LOCK"
    if ! mountpoint -q /run/systemd/nspawn 2>/dev/null; then
        mkdir -p /run/systemd/nspawn
        mount -t tmpfs app-nspawn /run/systemd/nspawn
    fi
    flock -s "$HARNESS_LOCK"
    export REPO HERE WORK ROOTFS APP_BIN

    harness_libs
}

# harness_libs: load the helper libraries (also used by lib/scenario.sh).
harness_libs() {
    # shellcheck source=common.sh
    . "$HERE/lib/common.sh"
    # shellcheck source=container.sh
    . "$HERE/lib/container.sh"
    # shellcheck source=netns.sh
    . "$HERE/lib/netns.sh"
    # shellcheck source=app.sh
    . "$HERE/lib/app.sh"
}

harness_cleanup() {
    set +e
    ct_cleanup_all
    netns_cleanup_all
    umount "$WORK" 2>/dev/null || umount -l "$WORK"
    rmdir "$WORK"
    if flock -x -n "$HARNESS_LOCK" &&
        [ "$(findmnt -n -o SOURCE /run/systemd/nspawn 2>/dev/null)" = app-nspawn ]; then
        umount /run/systemd/nspawn
    fi
    return 0
}
