#!/usr/bin/env python3
"""A small external-authentication service for the policy tests (the role
of an oauth2-proxy or an OPA sidecar behind ingress-nginx's auth-url).

Usage: auth_service.py PORTFILE LOGFILE
Binds 127.0.0.1 on a kernel-chosen port, writes it to PORTFILE, appends one
JSON line per request to LOGFILE ({"path", "headers": {name: value}}) and
answers by the request's Authorization header:
  Bearer good       200, X-User: alice, X-Groups: admins, X-Not-Copied: 1
  Bearer forbidden  403 with a body
  Bearer slow       waits 3 s, then 200
  Bearer error      500
  anything else     401, WWW-Authenticate: Bearer realm="auth-test"
Any request to /upstream-cors is answered 200 with Access-Control-Allow-Origin: *
(an upstream that tries to widen a route's CORS policy).
Keeps connections alive (HTTP/1.1).
"""
import json
import os
import socket
import socketserver
import sys
import threading
import time

LOG = None
LOCK = threading.Lock()


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while self.one():
                pass
        except (EOFError, ConnectionError, OSError):
            pass

    def one(self):
        line = self.rfile.readline(65537)
        if not line:
            return False
        parts = line.decode("latin-1").split()
        if len(parts) != 3:
            return False
        headers = {}
        while True:
            h = self.rfile.readline(65537)
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            k = k.strip().lower()
            headers[k] = headers[k] + ", " + v.strip() if k in headers else v.strip()
        n = int(headers.get("content-length", "0") or 0)
        if n:
            self.rfile.read(n)
        with LOCK, open(LOG, "a") as f:
            f.write(json.dumps({"path": parts[1], "headers": headers}) + "\n")
        auth = headers.get("authorization", "")
        extra, status, body = "", 401, b"no\n"
        if parts[1] == "/upstream-cors":
            status, body = 200, b"upstream\n"
            extra = "Access-Control-Allow-Origin: *\r\nAccess-Control-Allow-Credentials: true\r\n"
        elif auth == "Bearer good":
            status, body = 200, b""
            extra = "X-User: alice\r\nX-Groups: admins\r\nX-Not-Copied: 1\r\n"
        elif auth == "Bearer forbidden":
            status, body = 403, b"forbidden by the auth service\n"
        elif auth == "Bearer slow":
            time.sleep(3)
            status, body = 200, b""
        elif auth == "Bearer error":
            status, body = 500, b"broken\n"
        else:
            extra = 'WWW-Authenticate: Bearer realm="auth-test"\r\n'
        self.wfile.write(("HTTP/1.1 %d X\r\n%sContent-Length: %d\r\n\r\n" %
                          (status, extra, len(body))).encode() + body)
        self.wfile.flush()
        return True


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global LOG
    LOG = sys.argv[2]
    srv = Server(("127.0.0.1", 0), Handler)
    tmp = sys.argv[1] + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(str(srv.server_address[1]))
    os.rename(tmp, sys.argv[1])
    srv.serve_forever()


if __name__ == "__main__":
    main()
