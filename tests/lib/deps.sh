# Sourced by the test scripts: installs Debian packages that are missing (apt-get update once).

# What the whole suite uses; each script may need a subset.
TEST_PACKAGES=(
  systemd          # systemd-socket-activate for the activation test
  curl jq iproute2 procps
  nginx redis-server
  chromium chromium-driver       # the page at / in a real browser (tests/browser.rs, WebDriver)
  systemd-container mmdebstrap   # a real systemd as PID 1 in a container
  nix-bin python3-pyflakes       # parsing, evaluating and linting the Nix side
  zsh fish man-db                # the completions in real shells, the manual page through man(1)
                                 # (prometheus: tests/monitoring.sh takes promtool from Debian's
                                 # package with apt-get download, unpacked, as installing it would
                                 # start a Prometheus server on the test machine)
  wrk nodejs                     # bench/run.sh: the load tool and the Node stack it compares with
                                 # (npm: installed by bench/run.sh when no npm command exists, as
                                 # NodeSource's nodejs package carries its own and conflicts)
)

need_packages() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "the test command installs packages and boots containers: run it as root" >&2
    return 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# need_rust: a Rust toolchain at least as new as Cargo.toml's rust-version. Debian 12's own cargo
# (rustc 1.63) is older than the locked dependencies allow, so this is rustup's, which the test
# command does not install behind the user's back: it says how.
need_rust() {
  local wanted have
  wanted=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
  have=$(rustc --version 2>/dev/null | awk '{ print $2 }') || true
  if [ -z "$have" ] || [ "$(printf '%s\n%s\n' "$wanted" "$have" | sort -V | head -n1)" != "$wanted" ]; then
    echo "needs Rust >= $wanted (found: ${have:-none}); install it with rustup:" >&2
    echo "  curl --proto '=https' -sSf https://sh.rustup.rs | sh -s -- -y && . \"\$HOME/.cargo/env\"" >&2
    return 1
  fi
  echo "rustc $have (>= $wanted)"
}

# need_npm_clients: the npm packages the Rust tests named "npm" drive (tests/socketio: the real
# socket.io-client, pinned in its package-lock.json), installed exactly as locked. npm comes with
# NodeSource's nodejs; Debian's own nodejs needs its npm package.
need_npm_clients() {
  command -v npm >/dev/null || need_packages npm
  npm ci --prefix tests/socketio --no-audit --no-fund --loglevel=error
}
