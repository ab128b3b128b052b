#!/usr/bin/env python3
"""A tiny HTTP/1.1 test backend for the l7proxy integration tests.

Usage: l7proxy_backend.py NAME PORTFILE
Binds 127.0.0.1 on a kernel-chosen port, writes the port to PORTFILE, and
answers every request with JSON describing it:
  {"backend": NAME, "method", "path", "headers": {lower-case name: value},
   "body_len", "body_sha": first 64 bytes of the body}
Special paths:
  /status/NNN        answer with status NNN
  /chunked?n=K       a chunked response with K chunks
  /big?n=BYTES       a Content-Length body of BYTES 'x'
  /slow?ms=N         wait N ms before answering
  /close             answer with Connection: close
  /empty             an empty body (Content-Length: 0)
  /nobody?status=N&te=chunked|&cl=K  status N (204/304) with a Transfer-Encoding:
                     chunked or Content-Length: K header and no body (RFC 9112:
                     such responses never have one)
  /coded?coding=C    "Transfer-Encoding: C, chunked" and a chunked body "coded-body"
  /trailers          the JSON as a chunked body with the trailer X-Trailer: yes
Upgrade: websocket  -> 101, then echoes every byte back (raw tunnel).
Keeps connections alive (HTTP/1.1); decodes chunked request bodies.
"""
import base64
import hashlib
import json
import socket
import socketserver
import sys
import threading
import time
import urllib.parse

NAME = sys.argv[1] if len(sys.argv) > 1 else "backend"


def read_line(f):
    line = f.readline(65537)
    if not line:
        raise EOFError
    return line


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while self.one():
                pass
        except (EOFError, ConnectionError, OSError):
            pass

    def one(self):
        f = self.rfile
        line = read_line(f)
        while line in (b"\r\n", b"\n"):
            line = read_line(f)
        parts = line.decode("latin-1").strip().split(" ")
        if len(parts) != 3:
            return False
        method, target, version = parts
        headers = {}
        raw_headers = []
        while True:
            h = read_line(f)
            if h in (b"\r\n", b"\n"):
                break
            k, _, v = h.decode("latin-1").partition(":")
            k = k.strip().lower()
            v = v.strip()
            raw_headers.append([k, v])
            headers[k] = headers[k] + ", " + v if k in headers else v
        body = b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size = int(read_line(f).split(b";")[0].strip(), 16)
                if size == 0:
                    while read_line(f) not in (b"\r\n", b"\n"):
                        pass
                    break
                body += f.read(size)
                read_line(f)
        elif "content-length" in headers:
            body = f.read(int(headers["content-length"]))
        u = urllib.parse.urlsplit(target)
        q = urllib.parse.parse_qs(u.query)
        path = u.path
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if headers.get("upgrade", "").lower() == "websocket":
            key = headers.get("sec-websocket-key", "")
            acc = base64.b64encode(hashlib.sha1(
                (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            self.wfile.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % acc).encode())
            self.wfile.flush()
            while True:
                data = self.request.recv(65536)
                if not data:
                    return False
                self.request.sendall(data)
        status = 200
        extra = ""
        if path.startswith("/status/"):
            status = int(path.split("/")[2])
        if path == "/slow":
            time.sleep(int(q.get("ms", ["100"])[0]) / 1000.0)
        if path == "/close":
            keep = False
        info = {"backend": NAME, "peer": self.client_address[1], "method": method, "path": target, "headers": headers,
                "raw_headers": raw_headers, "body_len": len(body),
                "body_head": body[:64].decode("latin-1"), "version": version}
        out = json.dumps(info).encode()
        if path == "/big":
            out = b"x" * int(q.get("n", ["1000"])[0])
        if path == "/empty":
            out = b""
        conn = "" if keep else "Connection: close\r\n"
        if path == "/nobody":
            st = int(q.get("status", ["204"])[0])
            framing = ""
            if q.get("te"):
                framing = "Transfer-Encoding: %s\r\n" % q["te"][0]
            elif q.get("cl"):
                framing = "Content-Length: %s\r\n" % q["cl"][0]
            self.wfile.write(("HTTP/1.1 %d X\r\nX-Backend: %s\r\n%s%s\r\n" % (
                st, NAME, framing, conn)).encode())
            self.wfile.flush()
            return keep
        if path == "/trailers":
            self.wfile.write(("HTTP/1.1 200 OK\r\nX-Backend: %s\r\nTrailer: X-Trailer\r\n"
                              "Transfer-Encoding: chunked\r\n%s\r\n" % (NAME, conn)).encode() +
                             b"%x\r\n%s\r\n0\r\nX-Trailer: yes\r\n\r\n" % (len(out), out))
            self.wfile.flush()
            return keep
        if path == "/coded":
            coding = q.get("coding", ["gzip"])[0]
            self.wfile.write(("HTTP/1.1 200 OK\r\nX-Backend: %s\r\nTransfer-Encoding: %s, chunked"
                              "\r\n%s\r\n" % (NAME, coding, conn)).encode() +
                             b"5\r\ncoded\r\n5\r\n-body\r\n0\r\n\r\n")
            self.wfile.flush()
            return keep
        if path == "/chunked":
            n = int(q.get("n", ["3"])[0])
            head = ("HTTP/1.1 %d OK\r\nContent-Type: application/json\r\nX-Backend: %s\r\n"
                    "Transfer-Encoding: chunked\r\n%s\r\n" % (status, NAME, conn))
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(out), out) for _ in range(n))
            self.wfile.write(head.encode() + chunks + b"0\r\n\r\n")
        elif method == "HEAD":
            self.wfile.write(("HTTP/1.1 %d OK\r\nContent-Type: application/json\r\nX-Backend: %s\r\n"
                              "Content-Length: %d\r\n%s\r\n" % (status, NAME, len(out), conn)).encode())
        else:
            nobody = status in (204, 304)
            self.wfile.write(("HTTP/1.1 %d X\r\nContent-Type: application/json\r\nX-Backend: %s\r\n"
                              "X-Path: %s\r\nServer: testbackend\r\nKeep-Alive: timeout=5\r\n%s%s\r\n" % (
                                  status, NAME, target,
                                  "" if nobody else "Content-Length: %d\r\n" % len(out),
                                  conn)).encode() + (b"" if nobody else out))
        self.wfile.flush()
        return keep


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    port = srv.server_address[1]
    if len(sys.argv) > 2:
        tmp = sys.argv[2] + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(str(port))
        import os
        os.rename(tmp, sys.argv[2])
    else:
        print(port, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
