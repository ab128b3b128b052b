#!/usr/bin/env python3
"""Every binary's --help groups its flags under titled headings.

Usage: help_groups_test.py BINARY...
Each --help must exit 0, print at least three group headings ("Title:"
lines followed by "  --flag" lines), no ungrouped "flags:" list, and every
flag once. A one-line reason on failure.
"""
import re
import subprocess
import sys

bad = 0
for b in sys.argv[1:]:
    r = subprocess.run([b, "--help"], capture_output=True, text=True, timeout=10)
    lines = r.stdout.splitlines()
    heads = [l for i, l in enumerate(lines)
             if re.match(r"^\S.*:$", l) and not l.startswith("usage:") and i + 1 < len(lines)
             and lines[i + 1].startswith("  --")]
    flags = re.findall(r"^  (--[a-z0-9-]+)", r.stdout, re.M)
    name = b.rsplit("/", 1)[-1]
    problems = []
    if r.returncode != 0:
        problems.append("exit %d" % r.returncode)
    if len(heads) < 3:
        problems.append("%d group headings" % len(heads))
    if "\nflags:\n" in r.stdout:
        problems.append("an ungrouped 'flags:' list")
    if len(flags) != len(set(flags)):
        problems.append("a flag listed twice")
    if problems:
        bad += 1
        print("FAIL %s --help: %s" % (name, ", ".join(problems)))
    else:
        print("ok   %s --help: %d flags in %d groups (%s)" % (
            name, len(flags), len(heads), "; ".join(h[:-1] for h in heads)))
print("%d passed, %d failed" % (len(sys.argv) - 1 - bad, bad))
sys.exit(1 if bad else 0)
