#!/usr/bin/env python3
"""Instructions per request, grouped by crate, from two callgrind runs.

    callgrind-crates.py FEW.out MANY.out REQUESTS TOP

FEW.out and MANY.out are callgrind outputs of the same program serving a
few and REQUESTS more requests; each function's self cost in MANY minus
its cost in FEW, divided by REQUESTS, is what one request costs there
(start-up and shutdown cancel out). Prints tab-separated lines:

    crate<TAB>NAME<TAB>INSTRUCTIONS_PER_REQUEST
    function<TAB>NAME<TAB>INSTRUCTIONS_PER_REQUEST   (the TOP costliest)

A function's crate is the first path segment of its Rust name (for
`<A as B>::f`, A's crate); C functions are named by their library
(libc, mimalloc, ld.so, ...).
"""

import re
import subprocess
import sys
from collections import defaultdict

LINE = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*?)\s*(?:\[(.*)\])?\s*$")


def self_costs(path):
    """function (with its object file) -> self instructions, from callgrind_annotate."""
    text = subprocess.run(
        ["callgrind_annotate", "--threshold=100", "--auto=no", path],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    costs = {}
    for line in text.splitlines():
        match = LINE.match(line)
        if not match or "PROGRAM TOTALS" in line:
            continue
        count, where, obj = match.groups()
        if ":" not in where:
            continue
        function = where.split(":", 1)[1]
        key = (function, obj or "")
        costs[key] = costs.get(key, 0) + int(count.replace(",", ""))
    return costs


def crate_of(function, obj):
    name = function.strip()
    while name.startswith(("<", "&", "*")) or name.startswith(("mut ", "dyn ", "const ")):
        name = re.sub(r"^(<|&|\*|mut |dyn |const )", "", name)
    if "::" in name:
        segment = name.split("::", 1)[0]
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", segment):
            return segment
    if name.startswith(("mi_", "_mi_")):
        return "mimalloc"
    library = obj.rsplit("/", 1)[-1] if obj else ""
    if library.startswith("libc.so") or library.startswith("libc-"):
        return "libc"
    if library.startswith("ld-linux") or library.startswith("ld-"):
        return "ld.so"
    if library.startswith("vgpreload"):
        return "valgrind"
    if library.startswith("lib"):
        return library.split(".so", 1)[0]
    if name.startswith(("__memcpy", "__memmove", "__memset", "__memcmp", "__strlen")):
        return "libc"
    return "other C or unnamed"


def main():
    few_path, many_path, requests, top = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    few, many = self_costs(few_path), self_costs(many_path)
    per_function = {}
    for key in set(few) | set(many):
        delta = (many.get(key, 0) - few.get(key, 0)) / requests
        if delta:
            per_function[key] = delta
    per_crate = defaultdict(float)
    for (function, obj), cost in per_function.items():
        per_crate[crate_of(function, obj)] += cost
    for crate, cost in sorted(per_crate.items(), key=lambda item: -item[1]):
        print(f"crate\t{crate}\t{cost:.0f}")
    ranked = sorted(per_function.items(), key=lambda item: -item[1])[:top]
    for (function, _obj), cost in ranked:
        print(f"function\t{function}\t{cost:.0f}")


if __name__ == "__main__":
    main()
