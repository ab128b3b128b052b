#!/usr/bin/env python3
"""An HTTPS keep-alive load generator that can present a client certificate
(wrk, h2load and ab cannot), for the client-certificate rows of the
`policies` load scenario.

Usage: tls_client_load.py URL SECONDS CONNS [--cert=F --key=F] [--cafile=F]
       [--sni=NAME]

CONNS processes each hold one TLS connection (TLS 1.3, session resumption
off so every connection's handshake is full) and send GET requests on it
back to back for SECONDS, reconnecting after an error. Prints one line
"LOADSTATS requests=N duration_us=D p50=.. p90=.. p99=.. p999=.. connect=..
read=.. write=0 timeout=0 status=.." (latencies in µs, as lua/stats.lua),
so the harness reads it like wrk's. The client's own CPU is not the
proxy's: only ratios of the proxy's CPU per request between rows measured
with this same client mean anything.
"""
import multiprocessing
import socket
import ssl
import sys
import time
import urllib.parse


def worker(args, out):
    url, seconds, opts = args
    u = urllib.parse.urlsplit(url)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.options |= ssl.OP_NO_TICKET
    if opts.get("cafile"):
        ctx.load_verify_locations(opts["cafile"])
        ctx.check_hostname = False
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if opts.get("cert"):
        ctx.load_cert_chain(opts["cert"], opts["key"])
    req = ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (u.path or "/", u.netloc)).encode()
    lat, errs = [], {"connect": 0, "read": 0, "status": 0}
    end = time.monotonic() + seconds
    s = None
    buf = b""
    while time.monotonic() < end:
        if s is None:
            try:
                raw = socket.create_connection((u.hostname, u.port), timeout=5)
                s = ctx.wrap_socket(raw, server_hostname=opts.get("sni", "localhost"))
                buf = b""
            except OSError:
                errs["connect"] += 1
                s = None
                time.sleep(0.01)
                continue
        t0 = time.monotonic()
        try:
            s.sendall(req)
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    raise OSError("closed")
                buf += chunk
            head, _, rest = buf.partition(b"\r\n\r\n")
            n = 0
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    n = int(v)
            while len(rest) < n:
                chunk = s.recv(65536)
                if not chunk:
                    raise OSError("closed")
                rest += chunk
            buf = rest[n:]
            if not head.startswith(b"HTTP/1.1 2"):
                errs["status"] += 1
            else:
                lat.append((time.monotonic() - t0) * 1e6)
        except (OSError, ValueError):
            errs["read"] += 1
            try:
                s.close()
            except OSError:
                pass
            s = None
    out.put((lat, errs))


def main(argv):
    url, seconds, conns = argv[1], float(argv[2]), int(argv[3])
    opts = dict(a[2:].split("=", 1) for a in argv[4:] if a.startswith("--"))
    q = multiprocessing.Queue()
    t0 = time.monotonic()
    procs = [multiprocessing.Process(target=worker, args=((url, seconds, opts), q))
             for _ in range(conns)]
    for p in procs:
        p.start()
    lat, errs = [], {"connect": 0, "read": 0, "status": 0}
    for _ in procs:
        l, e = q.get()
        lat += l
        for k in errs:
            errs[k] += e[k]
    for p in procs:
        p.join()
    dur = (time.monotonic() - t0) * 1e6
    lat.sort()

    def pct(x):
        return lat[min(len(lat) - 1, int(len(lat) * x))] if lat else 0
    print("LOADSTATS requests=%d duration_us=%d p50=%d p90=%d p99=%d p999=%d connect=%d "
          "read=%d write=0 timeout=0 status=%d" % (len(lat), dur, pct(0.5), pct(0.9), pct(0.99),
                                                   pct(0.999), errs["connect"], errs["read"],
                                                   errs["status"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
