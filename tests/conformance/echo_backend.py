#!/usr/bin/env python3
"""Echo backends for the Gateway API conformance runner: what upstream's
echo-basic image answers, so the runner can check which backend (pod and
namespace) served a request and what request reached it.

Usage: echo_backend.py POD=NAMESPACE=ADDR:PORT[=tls:CERT:KEY] ...

One process serves every listed "pod": a thread per address. Each answers
any request with 200 and a JSON body
  {"path", "host", "method", "proto", "headers": {Name: [values]},
   "namespace", "ingress": "", "service": "", "pod", "tls": {...}}
and sets the response headers named in the request header
X-Echo-Set-Header ("name:value,name:value"), as upstream's echo server
does. A query parameter delay=DURATION (500ms, 1s) holds the answer that
long (timeout cases). When ECHO_LOG names a file, every request is
appended to it as one JSON line {"pod", "path", "method", "headers"} (the
runner checks mirrored copies there). With =tls:CERT:KEY the address speaks TLS (TLSRoute passthrough
backends) and "tls" carries the server name the client sent. Request bodies
are read and discarded. Prints "READY" once every address listens.
Standard library only; started and killed by the runner.
"""
import json
import os
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

LOG_LOCK = threading.Lock()


def log_request(entry):
    path = os.environ.get("ECHO_LOG")
    if not path:
        return
    with LOG_LOCK, open(path, "a") as f:
        f.write(json.dumps(entry) + "\n")


def delay_seconds(path):
    v = parse_qs(urlparse(path).query).get("delay", [""])[0]
    try:
        if v.endswith("ms"):
            return float(v[:-2]) / 1000
        if v.endswith("s"):
            return float(v[:-1])
    except ValueError:
        pass
    return 0


def handler_for(pod, namespace):
    class Echo(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 65536  # one write per answer (head and body): no Nagle/delayed-ACK stall

        def setup(self):
            super().setup()
            try:
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

        def log_message(self, fmt, *args):
            pass

        def _answer(self):
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            headers = {}
            for k, v in self.headers.items():
                headers.setdefault(k, []).append(v)
            log_request({"pod": pod, "path": self.path, "method": self.command,
                         "headers": headers})
            wait = delay_seconds(self.path)
            if 0 < wait <= 30:
                time.sleep(wait)  # the backend's own slowness, asked for by the request
            tls = {}
            if isinstance(self.connection, ssl.SSLSocket):
                tls = {"version": self.connection.version(),
                       "serverName": getattr(self.server, "last_sni", "")}
            body = json.dumps({"path": self.path, "host": self.headers.get("Host", ""),
                               "method": self.command, "proto": self.request_version,
                               "headers": headers, "namespace": namespace, "ingress": "",
                               "service": "", "pod": pod, "tls": tls}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for pair in (self.headers.get("X-Echo-Set-Header") or "").split(","):
                name, _, value = pair.partition(":")
                if name.strip():
                    self.send_header(name.strip(), value.strip())
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _answer
    return Echo


def serve(spec):
    parts = spec.split("=")
    pod, namespace, addr = parts[0], parts[1], parts[2]
    host, port = addr.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), handler_for(pod, namespace))
    server.daemon_threads = True
    if len(parts) > 3 and parts[3].startswith("tls:"):
        _, cert, key = parts[3].split(":", 2)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)

        def on_sni(sock, name, _ctx):
            server.last_sni = name or ""
        ctx.sni_callback = on_sni
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    return server


def main():
    servers = [serve(s) for s in sys.argv[1:]]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print("READY", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    sys.exit(main())
