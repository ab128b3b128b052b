#!/usr/bin/env python3
"""layering_test — the Bazel visibility that keeps the daemons apart stays in place.

Bazel itself fails any build in which a daemon depends on another daemon
(or common/ on a daemon): every package under l4lb/, l7proxy/ and syncd/
declares default_visibility = [//deploy:__subpackages__,
//DAEMON:__subpackages__, //tests:__subpackages__]. What Bazel cannot
notice is that rule being loosened, or a new package under a daemon that
never declared it; this test reads every BUILD file under the three
daemons and fails on either, and when a single target is made visible to
anyone else.

Usage: layering_test.py l4lb/BUILD.bazel l7proxy/BUILD.bazel syncd/BUILD.bazel
(from Bazel). The other BUILD files under the daemons are found from the
source tree those files link to, so a new package is checked without being
listed here.
"""
import os
import re
import sys

DAEMONS = ("l4lb", "l7proxy", "syncd")


def allowed(daemon):
    return {"//deploy:__subpackages__", "//%s:__subpackages__" % daemon, "//tests:__subpackages__"}


def check(path, daemon, text):
    problems = []
    want = allowed(daemon)
    pkg = re.search(r"package\(\s*default_visibility\s*=\s*\[(.*?)\]", text, re.S)
    if not pkg:
        problems.append("%s: no package(default_visibility = [...])" % path)
    else:
        labels = set(re.findall(r'"([^"]+)"', pkg.group(1)))
        if labels != want:
            problems.append("%s: default_visibility is %s, want %s"
                            % (path, sorted(labels), sorted(want)))
    for m in re.finditer(r"\bvisibility\s*=\s*\[(.*?)\]", text, re.S):
        if text[max(0, m.start() - 8):m.start()].endswith("default_"):
            continue
        extra = set(re.findall(r'"([^"]+)"', m.group(1))) - want
        if extra:
            line = text.count("\n", 0, m.start()) + 1
            problems.append("%s:%d: a target is made visible to %s" % (path, line, sorted(extra)))
    return problems


def build_files(given):
    """Every BUILD file under the daemons: the given ones, plus any the source tree holds."""
    files = {}
    for f in given:
        daemon = os.path.basename(os.path.dirname(os.path.abspath(f)))
        files[os.path.realpath(f)] = ("%s/%s" % (daemon, os.path.basename(f)), daemon)
        src_dir = os.path.dirname(os.path.realpath(f))
        if os.path.basename(src_dir) != daemon:
            continue  # not a link into the source tree: check what was given
        for root, dirs, names in os.walk(src_dir):
            dirs[:] = [d for d in dirs if not d.startswith(("bazel-", "."))]
            for n in names:
                if n in ("BUILD", "BUILD.bazel"):
                    full = os.path.join(root, n)
                    rel = os.path.relpath(full, os.path.dirname(src_dir))
                    files.setdefault(os.path.realpath(full), (rel, daemon))
    return sorted(files.items(), key=lambda kv: kv[1][0])


def main():
    given = sys.argv[1:]
    if sorted(os.path.basename(os.path.dirname(os.path.abspath(f))) for f in given) != list(DAEMONS):
        print("usage: layering_test.py l4lb/BUILD.bazel l7proxy/BUILD.bazel syncd/BUILD.bazel")
        return 2
    problems = []
    checked = build_files(given)
    for real, (rel, daemon) in checked:
        with open(real) as fh:
            problems += check(rel, daemon, fh.read())
    for p in problems:
        print("FAIL " + p)
    print("layering: %d BUILD files (%s), %d problems"
          % (len(checked), ", ".join(rel for _, (rel, _) in checked), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
