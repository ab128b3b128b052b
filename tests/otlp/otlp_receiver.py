#!/usr/bin/env python3
"""An in-tree OTLP/HTTP trace receiver for the tests.

Usage: otlp_receiver.py PORTFILE [--fail-first=N] [--hang]

Binds 127.0.0.1 on a kernel-chosen port, writes the port to PORTFILE and
accepts POST /v1/traces with Content-Type application/x-protobuf. Each body
is decoded here, with a protobuf wire-format reader and the OTLP field
numbers written out below from the OpenTelemetry specification
(ExportTraceServiceRequest -> ResourceSpans -> ScopeSpans -> Span) -- not
with edge's own generated code, so a wrong field number in
proto/otlp/trace.proto shows up as a decoding failure here. Every span is
checked for the OTLP rules (16-byte non-zero trace id, 8-byte non-zero span
id, an 8-byte parent or none, end >= start); a request that breaks one is
answered 400 and recorded as an error.

GET /spans answers {"spans": [...], "errors": [...], "requests": N} with ids
as lower-case hex, attributes as a dict, events as a list.
--fail-first=N answers the first N exports with 503 (export failures);
--hang accepts connections and never answers (a stuck collector).
"""
import json
import socketserver
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

LOCK = threading.Lock()
SPANS = []
ERRORS = []
REQUESTS = [0]
FAIL_FIRST = [0]
HANG = [False]


class WireError(ValueError):
    pass


def varint(buf, i):
    shift = 0
    val = 0
    while True:
        if i >= len(buf):
            raise WireError("truncated varint")
        b = buf[i]
        i += 1
        val |= (b & 0x7F) << shift
        if not b & 0x80:
            return val, i
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def fields(buf):
    """Decodes one message: {field number: [(wire type, value), ...]}."""
    out = {}
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise WireError("field number 0")
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 1:
            if i + 8 > len(buf):
                raise WireError("truncated fixed64")
            v = struct.unpack_from("<Q", buf, i)[0]
            i += 8
        elif wt == 2:
            n, i = varint(buf, i)
            if i + n > len(buf):
                raise WireError("truncated bytes")
            v = bytes(buf[i:i + n])
            i += n
        elif wt == 5:
            if i + 4 > len(buf):
                raise WireError("truncated fixed32")
            v = struct.unpack_from("<I", buf, i)[0]
            i += 4
        else:
            raise WireError("wire type %d" % wt)
        out.setdefault(num, []).append((wt, v))
    return out


def one(f, num, wt, default=None):
    vals = [v for (t, v) in f.get(num, []) if t == wt]
    if len(f.get(num, [])) != len(vals):
        raise WireError("field %d has the wrong wire type" % num)
    return vals[-1] if vals else default


def many(f, num, wt):
    vals = [v for (t, v) in f.get(num, []) if t == wt]
    if len(f.get(num, [])) != len(vals):
        raise WireError("field %d has the wrong wire type" % num)
    return vals


# opentelemetry.proto.common.v1.AnyValue: string 1, bool 2, int 3, double 4, bytes 7
def any_value(b):
    f = fields(b)
    if 1 in f:
        return one(f, 1, 2).decode("utf-8")
    if 2 in f:
        return bool(one(f, 2, 0))
    if 3 in f:
        v = one(f, 3, 0)
        return v - (1 << 64) if v >= 1 << 63 else v
    if 4 in f:
        return struct.unpack("<d", struct.pack("<Q", one(f, 4, 1)))[0]
    if 7 in f:
        return one(f, 7, 2).hex()
    return None


# KeyValue: key 1, value 2
def attributes(raw):
    out = {}
    for b in raw:
        f = fields(b)
        out[one(f, 1, 2, b"").decode("utf-8")] = any_value(one(f, 2, 2, b""))
    return out


