#!/usr/bin/env python3
"""An OCSP responder stand-in for tests, built on `openssl ocsp`.

It answers OCSP over HTTP (RFC 6960 appendix A: POST with an
application/ocsp-request body, or GET /<base64 request>) on 127.0.0.1 only,
and makes every answer with the real `openssl ocsp` responder, run once per
request on an OpenSSL CA index file (index.txt), so the responses are
exactly what OpenSSL's responder signs, and an edit of the index (a
revocation) shows in the next answer.

Usage:
  ocsp_responder.py serve --dir=DIR --ca=CA.crt --signer=S.crt --signer-key=S.key
                    --port-file=FILE [--nmin=N]
      Serves until killed. --signer may be the CA itself or a delegated
      responder certificate (extendedKeyUsage OCSPSigning) the CA issued.
      --nmin: nextUpdate N minutes after thisUpdate (default: 1 day).
      DIR/index.txt is the index; DIR/requests.log gets one line per
      request; while DIR/down exists every request gets HTTP 503.
  ocsp_responder.py add --dir=DIR CERT       mark CERT valid in the index
  ocsp_responder.py revoke --dir=DIR CERT    mark CERT revoked

As a module: add(dir, cert_path), revoke(dir, cert_path).
"""
import base64
import datetime
import http.server
import os
import socketserver
import subprocess
import sys
import tempfile
import threading
import urllib.parse

MAX_REQUEST = 64 * 1024


def _x509(cert, *what):
    out = subprocess.run(["openssl", "x509", "-in", cert, "-noout"] + list(what),
                         capture_output=True, check=True, text=True).stdout
    return out.strip()


def _entry(cert):
    serial = _x509(cert, "-serial").split("=", 1)[1].upper()
    end = _x509(cert, "-enddate").split("=", 1)[1]
    when = datetime.datetime.strptime(end, "%b %d %H:%M:%S %Y %Z")
    subject = _x509(cert, "-subject", "-nameopt", "compat").split("=", 1)[1].strip()
    return serial, when.strftime("%y%m%d%H%M%SZ"), subject


def _write_index(d, serial, line):
    path = os.path.join(d, "index.txt")
    lines = []
    if os.path.exists(path):
        with open(path) as f:
            lines = [l for l in f.read().splitlines() if l and l.split("\t")[3] != serial]
    lines.append(line)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.rename(tmp, path)


def add(d, cert):
    serial, expiry, subject = _entry(cert)
    _write_index(d, serial, "\t".join(["V", expiry, "", serial, "unknown", subject]))


def revoke(d, cert):
    serial, expiry, subject = _entry(cert)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%y%m%d%H%M%SZ")
    _write_index(d, serial, "\t".join(["R", expiry, now + ",keyCompromise", serial, "unknown",
                                       subject]))


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "ocsp-standin"

    def log_message(self, fmt, *args):
        pass

    def answer(self, req):
        cfg = self.server.cfg
        with open(os.path.join(cfg["dir"], "requests.log"), "a") as log:
            log.write("%s %d\n" % (self.command, len(req)))
        if os.path.exists(os.path.join(cfg["dir"], "down")):
            self.send_error(503)
            return
        with tempfile.TemporaryDirectory() as tmp:
            reqf, respf = os.path.join(tmp, "req.der"), os.path.join(tmp, "resp.der")
            with open(reqf, "wb") as f:
                f.write(req)
            args = ["openssl", "ocsp", "-index", os.path.join(cfg["dir"], "index.txt"),
                    "-CA", cfg["ca"], "-rsigner", cfg["signer"], "-rkey", cfg["signer_key"],
                    "-reqin", reqf, "-respout", respf]
            args += ["-nmin", cfg["nmin"]] if cfg.get("nmin") else ["-ndays", "1"]
            r = subprocess.run(args, capture_output=True, timeout=30)
            if r.returncode != 0 or not os.path.exists(respf):
                self.send_error(500)
                return
            with open(respf, "rb") as f:
                body = f.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/ocsp-response")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        if n <= 0 or n > MAX_REQUEST:
            self.send_error(400)
            return
        self.answer(self.rfile.read(n))

    def do_GET(self):
        try:
            req = base64.b64decode(urllib.parse.unquote(self.path.lstrip("/")), validate=True)
        except ValueError:
            self.send_error(400)
            return
        self.answer(req)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[1]
    opts = dict(a[2:].split("=", 1) for a in argv[2:] if a.startswith("--"))
    rest = [a for a in argv[2:] if not a.startswith("--")]
    if cmd in ("add", "revoke"):
        (add if cmd == "add" else revoke)(opts["dir"], rest[0])
        return 0
    if cmd != "serve":
        print(__doc__, file=sys.stderr)
        return 2
    srv = Server(("127.0.0.1", 0), Handler)
    srv.cfg = {"dir": opts["dir"], "ca": opts["ca"], "signer": opts["signer"],
               "signer_key": opts["signer-key"], "nmin": opts.get("nmin")}
    tmp = opts["port-file"] + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, opts["port-file"])
    srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
