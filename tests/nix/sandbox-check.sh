#!/usr/bin/env bash
# nixos/package.nix's check phase, run the way the Nix build sandbox runs it, on a plain Debian:
# it passes here exactly when `nix build` (buildRustPackage's cargoCheckHook) would pass.
#
#   tests/nix/sandbox-check.sh
#   tests/nix/sandbox-check.sh --print-binary   # where the check phase leaves its release binary
#
# What the sandbox does, and how this simulates it:
# - crates come from Cargo.lock only, vendored (cargoLock): `cargo vendor --locked` once per
#   Cargo.lock (cached), then cargo runs --frozen with the vendored directory as its registry;
# - the source is the one package.nix's `src` filter keeps, copied into a writable build dir;
# - an unprivileged build user, HOME=/homeless-shelter (missing and not creatable);
# - no network but a loopback that is up (its own network namespace), its own PID namespace
#   (a fresh /proc where the builder is PID 1);
# - no /usr/bin, /usr/sbin (/bin is Debian's link to usr/bin): only /bin/sh; every program
#   comes from PATH, which holds stdenv's tools, cargo and rustc, and the programs of the Debian
#   packages matching package.nix's nativeCheckInputs, nothing else: redis-server, nginx or a
#   browser that the package does not declare cannot be found, even by absolute path;
# - the command is cargoCheckHook's:
#   cargo test -j $NIX_BUILD_CORES --release --target TRIPLE --frozen $cargoTestFlags
#     -- --test-threads=$NIX_BUILD_CORES $checkFlags
#
# The declarations are read from package.nix itself (tests/nix/package-recipe.nix), so a test
# added to the check phase that needs something the sandbox lacks fails here.
# Needs root (namespaces, mounts, the build user). Cache: $APP_TEST_CACHE (/var/cache/app-tests).
set -euo pipefail
trap 'echo "sandbox-check: failed (line $LINENO)" >&2' ERR

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
# shellcheck source=../lib/deps.sh
source tests/lib/deps.sh
need_packages nix-bin util-linux iproute2 python3
[ "$(id -u)" = 0 ] || { echo "sandbox-check: needs root (namespaces, mounts, a build user)" >&2; exit 1; }

CACHE=${APP_TEST_CACHE:-/var/cache/app-tests}
BUILD_USER=app-nixbld
CORES=$(nproc)
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
# A persistent target directory keeps reruns incremental; it changes no verdict.
TARGET=$CACHE/nix-check-target
if [ "${1:-}" = --print-binary ]; then
    echo "$TARGET/$TRIPLE/release/app"
    exit 0
fi
SYSROOT=$(rustc --print sysroot)

# usage: nix_packages_to_debian NAME...: the Debian package whose programs stand for a nixpkgs
# package in nativeCheckInputs. An undeclared name stops the run: add it here once you know
# which Debian package carries the same programs.
nix_packages_to_debian() {
    local name
    for name in "$@"; do
        case $name in
            systemd) echo systemd ;;
            iproute2) echo iproute2 ;;
            util-linux) echo util-linux; echo bsdutils; echo bsdextrautils ;;  # script, col there
            man-db) echo man-db; echo groff-base ;;         # nixpkgs' man finds its groff itself
            fish) echo fish ;;
            zsh) echo zsh ;;
            redis) echo redis-server; echo redis-tools ;;
            *) echo "sandbox-check: nativeCheckInputs has '$name', which this script cannot map to a Debian package" >&2
               return 1 ;;
        esac
    done
}

# What package.nix declares for its check phase, and the files its `src` filter keeps.
tracked=$(git ls-files -z --cached --others --exclude-standard |
    python3 -c 'import json,sys; print(json.dumps([f for f in sys.stdin.read().split("\0") if f]))')
declared=$(nix-instantiate --eval --strict --json tests/nix/package-recipe.nix --argstr files "$tracked" 2>/dev/null)
field() { python3 -c 'import json,sys; v=json.loads(sys.argv[1])[sys.argv[2]]; print("\n".join(v) if isinstance(v, list) else str(v).lower())' "$declared" "$1"; }
if [ "$(field doCheck)" != true ]; then
    echo "sandbox-check: package.nix turns the check phase off (doCheck = false)" >&2
    exit 1
fi
mapfile -t TEST_FLAGS < <(field cargoTestFlags)
mapfile -t CHECK_FLAGS < <(field checkFlags)
mapfile -t NATIVE < <(field nativeCheckInputs)
mapfile -t NATIVE_DEBIAN < <(nix_packages_to_debian "${NATIVE[@]}")
echo "package.nix: cargoTestFlags=(${TEST_FLAGS[*]}) checkFlags=(${CHECK_FLAGS[*]}) nativeCheckInputs=(${NATIVE[*]})"

# The build user, like nixbld1 (no home, no shell, in no other group).
id "$BUILD_USER" >/dev/null 2>&1 ||
    useradd --system --user-group --no-create-home --home-dir /homeless-shelter --shell /usr/sbin/nologin "$BUILD_USER"

# Vendored crates, once per Cargo.lock (what cargoLock fetches before the build).
lock_hash=$(sha256sum Cargo.lock | cut -c1-16)
VENDOR=$CACHE/cargo-vendor/$lock_hash
if [ ! -d "$VENDOR" ]; then
    mkdir -p "$CACHE/cargo-vendor"
    rm -rf "$VENDOR.tmp"
    cargo vendor --locked --quiet --versioned-dirs "$VENDOR.tmp" >/dev/null
    mv "$VENDOR.tmp" "$VENDOR"
