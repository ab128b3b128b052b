#!/usr/bin/env python3
"""Example backend for the local cluster and the e2e runners.

Serves one or more named HTTP/1.1 endpoints from one process (one thread per
connection, keep-alive). Every request, whatever its method and path, is
answered 200 with a JSON body that says who answered and what arrived:

    {"backend": "shop-web-2", "host": "shop.example.test", "path": "/x",
     "method": "GET", "x_forwarded_for": "10.99.0.1", ...}

and the same name in the `X-Backend` response header, so tests can assert
which endpoint a proxy picked. `GET /__status/NNN` answers status NNN (for
outlier tests).

Usage: backend.py NAME=ADDR:PORT [NAME=ADDR:PORT ...]
Prints "ready" on stdout once every listener is bound. Binding an address
already in use is a one-line error and exit status 2. Stops on SIGTERM/SIGINT.
Python 3 standard library only.
"""
import http.server
import json
import signal
import socket
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "edge-example-backend"

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        remaining = length
        while remaining > 0:  # drain the body so keep-alive stays in sync
            chunk = self.rfile.read(min(remaining, 65536))
            if not chunk:
                break
            remaining -= len(chunk)
        status = 200
        if self.path.startswith("/__status/"):
            try:
                status = int(self.path.split("/")[2])
            except (ValueError, IndexError):
                status = 400
        doc = {
            "backend": self.server.backend_name,
            "host": self.headers.get("Host", ""),
            "path": self.path,
            "method": self.command,
            "body_bytes": length,
            "x_forwarded_for": self.headers.get("X-Forwarded-For", ""),
            "x_forwarded_proto": self.headers.get("X-Forwarded-Proto", ""),
            "x_forwarded_host": self.headers.get("X-Forwarded-Host", ""),
            "x_request_id": self.headers.get("X-Request-Id", ""),
            "peer": self.client_address[0],
        }
        body = (json.dumps(doc) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Backend", self.server.backend_name)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _answer

    def log_message(self, fmt, *args):  # quiet: the proxies log requests
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 2
    servers = []
    for spec in argv[1:]:
        name, sep, addr = spec.partition("=")
        host, _, port = addr.rpartition(":")
        if not sep or not name or not host or not port.isdigit():
            print(f"backend.py: bad endpoint {spec!r}, want NAME=ADDR:PORT", file=sys.stderr)
            return 2
        try:
            srv = Server((host, int(port)), Handler)
        except OSError as e:
            print(f"backend.py: cannot listen on {addr} for {name}: {e.strerror}", file=sys.stderr)
            return 2
        srv.backend_name = name
        servers.append(srv)
    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("ready", flush=True)
    while not stop.wait(1.0):
        pass
    for srv in servers:
        srv.shutdown()
        srv.server_close()
    return 0


if __name__ == "__main__":
    socket.setdefaulttimeout(60)
    sys.exit(main(sys.argv))
