#!/usr/bin/env python3
"""Instructions per request of l7proxy binaries: a deterministic measure of
the data path's cost where CPU time on a shared machine is too noisy to
resolve a few percent (DESIGN §10: instruction counts from callgrind).

Each binary runs under valgrind --tool=callgrind with one worker and the
same --config (one catch-all route to an nginx backend, no policy); after a
warm-up of 2,000 requests the counters are zeroed, N HTTP/1.1 keep-alive
requests are sent (h2load --h1 -c10), the counters are dumped, and the
instructions are divided by the requests that succeeded.

Usage: tests/load/ir_per_request.py [-n N] BIN [BIN...]
  e.g. ir_per_request.py -n 20000 before/l7proxy/l7proxy after/l7proxy/l7proxy
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def measure(binary, n):
    env = h.Env(tempfile.mkdtemp(prefix="edge-ir-"), {})
    try:
        be = h.Backend(env)
        cfg = env.path("cfg.json")
        h.write_atomic(cfg, h.l7_config([be.port]))
        port, admin = h.free_port(), h.free_port()
        out = env.path("callgrind.out")
        proc = env.spawn("l7proxy", ["valgrind", "--tool=callgrind",
                                     "--callgrind-out-file=" + out + ".%p", binary,
                                     "--workers=1", "--http=127.0.0.1:%d" % port,
                                     "--admin=127.0.0.1:%d" % admin, "--config=" + cfg,
                                     "--log-level=warn"])
        h.wait_http(proc, "http://127.0.0.1:%d/readyz" % admin, deadline_s=120)
        url = "http://127.0.0.1:%d/" % port
        subprocess.run(["h2load", "--h1", "-n", "2000", "-c", "10", url], capture_output=True,
                       check=True, timeout=600)
        pid = proc.popen.pid
        subprocess.run(["callgrind_control", "-z", str(pid)], capture_output=True, check=True)
        r = subprocess.run(["h2load", "--h1", "-n", str(n), "-c", "10", url],
                           capture_output=True, text=True, check=True, timeout=1800)
        ok = int(re.search(r"(\d+) succeeded", r.stdout).group(1))
        subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True, check=True)
        deadline = time.monotonic() + 30
        while True:  # the dump is written by the profiled process
            files = sorted(glob.glob(out + ".%d.*" % pid), key=os.path.getmtime)
            ir = None
            for f in files[-1:]:
                with open(f) as fh:
                    for line in fh:
                        if line.startswith(("summary:", "totals:")):
                            ir = int(line.split()[1])
            if ir is not None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if ir is None or ok == 0:
            raise h.SetupError("no callgrind dump or no request succeeded")
        return ok, ir / ok
    finally:
        env.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=20000, help="requests measured (default 20000)")
    p.add_argument("bins", nargs="+")
    a = p.parse_args()
    for need in ("valgrind", "callgrind_control", "h2load"):
        h.need_tool(need)
    first = None
    for b in a.bins:
        ok, ipr = measure(os.path.abspath(b), a.n)
        first = first or ipr
        print("%s: %d requests, %.0f instructions/request, %.3fx of the first" % (b, ok, ipr,
                                                                                ipr / first))


if __name__ == "__main__":
    main()
