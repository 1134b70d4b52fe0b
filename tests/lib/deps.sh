# Sourced by the test scripts: installs Debian packages that are missing (apt-get update once).

# What the whole suite uses; each script may need a subset.
TEST_PACKAGES=(
  systemd          # systemd-socket-activate for the activation test
  curl jq iproute2 procps
  nginx redis-server
  chromium chromium-driver       # the page at / in a real browser (tests/browser.rs, WebDriver)
  systemd-container mmdebstrap   # a real systemd as PID 1 in a container
  nix-bin python3-pyflakes       # parsing, evaluating and linting the Nix side
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
