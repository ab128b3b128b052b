#!/usr/bin/env python3
"""layering_test — the Bazel visibility that keeps the daemons apart stays in place.

Bazel itself fails any build in which a daemon depends on another daemon
(or common/ on a daemon): l4lb/, l7proxy/ and syncd/ declare
default_visibility = [//deploy:__subpackages__, //tests:__subpackages__].
What Bazel cannot notice is that rule being loosened, so this test reads
the three BUILD files and fails when a package default or a single target
is made visible to anyone else.

Usage: layering_test.py BUILD...   (the daemons' BUILD files, from Bazel)
"""
import re
import sys

ALLOWED = {"//deploy:__subpackages__", "//tests:__subpackages__"}


def check(path, text):
    problems = []
    pkg = re.search(r"package\(\s*default_visibility\s*=\s*\[(.*?)\]", text, re.S)
    if not pkg:
        problems.append("%s: no package(default_visibility = [...])" % path)
    else:
        labels = set(re.findall(r'"([^"]+)"', pkg.group(1)))
        if labels != ALLOWED:
            problems.append("%s: default_visibility is %s, want %s"
                            % (path, sorted(labels), sorted(ALLOWED)))
    for m in re.finditer(r"\bvisibility\s*=\s*\[(.*?)\]", text, re.S):
        if text[max(0, m.start() - 8):m.start()].endswith("default_"):
            continue
        extra = set(re.findall(r'"([^"]+)"', m.group(1))) - ALLOWED
        if extra:
            line = text.count("\n", 0, m.start()) + 1
            problems.append("%s:%d: a target is made visible to %s" % (path, line, sorted(extra)))
    return problems


def main():
    files = sys.argv[1:]
    if len(files) != 3:
        print("usage: layering_test.py l4lb/BUILD.bazel l7proxy/BUILD.bazel syncd/BUILD.bazel")
        return 2
    problems = []
    for f in files:
        with open(f) as fh:
            problems += check(f, fh.read())
    for p in problems:
        print("FAIL " + p)
    print("layering: %d BUILD files, %d problems" % (len(files), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
