#!/usr/bin/env python3
"""Every public function is in the shared library.

Reads each AD_API declaration from the public headers and looks the name up
among the dynamic symbols the shared library defines (nm -D). With
gnu_symbol_visibility=hidden, a function declared without AD_API, or whose
definition lost it, links in the static build and silently vanishes from the
shared one: this test fails for it. Also fails for an exported ad_ symbol that
no header declares (an internal name leaking out).

usage: check_exports.py LIBRARY HEADER...
"""
import re
import subprocess
import sys


def declared(headers):
    names = set()
    for path in headers:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        # AD_API <return type> <name>(... ; the type may span words and '*'.
        for m in re.finditer(r"\bAD_API\b([^;{(]*?)\b(ad_\w+)\s*\(", text):
            names.add(m.group(2))
    return names


def exported(library):
    out = subprocess.run(["nm", "-D", "--defined-only", library], check=True,
                         capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in ("T", "W", "D", "B", "R"):
            names.add(parts[2].split("@")[0])
    return names


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    library, headers = sys.argv[1], sys.argv[2:]
    want = declared(headers)
    have = exported(library)
    missing = sorted(want - have)
    leaked = sorted(n for n in have if n.startswith("ad_") and n not in want)
    for n in missing:
        print(f"declared AD_API but not exported: {n}")
    for n in leaked:
        print(f"exported but declared in no public header: {n}")
    print(f"{len(want)} public functions declared, {len(want) - len(missing)} exported")
    if len(want) < 100:
        print("too few declarations found: the header parser is broken")
        return 1
    return 1 if missing or leaked else 0


if __name__ == "__main__":
    sys.exit(main())
