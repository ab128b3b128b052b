#!/usr/bin/env python3
"""What the Gateway API data-plane steps cost l7proxy: the h1-keepalive load
(wrk -c50, small responses, nginx backend, 1 worker, keep-alive both ways)
against

  plain       one catch-all Prefix route to one cluster (an Ingress rule)
  gateway     the same host as an HTTP-listener virtual host whose first
              rule has a header condition the requests miss (X-Canary:
              always), so every request is routed by the full request match,
              and whose catch-all rule splits 90/10 over two clusters with a
              request header modifier (set, add, remove) and a response
              header modifier (set, remove)

measured in turn and interleaved (--repeat, medians), in the same run, on
the same machine. Reports req/s and proxy CPU µs per request
(/proc/PID/stat) and the cost per request of gateway over plain. A
benchmark: nothing is asserted.

Usage: tests/load/gateway_bench.py --bin-dir=BAZEL_BIN [--duration=8]
       [--repeat=3] [--conns=50]
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def config(backend_port, gateway):
    def cluster(name):
        return {"cluster": {"name": name,
                            "endpoints": [{"address": "127.0.0.1", "port": backend_port,
                                           "ready": True}],
                            "max_idle_per_endpoint": 256}}
    res = [cluster("load/backend:80")]
    if not gateway:
        res.append({"virtual_host": {"name": "vh:*", "host": "", "host_match": "HOST_MATCH_ANY",
                                     "routes": [{"path": "/", "path_type": "PATH_TYPE_PREFIX",
                                                 "cluster": "load/backend:80"}]}})
    else:
        res.append(cluster("load/canary:80"))
        routes = [
            {"path": "/", "path_type": "PATH_TYPE_PREFIX", "cluster": "load/canary:80",
             "headers": [{"name": "X-Canary", "value": "always"}]},
            {"path": "/", "path_type": "PATH_TYPE_PREFIX",
             "weighted_clusters": [{"cluster": "load/backend:80", "weight": 90},
                                   {"cluster": "load/canary:80", "weight": 10}],
             "request_headers": {"set": [{"name": "X-Env", "value": "prod"}],
                                 "add": [{"name": "X-Via-Gateway", "value": "edge"}],
                                 "remove": ["X-Debug"]},
             "response_headers": {"set": [{"name": "X-Served-By", "value": "edge"}],
                                  "remove": ["Server"]}},
        ]
        res.append({"virtual_host": {"name": "gw:http:*", "host": "",
                                     "host_match": "HOST_MATCH_ANY",
                                     "listener": "LISTENER_HTTP", "routes": routes}})
    return json.dumps({"version": 1, "resources": res})


def start_l7(env, binary, backend_port, name, gateway):
    cfg = env.path(name + ".json")
    h.write_atomic(cfg, config(backend_port, gateway))
    port, admin = h.free_port(), h.free_port()
    argv = [binary, "--workers=1", "--admin=127.0.0.1:%d" % admin, "--config=" + cfg,
            "--log-level=warn", "--drain-timeout=2s", "--http=127.0.0.1:%d" % port]
    proc = env.spawn(name, argv)
    h.wait_http(proc, "http://127.0.0.1:%d/readyz" % admin)
    h.check_proxied(port, "http")
    if gateway:  # the Gateway steps really run: the response header modifier shows
        import urllib.request
        with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=5) as resp:
            if resp.headers.get("X-Served-By") != "edge" or resp.headers.get("Server"):
                raise SystemExit("gateway config not applied: %s" % dict(resp.headers))
    return proc, port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--duration", type=float, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--conns", type=int, default=50)
    a = ap.parse_args()
    env = h.Env(tempfile.mkdtemp(prefix="edge-gateway-bench-"), {})
    backend = h.Backend(env)
    binary = os.path.join(os.path.abspath(a.bin_dir), "l7proxy/l7proxy")
    sides = [("plain", False), ("gateway", True)]
    runs = {s[0]: [] for s in sides}
    for r in range(a.repeat):
        for name, gateway in sides:
            proc, port = start_l7(env, binary, backend.port, "l7-" + name, gateway)
            url = "http://127.0.0.1:%d/" % port
            h.wrk(url, 1, conns=a.conns)  # warm-up
            with h.Measure([proc]) as m:
                st = h.wrk(url, a.duration, conns=a.conns)
            runs[name].append((st["rate"], m.cpu_s * 1e6 / st["requests"], st["errors"]))
            env.stop(proc)
            print("run %d %-8s %8.0f req/s %6.2f µs/req errors %d" % (
                r + 1, name, st["rate"], runs[name][-1][1], st["errors"]), flush=True)
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    res = {n: (med([x[0] for x in v]), med([x[1] for x in v]), sum(x[2] for x in v))
           for n, v in runs.items()}
    base = res["plain"]
    print()
    print("| l7proxy | req/s | CPU µs/req | CPU ÷ plain | errors |")
    print("|---|--:|--:|--:|--:|")
    for n, _ in sides:
        rate, cpu, err = res[n]
        print("| %s | %.0f | %.2f | %.3f× | %d |" % (n, rate, cpu, cpu / base[1], err))
    print()
    print("gateway costs %.2f µs of proxy CPU per request over plain (%+.1f %%)" % (
        res["gateway"][1] - base[1], 100 * (res["gateway"][1] / base[1] - 1)))
    env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
