#!/usr/bin/env bash
# The one test command (README, .ci/run): on a fresh Debian machine, as root, installs what the tests
# need and runs every test: format, lint, the Rust tests of the real binary, the Nix checks that run
# without nixpkgs, the Nix package's check phase in a simulated build sandbox, and the system tests
# on a real systemd with a real nginx.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/lib/deps.sh

started=$SECONDS
step() {
  local name=$1
  shift
  printf '\n==> %s\n' "$name"
  local t0=$SECONDS
  "$@"
  printf '<== %s: ok (%ss)\n' "$name" $((SECONDS - t0))
}

step "install packages" need_packages "${TEST_PACKAGES[@]}"
step "Rust toolchain" need_rust
step "rust-version is what the lockfile needs" tests/rust-version.sh
step "format" cargo fmt --all -- --check
step "lint" cargo clippy --locked --all-targets -- -D warnings
step "npm clients of the Socket.IO tests" need_npm_clients
step "rust tests" cargo test --locked
step "monitoring files (promtool, against a real /metrics)" tests/monitoring.sh target/debug/app
step "nix checks" tests/nix/run.sh
step "the Nix package's check phase in a simulated build sandbox" tests/nix/sandbox-check.sh
# That check phase built the release binary (cargo test --release builds the bin target for the
# integration tests, with the same profile as cargo build --release): the system tests run it
# instead of building it a second time.
APP_BIN=$(tests/nix/sandbox-check.sh --print-binary)
export APP_BIN
step "system tests (real systemd, real nginx)" tests/system/run.sh
step "the NixOS module's unit layout on a real systemd" tests/nix/nspawn-layout.sh
printf '\nall tests passed in %ss\n' $((SECONDS - started))
