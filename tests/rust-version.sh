#!/usr/bin/env bash
# Checks that Cargo.toml's rust-version is what the locked dependencies need: the highest
# `rust-version` among the packages of Cargo.lock. A lower one promises a build that fails
# (Debian 12's rustc 1.63 against dependencies needing 1.89); a higher one refuses compilers that
# would work. Every platform's packages count, as Cargo's rust-version is not per target.
#   tests/rust-version.sh          check (the test command runs this)
#   tests/rust-version.sh --print  print what the lockfile needs
set -euo pipefail
cd "$(dirname "$0")/.."

metadata=$(cargo metadata --format-version 1 --locked)
# Registry packages (source != null: not app itself); "1.80" and "1.80.0" compare equal.
needed=$(jq -r '
    [.packages[] | select(.source != null) | .rust_version // empty]
    | map(split(".") | map(tonumber) | . + [0, 0] | .[0:3]) | max | map(tostring)
    | if .[2] == "0" then .[0:2] else . end | join(".")' <<<"$metadata")
declared=$(jq -r '.packages[] | select(.source == null and .name == "app") | .rust_version' <<<"$metadata")

if [ "${1:-}" = --print ]; then
    echo "$needed"
    exit 0
fi
if [ "$declared" != "$needed" ]; then
    echo "Cargo.toml says rust-version = \"$declared\"; the locked dependencies need $needed" >&2
    exit 1
fi
echo "rust-version $declared: what the locked dependencies need"
