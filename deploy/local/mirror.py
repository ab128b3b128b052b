#!/usr/bin/env python3
"""Keeps DST/ex-NAME a copy of every SRC/*.yaml (and *.yml), so syncd can
watch DST while people edit SRC (deploy/examples). Polls every 0.1 s (one
process, no forks: cheap even on a loaded machine); a changed file is
written to a temp file outside DST, then renamed in, so syncd never reads
half a file. Copies of deleted files are removed; files in DST not named
ex-* (the generated TLS Secret) are left alone. Used by deploy/local/run.sh.

Usage: mirror.py SRC DST TMPDIR    (stops on SIGTERM)
"""
import os
import signal
import sys
import time


def sync(src, dst, tmp, seen):
    names = {n for n in os.listdir(src) if n.endswith((".yaml", ".yml"))}
    for n in names:
        path = os.path.join(src, n)
        try:
            st = os.stat(path)
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
            if seen.get(n) == key:
                continue
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue  # vanished or unreadable mid-edit: next round
        target = os.path.join(dst, "ex-" + n)
        try:
            with open(target, "rb") as f:
                same = f.read() == data
        except OSError:
            same = False
        if not same:
            t = os.path.join(tmp, "mirror-" + n)
            with open(t, "wb") as f:
                f.write(data)
            os.rename(t, target)
        seen[n] = key
    for n in list(seen):
        if n not in names:
            try:
                os.unlink(os.path.join(dst, "ex-" + n))
            except OSError:
                pass
            del seen[n]


def main():
    src, dst, tmp = sys.argv[1:4]
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    seen = {}
    sync(src, dst, tmp, seen)
    print("ready", flush=True)
    while not stop:
        time.sleep(0.1)
        try:
            sync(src, dst, tmp, seen)
        except OSError as e:
            print(f"mirror: {e}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
