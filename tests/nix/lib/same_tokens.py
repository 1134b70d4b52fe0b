"""Two nginx configuration texts are the same directives: equal once comments are dropped and
whitespace is collapsed (the nixpkgs module and tests/nix/nginx-conf.nix indent differently).

    python3 same_tokens.py EXPECTED GOT
"""
import re
import sys


def tokens(path):
    text = re.sub(r"#[^\n]*", "", open(path).read())
    return re.findall(r"[{};]|[^\s{};]+", text)


expected, got = tokens(sys.argv[1]), tokens(sys.argv[2])
if expected != got:
    at = next(i for i, (a, b) in enumerate(zip(expected + [None], got + [None])) if a != b)
    print(f"{sys.argv[2]} differs from {sys.argv[1]} at token {at}:\n"
          f"  expected: {' '.join(map(str, expected[max(0, at - 8):at + 8]))}\n"
          f"  got:      {' '.join(map(str, got[max(0, at - 8):at + 8]))}", file=sys.stderr)
    sys.exit(1)
print(f"ok {sys.argv[2]}: the same {len(got)} tokens as {sys.argv[1]}")
