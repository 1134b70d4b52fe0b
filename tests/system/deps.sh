#!/usr/bin/env bash
# Install the host tools the system tests use, when missing (fresh Debian, as root).
# nginx and systemd themselves run inside the containers, from the cached root filesystem.
set -euo pipefail
source "$(dirname "$0")/../lib/deps.sh"
need_packages mmdebstrap systemd-container iproute2 curl python3 procps util-linux >&2
