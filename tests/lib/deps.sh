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
# (rustc 1.63) is older than the locked dependencies allow, so a missing or older toolchain is
# installed with rustup (the README's way: rustup's own installer, into ~/.cargo), and this shell
# then finds it on PATH.
need_rust() {
  local wanted cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
  wanted=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
  [ -d "$cargo_bin" ] && PATH="$cargo_bin:$PATH"
  if ! rust_at_least "$wanted"; then
    echo "Rust >= $wanted needed (found: $(rustc --version 2>/dev/null || echo none)): installing stable with rustup"
    if command -v rustup >/dev/null; then
      # For this run only: the machine's default toolchain stays what its owner chose.
      rustup toolchain install stable --profile minimal --component clippy,rustfmt && export RUSTUP_TOOLCHAIN=stable
    else
      need_packages curl ca-certificates build-essential &&
        curl --proto '=https' -sSf https://sh.rustup.rs |
        sh -s -- -y --profile minimal --component clippy,rustfmt
    fi || { echo "cannot install Rust with rustup" >&2; return 1; }
    PATH="$cargo_bin:$PATH"
    rust_at_least "$wanted" || { echo "rustup did not give Rust >= $wanted" >&2; return 1; }
  fi
  export PATH
  echo "$(rustc --version) (>= $wanted)"
}

# rust_at_least VERSION: whether the rustc on PATH is at least VERSION.
rust_at_least() {
  local have
  have=$(rustc --version 2>/dev/null | awk '{ print $2 }')
  [ -n "$have" ] && [ "$(printf '%s\n%s\n' "$1" "$have" | sort -V | head -n1)" = "$1" ]
}

# need_npm_clients: the npm packages the Rust tests named "npm" drive (tests/socketio: the real
# socket.io-client, pinned in its package-lock.json), installed exactly as locked. npm comes with
# NodeSource's nodejs; Debian's own nodejs needs its npm package.
need_npm_clients() {
  command -v npm >/dev/null || need_packages npm
  npm ci --prefix tests/socketio --no-audit --no-fund --loglevel=error
}
