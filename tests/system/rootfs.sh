#!/usr/bin/env bash
# Build (once) and print the path of a cached Debian root filesystem for the system tests.
# The container boots a real systemd from it; the repo's units, nginx config and binary are
# added per container on an overlay, so this tree never changes after it is built.
# Mirror: read from the host's apt sources (deb822 or one-line), never written in the repo.
set -euo pipefail

PACKAGES=systemd,systemd-sysv,dbus,nginx,iproute2,curl,procps,redis-server,man-db
SUITE=${APP_TEST_SUITE:-bookworm}
CACHE=${APP_TEST_CACHE:-/var/cache/app-tests}
KEY=$(printf '%s %s v1' "$SUITE" "$PACKAGES" | sha256sum | cut -c1-12)
ROOT=$CACHE/rootfs-$KEY

mirror() {
    local f
    # deb822: the URIs of a stanza whose Suites name the plain suite (not -security/-updates).
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -e "$f" ] || continue
        awk -v s="$SUITE" '
            /^[[:space:]]*$/ { if (u != "" && ok) print u; u = ""; ok = 0; next }
            /^URIs:/   { u = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) ok = 1 }
            END        { if (u != "" && ok) print u }' "$f"
    done
    # one-line format
    { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } |
        awk -v s="$SUITE" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($(i+1) == s) print $i; break } }'
}

if [ ! -e "$ROOT/.complete" ]; then
    url=$(mirror | head -n1) || true
    [ -n "$url" ] || { echo "rootfs: no apt mirror for $SUITE found in /etc/apt" >&2; exit 1; }
    command -v mmdebstrap >/dev/null || apt-get install -y mmdebstrap >&2
    rm -rf "$ROOT" "$ROOT.tmp"
    mkdir -p "$CACHE"
    echo "rootfs: building $ROOT from $SUITE (first run only)" >&2
    mmdebstrap --quiet --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT.tmp" "$url" >&2
    # Each container gets a fresh machine id at boot; an empty file tells systemd to make one.
    : > "$ROOT.tmp/etc/machine-id"
    touch "$ROOT.tmp/.complete"
    mv "$ROOT.tmp" "$ROOT"
fi
echo "$ROOT"
