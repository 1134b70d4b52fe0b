#!/usr/bin/env bash
# Builds the Debian package of app with dpkg-deb, from a release binary and the repository's
# units, nginx files, docs and monitoring files; prints the path of the .deb.
#
#   packaging/debian/build.sh [BINARY [OUT_DIR]]   (default: target/release/app, target/debian)
#   APP_DEB_VERSION=0.1.0+1 packaging/debian/build.sh   another package version than Cargo.toml's
#
# Why a script and not cargo-deb: the package is mostly not Rust (units whose paths are rewritten,
# nginx conffiles, maintainer scripts that must start nothing on install and clean up on purge),
# which cargo-deb would take as a list of assets and templates of its own; and cargo-deb would
# be compiled on every fresh CI machine, while dpkg-deb is on every Debian system already.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$REPO/packaging/debian
BIN=$(readlink -f "${1:-$REPO/target/release/app}")
OUT=${2:-$REPO/target/debian}
[ -x "$BIN" ] || { echo "build.sh: no binary at $BIN (cargo build --release)" >&2; exit 1; }

VERSION=${APP_DEB_VERSION:-$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -n1)}
ARCH=$(dpkg --print-architecture)
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
umask 022

# The binary, stripped as Debian ships binaries.
install -D -m 0755 "$BIN" "$STAGE/usr/bin/app"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$STAGE/usr/bin/app"

# Units, with the packaged binary's path (they name /usr/local/bin/app for a hand install).
mkdir -p "$STAGE/lib/systemd/system"
for unit in "$REPO"/systemd/*; do
    sed 's|/usr/local/bin/app|/usr/bin/app|g' "$unit" > "$STAGE/lib/systemd/system/$(basename "$unit")"
done
if grep -rq /usr/local "$STAGE/lib/systemd/system"; then
    echo "build.sh: a unit still names /usr/local" >&2
    exit 1
fi

# nginx: beside the distribution's nginx.conf; conffiles, so local edits survive upgrades.
for dir in conf.d snippets sites-available; do
    install -D -m 0644 -t "$STAGE/etc/nginx/$dir" "$REPO/nginx/$dir"/*
done

# Documentation= of the units names man:app(1) and /usr/share/doc/app/operations.md.
doc=$STAGE/usr/share/doc/app
install -D -m 0644 -t "$doc" "$REPO/README.md" "$REPO/docs/operations.md" "$REPO/docs/monitoring.md"
install -D -m 0644 -t "$doc/examples" "$REPO/monitoring/prometheus.yml" "$REPO/monitoring/alerts.yml" \
    "$REPO/monitoring/grafana-dashboard.json"
install -m 0644 "$HERE/copyright" "$doc/copyright"
mkdir -p "$STAGE/usr/share/man/man1"
"$BIN" man | gzip -9n > "$STAGE/usr/share/man/man1/app.1.gz"
install -d "$STAGE/usr/share/bash-completion/completions" "$STAGE/usr/share/zsh/vendor-completions" \
    "$STAGE/usr/share/fish/vendor_completions.d"
"$BIN" completions bash > "$STAGE/usr/share/bash-completion/completions/app"
"$BIN" completions zsh > "$STAGE/usr/share/zsh/vendor-completions/_app"
"$BIN" completions fish > "$STAGE/usr/share/fish/vendor_completions.d/app.fish"

# Control files. The libc version is the newest glibc symbol version the binary uses.
glibc=$(objdump -T "$STAGE/usr/bin/app" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n1)
mkdir -p "$STAGE/DEBIAN"
(cd "$STAGE" && find etc -type f | sed 's|^|/|' | sort) > "$STAGE/DEBIAN/conffiles"
install -m 0755 "$HERE/postinst" "$HERE/prerm" "$HERE/postrm" "$STAGE/DEBIAN/"
size=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@GLIBC@/$glibc/" -e "s/@SIZE@/$size/" \
    "$HERE/control" > "$STAGE/DEBIAN/control"
(cd "$STAGE" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
    > "$STAGE/DEBIAN/md5sums"

mkdir -p "$OUT"
deb=$OUT/app_${VERSION}_${ARCH}.deb
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$deb" >/dev/null
echo "$deb"
