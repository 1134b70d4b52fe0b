#!/usr/bin/env bash
# Checks of the Nix side (flake.nix, nixos/) that run on a plain Debian, as root, without
# nixpkgs: parse, lint, format, the module's pure functions, the unit files vs the package, the
# nginx site the module generates (nginx -t, and the same policy as nginx/sites-available), the
# VM tests' Python scripts (pyflakes and static checks), and `nix flake check --no-build` with a
# stand-in nixpkgs. The VM tests themselves need NixOS or Nix with a binary cache.
#
#   tests/nix/run.sh
#
# Installs what is missing: nix-bin (apt), deadnix and nixpkgs-fmt (cargo, into ~/.cargo/bin),
# pyflakes (Debian's python3-pyflakes).
set -uo pipefail

cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH:/usr/sbin:/sbin"
failures=()

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; failures+=("$*"); }

# ---- tools -------------------------------------------------------------------------------------
source tests/lib/deps.sh
need_packages nix-bin nginx python3 python3-pyflakes || { echo "cannot install the Nix check tools" >&2; exit 2; }
for tool in deadnix nixpkgs-fmt; do
    if ! command -v "$tool" >/dev/null; then
        # A debug build: these lint a few dozen small files, and an optimised build of them
        # costs a fresh CI machine minutes for nothing.
        step "installing $tool (cargo install --locked --debug)"
        cargo install --locked --debug --quiet "$tool" || { echo "cannot install $tool" >&2; exit 2; }
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
step "nixos/lib.nix: the module's pure functions (tests/nix/lib-test.nix)"
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

# ---- generated nginx configuration -------------------------------------------------------------
# render LAYOUT NGINX_DIR [WRAP PREFIX]: the site the module generates (tests/nix/nginx-conf.nix).
render() {
    eval_json tests/nix/nginx-conf.nix --argstr layout "$1" --argstr nginxDir "$2" \
        ${3:+--arg wrap "$3" --argstr prefix "$4"} | python3 -c 'import json,sys; sys.stdout.write(json.load(sys.stdin))'
}
# Every configuration of tests/nix/layouts.nix.
mapfile -t LAYOUTS < <(eval_json tests/nix/layouts.nix | python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin)))')
step "nginx -t on the sites the module generates (tests/nix/nginx-conf.nix: ${LAYOUTS[*]})"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/tmp"
for layout in "${LAYOUTS[@]}"; do
    if ! render "$layout" "$PWD/nginx" true "$tmp" >"$tmp/$layout.conf"; then
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

# tests/nix/fixtures: the same configurations as rendered by the nixpkgs nginx module itself
# (captured with nixpkgs.lib and the module's source outside this repository: docs/nixos.md).
step "tests/nix/nginx-conf.nix writes what the nixpkgs nginx module writes (tests/nix/fixtures)"
for layout in "${LAYOUTS[@]}"; do
    render "$layout" @nginxDir@ >"$tmp/fixture-$layout" &&
        python3 tests/nix/lib/same_tokens.py "tests/nix/fixtures/nginx-$layout.conf" "$tmp/fixture-$layout" ||
        fail "nginx-conf.nix $layout differs from the nixpkgs module's rendering"
done

# tests/nix/fixtures/units-nspawn-layout.json: what the nixpkgs systemd module generates for the
# configuration tests/nix/nspawn-layout.nix models (captured outside this repository, like the
# nginx fixtures), so the layout nspawn-layout.sh boots is the one NixOS would write.
step "tests/nix/nspawn-layout.nix writes the drop-ins, links and env files the nixpkgs systemd module writes"
if eval_json tests/nix/nspawn-layout.nix --arg workers 2 >"$tmp/nspawn-layout.json"; then
    python3 tests/nix/lib/units_agree.py tests/nix/fixtures/units-nspawn-layout.json "$tmp/nspawn-layout.json" ||
        fail "tests/nix/nspawn-layout.nix and the nixpkgs systemd module's units differ"
else
    fail "nspawn-layout.nix"
fi

step "the Debian layouts (nginx/sites-available) and the module proxy every path alike"
for l in a b; do
    render "layout-$l" /etc/nginx >"$tmp/module-$l" &&
        python3 tests/nix/lib/nginx_agree.py "nginx/sites-available/app-layout-$l" "$tmp/module-$l" ||
        fail "nginx/sites-available/app-layout-$l and the module's layout-$l differ"
done

# ---- the VM tests' scripts ---------------------------------------------------------------------
step "VM test scripts parse, pass pyflakes and the static checks (tests/nix/test-scripts.nix)"
scripts=$tmp/scripts
mkdir -p "$scripts"
if eval_json tests/nix/test-scripts.nix >"$tmp/tests.json" && python3 -c '
import ast, json, sys
for name, src in json.load(open(sys.argv[1]))["scripts"].items():
    ast.parse(src, filename=name)
    open(sys.argv[2] + "/" + name[:-4] + ".py", "w").write(src)
    print("ok", name)
' "$tmp/tests.json" "$scripts"; then
    # The names the NixOS test driver defines for a script.
    PYFLAKES_BUILTINS=machine,proxy,backend1,backend2,client,start_all,join_all,subtest,retry,polling_condition,serial_stdout_on,serial_stdout_off,driver,log \
        "${PYFLAKES[@]}" "$scripts"/*.py || fail "pyflakes on the VM test scripts"
    python3 tests/nix/lib/vm_checks.py "$tmp/tests.json" nixos/tests/*.nix || fail "static checks of the VM tests"
else
    fail "VM test scripts"
fi
# Helper programs the VM tests install (nixos/tests/*.py, e.g. the chat clients).
mapfile -t VM_PY < <(find nixos/tests -name '*.py' | sort)
if [ ${#VM_PY[@]} -gt 0 ]; then
    "${PYFLAKES[@]}" "${VM_PY[@]}" && echo "ok ${VM_PY[*]}" || fail "pyflakes ${VM_PY[*]}"
fi

# ---- the flake -----------------------------------------------------------------------------------
# Every output evaluates (packages, checks with every VM test file, nixosModules, devShells, apps),
# with a stand-in for the nixpkgs input: this machine cannot fetch nixpkgs. No lock file is written.
step "nix flake check --no-build (nixpkgs: tests/nix/standin-nixpkgs)"
flake() { nix --extra-experimental-features 'nix-command flakes' "$@" --no-write-lock-file --override-input nixpkgs "path:$PWD/tests/nix/standin-nixpkgs"; }
if out=$(flake flake check --no-build 2>&1); then echo "ok"; else fail "nix flake check: $out"; fi
module=$(flake eval --json .#nixosModules.default --apply 'm: { key = m.key or null; file = m._file or null; }' 2>/dev/null)
python3 -c 'import json,sys; m=json.loads(sys.argv[1]); assert m["key"] and m["file"].endswith("/nixos/module.nix"), m; print("ok nixosModules.default: key", m["key"])' "$module" ||
    fail "nixosModules.default has no key/_file: $module"

if [ ${#failures[@]} -eq 0 ]; then
    printf '\nall checks passed in %d s\n' "$SECONDS"
else
    printf '\n%d FAILED in %d s:\n' "${#failures[@]}" "$SECONDS"
    printf '  %s\n' "${failures[@]}"
fi
[ ${#failures[@]} -eq 0 ]
