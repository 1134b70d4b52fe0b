"""Static checks of the VM tests (nixos/tests/*.nix), for mistakes that make a test pass or fail
by chance, which `nix flake check` cannot be run here to show:

- machine.fail("X | grep ...") (or wait_until_fails): the driver runs commands under pipefail,
  so it also passes when X itself fails; read the output with succeed() and check it in Python.
- a remote backend named by host name: the test network's /etc/hosts gives every node an IPv4
  and an IPv6 address, and nginx makes each a server of its own; use the node's
  networking.primaryIPAddress.
- a file a load loop rewrites with `>` (truncate, then write) and the script reads: a read can
  see it empty; write a temporary file and rename it into place.

    python3 vm_checks.py TEST_SCRIPTS_JSON NIX_FILE...
"""
import ast
import json
import re
import sys

IPV4_BACKEND = re.compile(r"(\d{1,3}\.){3}\d{1,3}:\d+")


def strings(node):
    """The literal text of a str constant or an f-string."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(strings(v) if not isinstance(v, ast.FormattedValue) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return strings(node.left) + strings(node.right)
    return ""


def main():
    tests = json.load(open(sys.argv[1]))
    errors = []
    for name, script in tests["scripts"].items():
        for call in ast.walk(ast.parse(script, filename=name)):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) \
                    and call.func.attr in ("fail", "wait_until_fails"):
                for arg in call.args:
                    if "|" in strings(arg):
                        errors.append(f"{name}:{call.lineno}: {call.func.attr}() of a pipeline passes when its first command fails: {strings(arg)!r}")
        for backend in tests["backends"].get(name, []):
            if not IPV4_BACKEND.fullmatch(backend):
                errors.append(f"{name}: backend {backend!r} is not an IPv4 address (a host name gives nginx an IPv6 server too)")
        reads = {m.replace("{name}", "$name") for m in re.findall(r"cat (/tmp/[^\s\"')]+)", script)}
        for nix_file in sys.argv[2:]:
            if not nix_file.endswith("/" + name):
                continue
            for target in re.findall(r"(?<!>)>(?!>)\s*\"?(/tmp/[^\s\"]+)", open(nix_file).read()):
                if target in reads:
                    errors.append(f"{name}: {target} is read by the test script while a loop rewrites it with '>'; write {target}.new and mv it")
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        sys.exit(1)
    print(f"ok: {len(tests['scripts'])} scripts: no fail() of a pipeline, backends by IPv4 address, no counter read mid-rewrite")


main()
