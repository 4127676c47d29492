#!/usr/bin/env python3
"""node-engines.py VERSION LOCKFILE...: exits 0 when Node VERSION satisfies the `engines.node` range of every
package in the npm lock files, else prints each range it misses (with the package) and exits 1.
Understands the range forms npm packages use: comparators (>=, >, <=, <, =), x-ranges (10.x, 6.*), ^ and ~,
spaces for "and" and || for "or"."""
import json
import re
import sys


def parse(v):
    parts = re.findall(r"\d+|[x*]", v)
    return [p for p in parts[:3]]


def key(parts):
    return tuple(int(p) if p.isdigit() else 0 for p in (parts + ["0", "0", "0"])[:3])


def satisfies_comparator(have, comp):
    comp = comp.strip()
    if comp in ("", "*", "x"):
        return True
    m = re.match(r"^(>=|<=|>|<|=|\^|~)?\s*v?([\dx*.]+)", comp)
    if not m:
        return True  # a form this script does not know: not its place to refuse
    op, ver = m.group(1) or "", parse(m.group(2))
    wild = [i for i, p in enumerate(ver) if not p.isdigit()]
    fixed = ver[: wild[0]] if wild else ver
    h = key(have)
    if op in ("", "=") and (wild or len(ver) < 3):  # x-range: 10.x, 6.*, 22
        return list(h[: len(fixed)]) == [int(p) for p in fixed]
    lo = key(fixed)
    if op == "^":
        first = next((i for i, p in enumerate(lo) if p != 0), 2)
        up = list(lo[: first + 1]); up[first] += 1
        return lo <= h < key([str(p) for p in up])
    if op == "~":
        up = [lo[0], lo[1] + 1, 0] if len(fixed) > 1 else [lo[0] + 1, 0, 0]
        return lo <= h < tuple(up)
    return {">=": h >= lo, ">": h > lo, "<=": h <= lo, "<": h < lo, "=": h == lo, "": h == lo}[op]


def satisfies(have, rng):
    for alt in rng.split("||"):
        comps = re.findall(r"(?:>=|<=|>|<|=|\^|~)?\s*v?[\dx*.]+|\*", alt)
        if all(satisfies_comparator(have, c) for c in comps):
            return True
    return False


def main():
    have = parse(sys.argv[1]) if re.match(r"^\d", sys.argv[1]) else None
    misses = []
    for lock in sys.argv[2:]:
        with open(lock) as f:
            packages = json.load(f).get("packages", {})
        for name, pkg in packages.items():
            rng = (pkg.get("engines") or {}).get("node") if isinstance(pkg.get("engines"), dict) else None
            if rng and (have is None or not satisfies(have, rng)):
                misses.append(f"{name or lock}: node {rng} ({lock})")
    print("\n".join(misses))
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
