#!/usr/bin/env python3
"""flowload — load that tells established flows from new connections.

Run inside a client namespace by packet_mode.py:

    flowload.py --vip=IP --port=80 --host=H --conns=24 --rate=10 --probe-rate=20 \
                --ports=FILE --out=FILE

--conns persistent HTTP/1.1 keep-alive connections each send --rate
requests per second and never reconnect: any error or a request without
an answer within --timeout marks that connection BROKEN (an established
flow broken). Beside them, new connections are opened at --probe-rate per
second, one request each (a failure is a failed new connection). The
local ports of the persistent connections are written to --ports once all
are established (so the caller can ask the router which l4lb carries
each); SIGTERM stops the load and writes the results to --out as JSON.
Every loop is bounded by the stop event and per-request timeouts.
"""
import argparse
import http.client
import json
import os
import signal
import threading
import time


class Conn:
    def __init__(self):
        self.port = 0
        self.ok = 0
        self.broken = ""
        self.last_ok = 0.0


def persistent(args, c, established, stop):
    gap = 1.0 / args.rate
    try:
        h = http.client.HTTPConnection(args.vip, args.port, timeout=args.timeout)
        h.connect()
        c.port = h.sock.getsockname()[1]
    except OSError as e:
        c.broken = f"connect: {type(e).__name__}"
        established.release()
        return
    established.release()
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            h.request("GET", "/", headers={"Host": args.host})
            r = h.getresponse()
            r.read()
            if r.status != 200:
                c.broken = f"status {r.status}"
                break
            c.ok += 1
            c.last_ok = time.time()
        except (OSError, http.client.HTTPException) as e:
            c.broken = type(e).__name__
            break
        stop.wait(max(0.0, gap - (time.monotonic() - t0)))
    h.close()


def probes(args, res, lock, stop):
    gap = 1.0 / args.probe_rate
    while not stop.is_set():
        t0 = time.monotonic()
        err = ""
        try:
            h = http.client.HTTPConnection(args.vip, args.port, timeout=args.timeout)
            h.request("GET", "/", headers={"Host": args.host, "Connection": "close"})
            r = h.getresponse()
            r.read()
            if r.status != 200:
                err = f"status {r.status}"
            h.close()
        except (OSError, http.client.HTTPException) as e:
            err = type(e).__name__
        with lock:
            res["sent"] += 1
            if err:
                res["failed"] += 1
                res["errors"][err] = res["errors"].get(err, 0) + 1
        stop.wait(max(0.0, gap - (time.monotonic() - t0)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vip", required=True)
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--host", required=True)
    ap.add_argument("--conns", type=int, default=24)
    ap.add_argument("--rate", type=float, default=10)
    ap.add_argument("--probe-rate", type=float, default=20)
    ap.add_argument("--timeout", type=float, default=10)
    ap.add_argument("--ports", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-seconds", type=float, default=120)
    args = ap.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    established = threading.Semaphore(0)
    conns = [Conn() for _ in range(args.conns)]
    threads = [threading.Thread(target=persistent, args=(args, c, established, stop), daemon=True)
               for c in conns]
    for t in threads:
        t.start()
    for _ in conns:
        established.acquire(timeout=args.timeout)
    with open(args.ports + ".tmp", "w") as f:
        json.dump([c.port for c in conns if c.port], f)

    os.rename(args.ports + ".tmp", args.ports)
    res = {"sent": 0, "failed": 0, "errors": {}}
    lock = threading.Lock()
    pt = threading.Thread(target=probes, args=(args, res, lock, stop), daemon=True)
    pt.start()
    stop.wait(args.max_seconds)
    stop.set()
    for t in threads + [pt]:
        t.join(args.timeout + 2)
    out = {"conns": [vars(c) for c in conns], "probes": res}
    with open(args.out + ".tmp", "w") as f:
        json.dump(out, f)
    os.rename(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
