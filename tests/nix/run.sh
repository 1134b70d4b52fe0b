#!/usr/bin/env bash
# Checks of the Nix side (flake.nix, nixos/) that run on a plain Debian, as root, without
# nixpkgs: parse, lint, format, the builtins-only logic tests, the unit files vs the package,
# the generated nginx configuration (nginx -t), and the VM tests' Python scripts.
# The VM tests themselves need NixOS or Nix with a binary cache: `nix flake check`.
#
#   tests/nix/run.sh
#
# Installs what is missing: nix-bin (apt), deadnix and nixpkgs-fmt (cargo, into ~/.cargo/bin),
# pyflakes (Debian's python3-pyflakes).
# With APP_NIXPKGS_LIB=/path/to/nixpkgs/lib it also evaluates the module, the VM tests' nodes and
# the flake with lib.evalModules (tests/nix/eval-module.nix).
set -uo pipefail

cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH:/usr/sbin:/sbin"
failures=()

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; failures+=("$*"); }

# ---- tools -------------------------------------------------------------------------------------
source tests/lib/deps.sh
need_packages nix-bin python3 python3-pyflakes || { echo "cannot install the Nix check tools" >&2; exit 2; }
for tool in deadnix nixpkgs-fmt; do
    if ! command -v "$tool" >/dev/null; then
        step "installing $tool (cargo install --locked)"
        cargo install --locked --quiet "$tool" || { echo "cannot install $tool" >&2; exit 2; }
    fi
done
# Debian's interpreter, where python3-pyflakes installs (another python3 may come first on PATH).
PYFLAKES=(/usr/bin/python3 -m pyflakes)

eval_json() { nix-instantiate --eval --strict --json "$@"; }

mapfile -t NIX_FILES < <(find . \( -path ./.git -o -path ./target -o -path ./.cache \) -prune -o -name '*.nix' -print | sort)

# ---- every .nix file parses --------------------------------------------------------------------
step "nix-instantiate --parse (${#NIX_FILES[@]} files)"
for f in "${NIX_FILES[@]}"; do
    nix-instantiate --parse "$f" >/dev/null || fail "parse $f"
done

# ---- lint and format ---------------------------------------------------------------------------
step "deadnix --fail"
deadnix --fail "${NIX_FILES[@]}" || fail "deadnix"

step "nixpkgs-fmt --check"
nixpkgs-fmt --check "${NIX_FILES[@]}" || fail "nixpkgs-fmt (run: nixpkgs-fmt ${NIX_FILES[*]})"

# ---- the builtins-only logic -------------------------------------------------------------------
step "nixos/lib.nix unit tests (tests/nix/lib-test.nix)"
if out=$(eval_json tests/nix/lib-test.nix); then
    python3 -c 'import json,sys; print("passed:", json.load(sys.stdin)["passed"], "cases")' <<<"$out"
else
    fail "lib-test.nix"
fi

step "unit files: systemd/ as the package installs them (tests/nix/units-test.nix)"
if out=$(eval_json tests/nix/units-test.nix); then
    python3 -c 'import json,sys; d=json.load(sys.stdin); print("passed:", d["passed"], "checks on", ", ".join(d["files"]))' <<<"$out"
else
    fail "units-test.nix"
fi
grep -q 'install -m 0644 systemd/\* ' nixos/package.nix || fail "nixos/package.nix no longer installs every file of systemd/"

# ---- generated nginx configuration -------------------------------------------------------------
step "nginx -t on the configurations nixos/lib.nix generates (tests/nix/nginx-conf.nix)"
if command -v nginx >/dev/null; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp/tmp"
    for layout in layout-a layout-b proxy; do
        if ! eval_json tests/nix/nginx-conf.nix --argstr layout "$layout" --argstr prefix "$tmp" |
            python3 -c 'import json,sys; sys.stdout.write(json.load(sys.stdin))' >"$tmp/$layout.conf"; then
            fail "nginx-conf.nix $layout"
            continue
        fi
        # Warnings count: "load balancing method redefined" silently disables keepalive.
        if ! msg=$(nginx -t -q -c "$tmp/$layout.conf" -p "$tmp/" -g "error_log $tmp/error.log;" 2>&1) || [ -n "$msg" ]; then
            fail "nginx -t $layout: $msg"
        else
            echo "ok $layout"
        fi
    done
else
    echo "skipped: no nginx binary (apt-get install nginx to check the generated configuration)"
fi

# ---- the VM tests' scripts ---------------------------------------------------------------------
step "VM test scripts parse${PYFLAKES:+ and pass pyflakes} (tests/nix/test-scripts.nix)"
scripts=$(mktemp -d)
if eval_json tests/nix/test-scripts.nix | python3 -c '
import ast, json, sys
for name, src in json.load(sys.stdin).items():
    ast.parse(src, filename=name)
    open(sys.argv[1] + "/" + name[:-4] + ".py", "w").write(src)
    print("ok", name)
' "$scripts"; then
    if [ ${#PYFLAKES[@]} -gt 0 ]; then
        # The names the NixOS test driver defines for a script.
        PYFLAKES_BUILTINS=machine,proxy,backend1,backend2,client,start_all,join_all,subtest,retry,polling_condition,serial_stdout_on,serial_stdout_off,driver,log \
            "${PYFLAKES[@]}" "$scripts"/*.py || fail "pyflakes on the VM test scripts"
    fi
else
    fail "VM test scripts"
fi
rm -rf "$scripts"
# Helper programs the VM tests install (nixos/tests/*.py, e.g. the chat clients).
mapfile -t VM_PY < <(find nixos/tests -name '*.py' | sort)
if [ ${#VM_PY[@]} -gt 0 ]; then
    "${PYFLAKES[@]}" "${VM_PY[@]}" && echo "ok ${VM_PY[*]}" || fail "pyflakes ${VM_PY[*]}"
fi

# ---- optional: the module against the nixpkgs library --------------------------------------------
if [ -n "${APP_NIXPKGS_LIB:-}" ]; then
    step "lib.evalModules with $APP_NIXPKGS_LIB (tests/nix/eval-module.nix)"
    eval_json tests/nix/eval-module.nix --arg nixpkgsLib "$APP_NIXPKGS_LIB" >/dev/null && echo ok || fail "eval-module.nix"
else
    step "skipped: lib.evalModules (set APP_NIXPKGS_LIB to a nixpkgs lib/ directory)"
fi

if [ ${#failures[@]} -eq 0 ]; then
    printf '\nall checks passed in %d s\n' "$SECONDS"
else
    printf '\n%d FAILED in %d s:\n' "${#failures[@]}" "$SECONDS"
    printf '  %s\n' "${failures[@]}"
fi
[ ${#failures[@]} -eq 0 ]
