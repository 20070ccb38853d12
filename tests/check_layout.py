#!/usr/bin/env python3
"""Checks that the source tree keeps the shape docs/design.md describes.

    check_layout.py SRC_DIR

1. Layers. Each folder under src/ is a layer; a file may include headers of
   its own folder and of the layers below it, and only those headers of a
   lower layer that it is allowed to see:
       core  <- ops  (all of core)
       core  <- real (all of core)
       core  <- nn   (core/util.h and core/kernels.h only)
       nn    <- io   (core/util.h, core/kernels.h, nn/nn.h)
   A kernel header named by `#define KERNELS "dir/x.h"` counts as included.
2. Kernels are functions. No multi-line function-like macro (a statement
   macro that a debugger cannot step into), except the op table's AD_OP.
3. One dtype switch. No comparison with AD_F32, no `? :` on a dtype, and no
   `default:` in a switch on a dtype: a dtype added to ad_dtype must fail to
   compile (-Werror=switch) wherever it is not handled. Comparisons with
   AD_F64 are allowed only where float64 is a requirement (gradient checks).
4. One helper per chore: the messages and bounds that have a helper appear
   once.
5. No function longer than MAX_FUNCTION_LINES lines (src/io: IO_MAX_LINES).

Prints every violation as file:line: message and exits 1 if there is one.
"""

import os
import re
import sys

LAYERS = {
    "core": {"core": None},
    "ops": {"ops": None, "core": None},
    "real": {"real": None, "core": None},
    "nn": {"nn": None, "core": {"util.h", "kernels.h"}},
    "io": {"io": None, "nn": {"nn.h"}, "core": {"util.h", "kernels.h"}},
}

# Files where a float64 comparison is a requirement, not a dispatch.
F64_REQUIREMENT = {"core/gradcheck.c", "core/custom.c"}

# Text that a shared helper owns: it may appear only in the named file.
OWNED = [
    ("out of range for shape", "core/apply.c", "ad__check_axis"),
    ("differ (use ad_cast)", "core/apply.c", "ad__same_dtype"),
    ("1 << 60", "core/util.h", "AD__MAX_NUMEL"),
    ("INT64_MAX / 16", None, "AD__MAX_NUMEL"),
]

MAX_FUNCTION_LINES = 100
IO_MAX_LINES = 60

problems = []


def report(path, line, message):
    problems.append(f"{path}:{line}: {message}")


def check_includes(src, rel, lines):
    layer = rel.split("/")[0]
    allowed = LAYERS.get(layer)
    if allowed is None:
        report(rel, 1, f"folder src/{layer} is not a known layer (check_layout.py LAYERS)")
        return
    here = os.path.dirname(os.path.join(src, rel))
    for n, line in enumerate(lines, 1):
        m = re.match(r'\s*#\s*include\s+"([^"]+)"', line) or re.match(
            r'\s*#\s*define\s+KERNELS\s+"([^"]+)"', line
        )
        if not m:
            continue
        name = m.group(1)
        if name.endswith(".def"):
            target = os.path.normpath(os.path.join(here, name))
        else:
            target = os.path.normpath(os.path.join(here, name))
            if not os.path.exists(target):
                target = os.path.normpath(os.path.join(src, name))
        if not os.path.exists(target):
            continue  # a public header (autodiff/...) or a system one
        target_rel = os.path.relpath(target, src)
        if target_rel.startswith(".."):
            continue
        target_layer, base = target_rel.split("/")[0], os.path.basename(target_rel)
        if target_layer not in allowed:
            report(rel, n, f'includes "{name}" from src/{target_layer}, a layer above or beside src/{layer}')
        elif allowed[target_layer] is not None and base not in allowed[target_layer]:
            report(rel, n, f'includes "{name}": src/{layer} may see only '
                   f'{", ".join(sorted(allowed[target_layer]))} of src/{target_layer}')


def check_macros(rel, lines):
    for n, line in enumerate(lines, 1):
        m = re.match(r"\s*#\s*define\s+(\w+)\(", line)
        if m and line.rstrip().endswith("\\") and m.group(1) != "AD_OP":
            report(rel, n, f"multi-line macro {m.group(1)}: write it as a function")


def check_dtypes(rel, lines):
    for n, line in enumerate(lines, 1):
        code = line.split("//")[0]
        if re.search(r"[!=]=\s*AD_F32\b|\bAD_F32\s*[!=]=|\bAD_F(32|64)\s*\?", code):
            report(rel, n, "dtype comparison: dispatch with a switch over every dtype")
        if re.search(r"[!=]=\s*AD_F64\b|\bAD_F64\s*[!=]=", code) and rel not in F64_REQUIREMENT:
            report(rel, n, "dtype comparison: dispatch with a switch over every dtype")
    text = "\n".join(lines)
    for m in re.finditer(r"switch\s*\(([^)]*dtype[^)]*)\)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 1 and text.startswith("default:", i):
                report(rel, text.count("\n", 0, i) + 1,
                       "default: in a dtype switch swallows the next dtype")
            i += 1


def strip_comments(text):
    """text with comments blanked, newlines kept (so line numbers hold)."""
    text = re.sub(r"/\*.*?\*/", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def check_owned(rel, text):
    text = strip_comments(text)
    for needle, owner, helper in OWNED:
        if needle in text and rel != owner:
            report(rel, text.count("\n", 0, text.index(needle)) + 1,
                   f'"{needle}" belongs to {helper}' + (f" ({owner})" if owner else ""))


def check_function_lengths(rel, lines):
    limit = IO_MAX_LINES if rel.startswith("io/") else MAX_FUNCTION_LINES
    start = None
    for n, line in enumerate(lines, 1):
        if line.startswith("{") and start is None:
            start = n
        elif line.startswith("}") and start is not None:
            length = n - start + 1
            if length > limit:
                report(rel, start, f"function of {length} lines (at most {limit} here): split it")
            start = None


def main():
    src = os.path.abspath(sys.argv[1])
    for root, _, files in os.walk(src):
        for name in sorted(files):
            if not name.endswith((".c", ".h", ".def")):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, src)
            if "/" not in rel:
                report(rel, 1, "source file outside a layer folder")
                continue
            with open(path, encoding="utf-8") as f:
                text = f.read()
            lines = text.split("\n")
            check_includes(src, rel, lines)
            check_macros(rel, lines)
            check_dtypes(rel, lines)
            check_owned(rel, text)
            if name.endswith(".c"):
                check_function_lengths(rel, lines)
    for p in problems:
        print(p)
    print(f"{len(problems)} layout problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
