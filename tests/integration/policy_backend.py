#!/usr/bin/env python3
"""A test backend for the issue-20 policy tests: l7proxy_backend.py's
HTTP/1.1 handler, optionally behind TLS, with a health endpoint whose
answer the test controls.

Usage: policy_backend.py NAME PORTFILE [--cert=F --key=F] [--client-ca=F]

  --cert/--key   serve TLS (ALPN http/1.1) with this certificate
  --client-ca    require a client certificate issued by this CA
Extra paths (everything else is l7proxy_backend.py's):
  /health        the status written in PORTFILE.health (default 200)
  /whoami        JSON: the TLS server name the client sent ("sni"), the
                 client certificate's subject ("client_subject"), the
                 request's headers, the backend's name
Writes every request path to PORTFILE.log (one per line), so a test can
count health checks.
"""
import json
import os
import socket
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
NAME, PORTFILE = sys.argv[1], sys.argv[2]
OPTS = dict(a[2:].split("=", 1) for a in sys.argv[3:] if a.startswith("--") and "=" in a)
sys.argv = sys.argv[:2]  # l7proxy_backend reads NAME from argv[1]
import l7proxy_backend as base  # noqa: E402


def health_status():
    try:
        with open(PORTFILE + ".health") as f:
            return int(f.read().strip() or "200")
    except (OSError, ValueError):
        return 200


class Handler(base.Handler):
    def one(self):
        f = self.rfile
        line = base.read_line(f)
        while line in (b"\r\n", b"\n"):
            line = base.read_line(f)
        parts = line.decode("latin-1").strip().split(" ")
        target = parts[1] if len(parts) == 3 else ""
        with open(PORTFILE + ".log", "a") as log:
            log.write(target + "\n")
        if target not in ("/health", "/whoami"):
            # hand the line back to the base handler through a one-line prefix
            self.rfile = Prefixed(line, f)
            return base.Handler.one(self)
        headers = {}
        while True:
            h = base.read_line(f)
            if h in (b"\r\n", b"\n"):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        if target == "/health":
            status, body = health_status(), b"health\n"
        else:
            status = 200
            sni = getattr(self.request, "edge_sni", None)
            subject = ""
            if isinstance(self.request, ssl.SSLSocket):
                cert = self.request.getpeercert()
                if cert:
                    subject = ",".join("%s=%s" % kv for rdn in cert.get("subject", ())
                                       for kv in rdn)
            body = json.dumps({"backend": NAME, "sni": sni, "client_subject": subject,
                               "headers": headers}).encode()
        self.wfile.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nX-Backend: %s\r\n\r\n%s" % (
            status, len(body), NAME.encode(), body))
        self.wfile.flush()
        return True


class Prefixed:
    """A file-like object that yields one already-read line first."""

    def __init__(self, first, f):
        self.first, self.f = first, f

    def readline(self, n=-1):
        if self.first is not None:
            line, self.first = self.first, None
            return line
        return self.f.readline(n)

    def read(self, n=-1):
        return self.f.read(n)


class Server(base.Server):
    tls = None

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.tls is None:
            return sock, addr
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


class TlsHandler(Handler):
    def setup(self):
        try:
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)
        except (ssl.SSLError, OSError):
            self.request.close()
            raise ConnectionError("handshake failed")
        super().setup()

    def handle(self):
        try:
            super().handle()
        except (ssl.SSLError, OSError):
            pass


def main():
    tls = None
    if "cert" in OPTS:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(OPTS["cert"], OPTS["key"])
        tls.set_alpn_protocols(["http/1.1"])
        if "client-ca" in OPTS:
            tls.load_verify_locations(OPTS["client-ca"])
            tls.verify_mode = ssl.CERT_REQUIRED

        def on_sni(sock, name, ctx):
            sock.edge_sni = name
        tls.sni_callback = on_sni
    srv = Server(("127.0.0.1", 0), TlsHandler if tls else Handler)
    srv.tls = tls
    port = srv.server_address[1]
    tmp = PORTFILE + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(str(port))
    os.rename(tmp, PORTFILE)
    srv.serve_forever()


if __name__ == "__main__":
    main()
