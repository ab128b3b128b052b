#!/usr/bin/env python3
"""What tracing and access logs cost l7proxy: the h1-keepalive load (wrk -c50,
small responses, nginx backend, 1 worker, keep-alive both ways) against

  before      the l7proxy of another build (--before=BIN_DIR, e.g. main's)
  off         this build, tracing and access logs off (the default)
  logfmt      this build, --access-log to a file (logfmt)
  json+1%     this build, --access-log-format=json to a file and
              --trace-sample=0.01 with spans exported to the in-tree OTLP
              receiver (its CPU is not counted: a collector is not the proxy)

measured in turn and interleaved (--repeat, medians), in the same run, on
the same machine. Reports req/s and proxy CPU µs per request
(/proc/PID/stat) and each side's ratio to `off`, plus the cost per request
of json+1% over off. A benchmark: nothing is asserted.

Usage: tests/load/obs_bench.py --bin-dir=BAZEL_BIN [--before=BAZEL_BIN]
       [--duration=8] [--repeat=3] [--conns=50]
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def start_l7(env, binary, backend_port, name, extra=()):
    cfg = env.path(name + ".json")
    h.write_atomic(cfg, h.l7_config([backend_port]))
    port, admin = h.free_port(), h.free_port()
    argv = [binary, "--workers=1", "--admin=127.0.0.1:%d" % admin, "--config=" + cfg,
            "--log-level=warn", "--drain-timeout=2s", "--http=127.0.0.1:%d" % port] + list(extra)
    proc = env.spawn(name, argv)
    h.wait_http(proc, "http://127.0.0.1:%d/readyz" % admin)
    h.check_proxied(port, "http")
    return proc, port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--before", default="")
    ap.add_argument("--duration", type=float, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--conns", type=int, default=50)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="edge-obs-bench-")
    env = h.Env(work, {})
    backend = h.Backend(env)
    rport_file = env.path("otlp.port")
    env.spawn("otlp", [sys.executable, os.path.join(ROOT, "tests/otlp/otlp_receiver.py"),
                       rport_file])
    end = time.monotonic() + 10
    while not os.path.exists(rport_file) and time.monotonic() < end:
        time.sleep(0.05)
    rport = int(open(rport_file).read())
    now = os.path.join(a.bin_dir, "l7proxy/l7proxy")
    sides = []
    if a.before:
        sides.append(("before", os.path.join(a.before, "l7proxy/l7proxy"), []))
    sides += [
        ("off", now, []),
        ("logfmt", now, ["--access-log-path=" + env.path("access.log")]),
        ("json+1%", now, ["--access-log-format=json", "--access-log-path=" + env.path("access.json"),
                          "--trace-otlp=http://127.0.0.1:%d/v1/traces" % rport,
                          "--trace-sample=0.01"]),
    ]
    runs = {s[0]: [] for s in sides}
    for r in range(a.repeat):
        for name, binary, extra in sides:
            proc, port = start_l7(env, binary, backend.port, "l7-" + name.replace("%", "pct").replace("+", "-"), extra)
            url = "http://127.0.0.1:%d/" % port
            h.wrk(url, 1, conns=a.conns)  # warm-up
            with h.Measure([proc]) as m:
                st = h.wrk(url, a.duration, conns=a.conns)
            runs[name].append((st["rate"], m.cpu_s * 1e6 / st["requests"], st["errors"]))
            env.stop(proc)
            print("run %d %-8s %8.0f req/s %6.2f µs/req errors %d" % (
                r + 1, name, st["rate"], runs[name][-1][1], st["errors"]), flush=True)
    med = lambda v: sorted(v)[len(v) // 2]
    res = {n: (med([x[0] for x in v]), med([x[1] for x in v]), sum(x[2] for x in v))
           for n, v in runs.items()}
    base = res["off"]
    print()
    print("| l7proxy | req/s | CPU µs/req | CPU ÷ off | req/s ÷ off | errors |")
    print("|---|--:|--:|--:|--:|--:|")
    for n, _, _ in sides:
        rate, cpu, err = res[n]
        print("| %s | %.0f | %.2f | %.3f× | %.3f× | %d |" % (n, rate, cpu, cpu / base[1],
                                                          rate / base[0], err))
    print()
    print("json+1%% costs %.2f µs of proxy CPU per request over off (%+.1f %%); logfmt %.2f µs (%+.1f %%)"
          % (res["json+1%"][1] - base[1], 100 * (res["json+1%"][1] / base[1] - 1),
             res["logfmt"][1] - base[1], 100 * (res["logfmt"][1] / base[1] - 1)))
    if a.before:
        print("off vs before: CPU %+.1f %%, req/s %+.1f %% (median of %d interleaved runs)" % (
            100 * (base[1] / res["before"][1] - 1), 100 * (base[0] / res["before"][0] - 1),
            a.repeat))
    env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
