#!/usr/bin/env python3
"""Stand-in for l4lb in the runner's infrastructure self-test (--infra-only).

Serves GET /readyz on ADMIN (200, or 503 while the file DOWN exists) and,
on LISTEN, answers every HTTP request with X-Backend: NAME so a client of
the VIP sees which host holds it. Lets the runner prove namespaces, the
bridge and keepalived's VIP failover without the real daemons.

Usage: stub_l4lb.py NAME LISTEN_ADDR:PORT ADMIN_ADDR:PORT DOWN_FILE
Standard library only; stops on SIGTERM.
"""
import http.server
import os
import signal
import sys
import threading


def handler(name, down_file, admin):
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            status = 200
            if admin and self.path.startswith("/readyz") and os.path.exists(down_file):
                status = 503
            body = f"{name}\n".encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Backend", name)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    return H


def serve(addr, h):
    host, _, port = addr.rpartition(":")
    srv = http.server.ThreadingHTTPServer((host, int(port)), h)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()


def main():
    name, listen, admin, down = sys.argv[1:5]
    serve(listen, handler(name, down, False))
    serve(admin, handler(name, down, True))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    while not stop.wait(1):
        pass


if __name__ == "__main__":
    main()
