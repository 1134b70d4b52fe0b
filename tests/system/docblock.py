#!/usr/bin/env python3
"""Prints the shell blocks of a Markdown file marked `<!-- run: NAME -->` (the line just before
the fence), in order, so a test runs the documentation exactly as written.

    tests/system/docblock.py FILE NAME      fails when no block has that name
    tests/system/docblock.py FILE --list    the names, one a line
"""
import re
import sys

MARK = re.compile(r"^<!-- run: ([\w-]+) -->$")


def blocks(path):
    lines = open(path, encoding="utf-8").read().splitlines()
    for i, line in enumerate(lines):
        mark = MARK.match(line.strip())
        if not mark:
            continue
        fence = lines[i + 1] if i + 1 < len(lines) else ""
        if fence.strip() != "```sh":
            sys.exit(f"{path}:{i + 2}: a `run:` mark must be followed by a ```sh block")
        end = next((j for j in range(i + 2, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            sys.exit(f"{path}:{i + 2}: unterminated block")
        yield mark.group(1), i + 3, lines[i + 2:end]


def main():
    path, name = sys.argv[1], sys.argv[2]
    found = list(blocks(path))
    if name == "--list":
        print("\n".join(dict.fromkeys(n for n, _, _ in found)))
        return
    chosen = [(start, body) for n, start, body in found if n == name]
    if not chosen:
        sys.exit(f"{path}: no block marked `run: {name}`")
    for start, body in chosen:
        print(f"# {path}:{start}")
        print("\n".join(body))


main()
