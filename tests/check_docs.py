#!/usr/bin/env python3
"""The code in the documentation is real.

Two kinds of ```c block are checked:
- a complete program (it defines main) is compiled and linked against the
  library, with warnings as errors, and run: it must exit 0 (programs that
  read the optional Fashion-MNIST data set, and train on it for minutes,
  are only compiled);
- a block right after a line `<!-- quoted from PATH -->` must appear in that
  file of the source tree: each of its lines, in order (lines that are just
  "..." stand for lines left out), so a quoted kernel cannot drift from the
  code it quotes.
Other blocks (short fragments inside prose) are not checked; the count is
printed.

Each --cflag=FLAG is passed to CC too (a sanitizer build's -fsanitize=...).
When AD_TEST_WRAPPER names a program (meson test --setup valgrind sets it),
the programs run through it, with ten times the time.

usage: check_docs.py [--cflag=FLAG]... CC SOURCE_ROOT INCLUDE_DIR LIBRARY_DIR MARKDOWN...
"""
import os
import re
import subprocess
import sys
import tempfile

BLOCK = re.compile(r"(?:<!-- quoted from (\S+) -->\s*\n)?```c\n(.*?)```", re.S)


def quoted_in(block, text):
    """Each non-elided line of block occurs in text, in order."""
    lines = text.splitlines()
    at = 0
    for want in block.splitlines():
        if want.strip() in ("", "..."):
            continue
        while at < len(lines) and lines[at].rstrip() != want.rstrip():
            at += 1
        if at == len(lines):
            return want
        at += 1
    return None


def main():
    args = sys.argv[1:]
    cflags = [a[len("--cflag="):] for a in args if a.startswith("--cflag=")]
    args = [a for a in args if not a.startswith("--cflag=")]
    if len(args) < 5:
        print(__doc__)
        return 2
    cc, root, include, libdir = args[:4]
    libdir = os.path.abspath(libdir)
    wrapper = [os.environ["AD_TEST_WRAPPER"]] if os.environ.get("AD_TEST_WRAPPER") else []
    timeout = 600 if wrapper else 60
    failures = programs = quotes = fragments = 0
    with tempfile.TemporaryDirectory() as tmp:
        for doc in args[4:]:
            with open(doc, encoding="utf-8") as f:
                text = f.read()
            for n, m in enumerate(BLOCK.finditer(text)):
                source, code = m.group(1), m.group(2)
                where = f"{os.path.relpath(doc, root)} block {n + 1}"
                if source:
                    quotes += 1
                    with open(os.path.join(root, source), encoding="utf-8") as f:
                        missing = quoted_in(code, f.read())
                    if missing is not None:
                        print(f"{where}: not in {source}: {missing.strip()}")
                        failures += 1
                elif re.search(r"\bint\s+main\s*\(", code):
                    programs += 1
                    src = os.path.join(tmp, f"snippet{programs}.c")
                    with open(src, "w", encoding="utf-8") as f:
                        f.write(code)
                    cmd = [cc, *cflags, "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall",
                           "-Wextra", "-Werror", "-Wno-unused-parameter", "-I", include, src,
                           "-o", src + ".out", "-L", libdir, "-lautodiff", "-lm",
                           "-Wl,-rpath," + libdir]
                    r = subprocess.run(cmd, capture_output=True, text=True)
                    if r.returncode != 0:
                        print(f"{where}: does not compile:\n{r.stderr}")
                        failures += 1
                        continue
                    if "/usr/share/datasets" in code:
                        continue
                    try:
                        r = subprocess.run(wrapper + [src + ".out"], capture_output=True,
                                           text=True, timeout=timeout, cwd=tmp)
                        if r.returncode != 0:
                            print(f"{where}: exits {r.returncode}:\n{r.stdout}{r.stderr}")
                            failures += 1
                    except subprocess.TimeoutExpired:
                        print(f"{where}: still running after {timeout} s")
                        failures += 1
                else:
                    fragments += 1
    print(f"{programs} programs compiled, {quotes} quotations found, "
          f"{fragments} fragments not checked, {failures} failures")
    return 1 if failures or programs + quotes == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