fi
chmod -R a+rX "$CACHE/cargo-vendor"

# The build directory: the source as package.nix's filter keeps it, writable by the build user.
ROOT=$(mktemp -d /var/tmp/app-nix-sandbox.XXXXXX)
chmod 0755 "$ROOT"
cleanup() { rm -rf "$ROOT"; }
trap cleanup EXIT
SRC=$ROOT/build/source
mkdir -p "$SRC" "$ROOT/bin" "$ROOT/host" "$ROOT/rust"
# gcc finds its plugins and helpers relative to where it runs from ($ROOT/host/bin/..).
ln -s /usr/lib "$ROOT/host/lib"
ln -s /usr/libexec "$ROOT/host/libexec"
field sourceFiles | tr '\n' '\0' | tar --null -T - -cf - | tar -xf - -C "$SRC"
echo "source: $(find "$SRC" -type f | wc -l) files"
mkdir -p "$SRC/.cargo"
cat >"$SRC/.cargo/config.toml" <<EOF
[source.crates-io]
replace-with = "vendored-sources"
[source.vendored-sources]
directory = "$VENDOR"
EOF
mkdir -p "$TARGET"
chown -R "$BUILD_USER:$BUILD_USER" "$ROOT/build" "$TARGET"

# PATH: one directory of links. The links point at the host's /usr/bin through a bind mount
# ($ROOT/host) made inside the namespace, because /usr/bin itself is hidden there.
# usage: expose PROGRAM_PATH...: link each into $ROOT/bin, resolving alternatives first.
expose() {
    local program real
    for program in "$@"; do
        [ -x "$program" ] && [ ! -d "$program" ] || continue
        real=$(readlink -f "$program")
        case $real in
            /usr/bin/*) real=$ROOT/host/bin/${real#/usr/bin/} ;;
            /usr/sbin/*) real=$ROOT/host/sbin/${real#/usr/sbin/} ;;
        esac
        ln -sfn "$real" "$ROOT/bin/$(basename "$program")"
    done
}
# usage: programs_of DEBIAN_PACKAGE...: the executables a Debian package installs in a bin dir.
programs_of() {
    dpkg -L "$@" 2>/dev/null | grep -E '^(/usr)?/s?bin/[^/]+$' | sort -u
}
# stdenv: coreutils findutils diffutils gnused gnugrep gawk gnutar gzip bzip2 xz gnumake bash
# patch, the C compiler and binutils (the Rust toolchain links with cc).
stdenv_debian=(coreutils findutils diffutils sed grep mawk tar gzip bzip2 xz-utils make bash patch binutils)
mapfile -t stdenv_programs < <(programs_of "${stdenv_debian[@]}")
expose "${stdenv_programs[@]}" /usr/bin/cc /usr/bin/gcc /usr/bin/x86_64-linux-gnu-gcc-* /usr/bin/awk
mapfile -t native_programs < <(programs_of "${NATIVE_DEBIAN[@]}")
expose "${native_programs[@]}"
for tool in cargo rustc rustdoc; do ln -sfn "$ROOT/rust/bin/$tool" "$ROOT/bin/$tool"; done
echo "PATH holds $(find "$ROOT/bin" -mindepth 1 | wc -l) programs (stdenv, cargo, rustc, ${NATIVE[*]})"

# The check phase, as the build user, in its own mount, network and PID namespaces.
cmd=(cargo test -j "$CORES" --release --target "$TRIPLE" --frozen "${TEST_FLAGS[@]}"
    -- --test-threads="$CORES" "${CHECK_FLAGS[@]}")
echo "+ ${cmd[*]}"
export ROOT SYSROOT BUILD_USER TARGET CORES
unshare --mount --net --pid --fork --mount-proc bash -euo pipefail -c '
    ip link set lo up
    mount --bind "$SYSROOT" "$ROOT/rust"
    mkdir -p "$ROOT/host/bin" "$ROOT/host/sbin"
    mount --bind /usr/bin "$ROOT/host/bin"
    mount --bind /usr/sbin "$ROOT/host/sbin"
    host=$ROOT/host/bin
    sh=$(readlink -f /bin/sh)
    # From here on the host programs are reached through $host only. Of /usr/bin, only
    # /bin/sh is left, as in the sandbox.
    "$host/mount" -t tmpfs -o mode=0755 sandbox-usr-bin /usr/bin
    "$host/mount" -t tmpfs -o mode=0755 sandbox-usr-sbin /usr/sbin
    "$host/ln" -s "$host/${sh#/usr/bin/}" /usr/bin/sh
    cd "$ROOT/build/source"
    exec "$host/setpriv" --reuid="$BUILD_USER" --regid="$BUILD_USER" --clear-groups --inh-caps=-all \
        "$host/env" -i PATH="$ROOT/bin" HOME=/homeless-shelter TMPDIR="$ROOT/build" TMP="$ROOT/build" \
        NIX_BUILD_CORES="$CORES" CARGO_TARGET_DIR="$TARGET" TERM=dumb "$@"
' sandbox "${cmd[@]}"
echo "sandbox-check: the package's check phase passed in the simulated build sandbox"