def decode_span(b, resource):
    f = fields(b)
    s = {
        "trace_id": one(f, 1, 2, b""),
        "span_id": one(f, 2, 2, b""),
        "trace_state": one(f, 3, 2, b"").decode("utf-8"),
        "parent_span_id": one(f, 4, 2, b""),
        "name": one(f, 5, 2, b"").decode("utf-8"),
        "kind": one(f, 6, 0, 0),
        "start": one(f, 7, 1, 0),
        "end": one(f, 8, 1, 0),
        "attributes": attributes(many(f, 9, 2)),
        "events": [],
        "dropped_events": one(f, 12, 0, 0),
        "flags": one(f, 16, 5, 0),
        "resource": resource,
    }
    for eb in many(f, 11, 2):  # Event: time 1 (fixed64), name 2, attributes 3
        ef = fields(eb)
        s["events"].append({"time": one(ef, 1, 1, 0), "name": one(ef, 2, 2, b"").decode(),
                            "attributes": attributes(many(ef, 3, 2))})
    st = one(f, 15, 2)  # Status: message 2, code 3
    if st is not None:
        sf = fields(st)
        s["status"] = {"code": one(sf, 3, 0, 0), "message": one(sf, 2, 2, b"").decode()}
    else:
        s["status"] = {"code": 0, "message": ""}
    if len(s["trace_id"]) != 16 or not any(s["trace_id"]):
        raise WireError("bad trace_id %r" % s["trace_id"])
    if len(s["span_id"]) != 8 or not any(s["span_id"]):
        raise WireError("bad span_id %r" % s["span_id"])
    if len(s["parent_span_id"]) not in (0, 8):
        raise WireError("bad parent_span_id")
    if s["end"] < s["start"] or s["start"] < 10**18:
        raise WireError("bad times %d..%d" % (s["start"], s["end"]))
    for k in ("trace_id", "span_id", "parent_span_id"):
        s[k] = s[k].hex()
    return s


def decode_request(body):
    spans = []
    req = fields(body)
    for rs in many(req, 1, 2):  # ExportTraceServiceRequest.resource_spans = 1
        rsf = fields(rs)
        res = one(rsf, 1, 2)  # ResourceSpans.resource = 1; Resource.attributes = 1
        resource = attributes(many(fields(res), 1, 2)) if res is not None else {}
        for ss in many(rsf, 2, 2):  # ResourceSpans.scope_spans = 2
            ssf = fields(ss)
            scope = one(ssf, 1, 2)  # ScopeSpans.scope = 1: name 1, version 2
            scope_name = one(fields(scope), 1, 2, b"").decode() if scope is not None else ""
            for sp in many(ssf, 2, 2):  # ScopeSpans.spans = 2
                s = decode_span(sp, resource)
                s["scope"] = scope_name
                spans.append(s)
    return spans


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, code, body=b"", ctype="application/x-protobuf"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path != "/spans":
            return self.answer(404)
        with LOCK:
            body = json.dumps({"spans": SPANS, "errors": ERRORS,
                               "requests": REQUESTS[0]}).encode()
        self.answer(200, body, "application/json")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        if HANG[0]:
            time.sleep(3600)
            return
        with LOCK:
            REQUESTS[0] += 1
            if FAIL_FIRST[0] > 0:
                FAIL_FIRST[0] -= 1
                return self.answer(503)
        if self.path != "/v1/traces":
            return self.answer(404)
        if self.headers.get("Content-Type") != "application/x-protobuf":
            with LOCK:
                ERRORS.append("content-type %s" % self.headers.get("Content-Type"))
            return self.answer(415)
        try:
            spans = decode_request(body)
        except (WireError, UnicodeDecodeError) as e:
            with LOCK:
                ERRORS.append(str(e))
            return self.answer(400)
        with LOCK:
            SPANS.extend(spans)
        # ExportTraceServiceResponse with no partial_success: an empty message
        self.answer(200)


class Server(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True


def main():
    portfile = sys.argv[1]
    for a in sys.argv[2:]:
        if a.startswith("--fail-first="):
            FAIL_FIRST[0] = int(a.split("=", 1)[1])
        elif a == "--hang":
            HANG[0] = True
    srv = Server(("127.0.0.1", 0), Handler)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os
    os.rename(portfile + ".tmp", portfile)
    srv.serve_forever()


if __name__ == "__main__":
    main()
