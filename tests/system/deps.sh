#!/usr/bin/env bash
# Install the host tools the system tests use, when missing (fresh Debian, as root).
# nginx and systemd themselves run inside the containers, from the cached root filesystem.
set -euo pipefail
need=()
for pkg in mmdebstrap systemd-container iproute2 curl python3 procps util-linux; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "deps: installing ${need[*]}" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi
