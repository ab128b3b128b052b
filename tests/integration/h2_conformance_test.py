#!/usr/bin/env python3
"""HTTP/2 conformance of l7proxy's downstream codec, on h2c (prior
knowledge) and h2 (TLS, ALPN): our own runner of the cases h2spec checks
(h2spec itself is neither in Debian nor on npm). Each case is built from
what the upstream h2spec case sends and expects (RFC 9113 / RFC 7541
section numbers in the names); the frames and HPACK blocks are written
here, by hand, on a raw socket.

Usage: h2_conformance_test.py L7PROXY BACKEND_SCRIPT [unittest args]

An expected connection error passes on a GOAWAY with the code (or the
connection closing: h2spec accepts either); an expected stream error on a
RST_STREAM with the code, or a GOAWAY with it. Waits poll with a deadline.
"""
import os
import socket
import ssl
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import l7proxy_test as l7t  # noqa: E402
import l7proxy_tls_h2_test as tls  # noqa: E402
from l7proxy_test import cluster, route, vhost  # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST, SETTINGS, PUSH, PING, GOAWAY, WINDOW, CONT = range(10)
END_STREAM, END_HEADERS, PADDED, PRIO = 0x1, 0x4, 0x8, 0x20
NO_ERROR, PROTOCOL, INTERNAL, FLOW, TIMEOUT, CLOSED, FRAME_SIZE, REFUSED = range(8)
COMPRESSION = 9
DEADLINE_S = 10


def frame(t, flags, sid, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([t, flags]) + sid.to_bytes(4, "big") + payload


def hpack_int(v, prefix, first=0):
    top = (1 << prefix) - 1
    if v < top:
        return bytes([first | v])
    out = [first | top]
    v -= top
    while v >= 128:
        out.append(v % 128 + 128)
        v //= 128
    out.append(v)
    return bytes(out)


def lit(name, value):
    """Literal header field without indexing, new name, no Huffman."""
    n, v = name.encode(), value.encode()
    return b"\x00" + hpack_int(len(n), 7) + n + hpack_int(len(v), 7) + v


def block(method="GET", path="/", scheme="http", authority="a.test", extra=()):
    b = b""
    for k, v in ((":method", method), (":scheme", scheme), (":path", path),
                 (":authority", authority)):
        if v is not None:
            b += lit(k, v)
    for k, v in extra:
        b += lit(k, v)
    return b


class Conn:
    def __init__(self, port, use_tls):
        s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
        if use_tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            s = ctx.wrap_socket(s, server_hostname="a.test")
            assert s.selected_alpn_protocol() == "h2"
        self.s, self.buf = s, b""

    def send(self, *frames):
        try:
            self.s.sendall(b"".join(frames))
        except OSError:
            pass  # closed: the verdict comes from what was read

    def handshake(self):
        self.send(PREFACE, frame(SETTINGS, 0, 0))
        got = self.wait(lambda t, f, sid, p: t == SETTINGS and not f & 1)
        assert got, "no SETTINGS from the server"
        self.send(frame(SETTINGS, 1, 0))

    def frames(self, timeout=DEADLINE_S):
        """Yields (type, flags, sid, payload); ("close",) at EOF; stops at the deadline."""
        end = time.monotonic() + timeout
        self.s.settimeout(0.5)
        while time.monotonic() < end:
            while len(self.buf) >= 9 and len(self.buf) >= 9 + int.from_bytes(self.buf[:3], "big"):
                n = int.from_bytes(self.buf[:3], "big")
                f = (self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7fffffff,
                     self.buf[9:9 + n])
                self.buf = self.buf[9 + n:]
                yield f
            try:
                c = self.s.recv(65536)
            except socket.timeout:
                continue
            except (OSError, ssl.SSLError):
                c = b""
            if not c:
                yield ("close",)
                return
            self.buf += c

    def wait(self, pred):
        for f in self.frames():
            if f[0] == "close":
                return None
            if pred(*f):
                return f
        return None

    def close(self):
        self.s.close()


class Cases:
    """The cases; run by a subclass that sets PORT() and TLS."""

    TLS = False

    def conn(self, handshake=True):
        c = Conn(self.port(), self.TLS)
        self.addCleanup(c.close)
        if handshake:
            c.handshake()
        return c

    def expect_conn_error(self, c, code):
        for f in c.frames():
            if f[0] == "close":
                return  # h2spec accepts a closed connection
            if f[0] == GOAWAY:
                self.assertEqual(int.from_bytes(f[3][4:8], "big"), code, "GOAWAY code")
                return
        self.fail("no GOAWAY and the connection stayed open")

    def expect_stream_error(self, c, sid, code):
        for f in c.frames():
            if f[0] == "close":
                return
            if f[0] == RST and f[2] == sid:
                self.assertEqual(int.from_bytes(f[3][:4], "big"), code, "RST_STREAM code")
                return
            if f[0] == GOAWAY:
                self.assertEqual(int.from_bytes(f[3][4:8], "big"), code, "GOAWAY code")
                return
        self.fail("no RST_STREAM or GOAWAY")

    def expect_alive(self, c):
        c.send(frame(PING, 0, 0, b"h2speccc"))
        f = c.wait(lambda t, fl, sid, p: t == PING and fl & 1)
        self.assertIsNotNone(f, "the connection did not answer a PING")
        self.assertEqual(f[3], b"h2speccc")

    def open_stream(self, c, sid=1, end=False):
        c.send(frame(HEADERS, END_HEADERS | (END_STREAM if end else 0), sid,
                     block("POST" if not end else "GET")))

    # ---- 3.5 ----
    def test_3_5_2_invalid_connection_preface(self):
        c = self.conn(handshake=False)
        c.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\rQ")
        for f in c.frames():
            if f[0] == "close":  # closed: nothing but whole frames may have come first
                self.assertEqual(c.buf, b"", "bytes that are not HTTP/2 frames")
                return
            self.assertIn(f[0], (SETTINGS, GOAWAY), "not an HTTP/2 answer")
            if f[0] == GOAWAY:
                self.assertEqual(int.from_bytes(f[3][4:8], "big"), PROTOCOL)
                return
        self.fail("no GOAWAY and the connection stayed open")

    # ---- 4.2, 4.3 ----
    def test_4_2_data_larger_than_max_frame_size(self):
        c = self.conn()
        self.open_stream(c)
        c.send(frame(DATA, 0, 1, b"x" * 16385))
        self.expect_stream_error(c, 1, FRAME_SIZE)

    def test_4_2_headers_larger_than_max_frame_size(self):
        c = self.conn()
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1,
                     block(extra=[("x-dummy", "x" * 16384)])))
        self.expect_conn_error(c, FRAME_SIZE)

    def test_4_3_invalid_header_block_fragment(self):
        c = self.conn()
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x00\x00\x00\x00"))
        self.expect_conn_error(c, COMPRESSION)

    def test_4_3_priority_while_sending_header_blocks(self):
        c = self.conn()
        c.send(frame(HEADERS, END_STREAM, 1, block()), frame(PRIORITY, 0, 1, b"\0\0\0\0\x10"))
        self.expect_conn_error(c, PROTOCOL)

    def test_4_3_headers_to_another_stream_while_sending_header_blocks(self):
        c = self.conn()
        c.send(frame(HEADERS, END_STREAM, 1, block()),
               frame(HEADERS, END_HEADERS | END_STREAM, 3, block()))
        self.expect_conn_error(c, PROTOCOL)

    # ---- 5.1 stream states ----
    def test_5_1_idle_data(self):
        c = self.conn()
        c.send(frame(DATA, END_STREAM, 1, b"x"))
        self.expect_conn_error(c, PROTOCOL)

    def test_5_1_idle_rst_stream(self):
        c = self.conn()
        c.send(frame(RST, 0, 1, b"\0\0\0\x08"))
        self.expect_conn_error(c, PROTOCOL)

    def test_5_1_idle_window_update(self):
        c = self.conn()
        c.send(frame(WINDOW, 0, 1, b"\0\0\0\x64"))
        self.expect_conn_error(c, PROTOCOL)

    def test_5_1_idle_continuation(self):
        c = self.conn()
        c.send(frame(CONT, END_HEADERS, 1, block()))
        self.expect_conn_error(c, PROTOCOL)

    def test_5_1_half_closed_remote_data(self):
        c = self.conn()
        self.open_stream(c, 1, end=True)
        c.send(frame(DATA, END_STREAM, 1, b"x"))
        self.expect_stream_error(c, 1, CLOSED)

    def test_5_1_half_closed_remote_headers(self):
        c = self.conn()
        self.open_stream(c, 1, end=True)
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block()))
        self.expect_stream_error(c, 1, CLOSED)

    def test_5_1_closed_data_after_rst_stream(self):
        c = self.conn()
        self.open_stream(c, 1)
        c.send(frame(RST, 0, 1, b"\0\0\0\x08"), frame(DATA, END_STREAM, 1, b"x"))
        self.expect_stream_error(c, 1, CLOSED)

    def test_5_1_1_even_stream_identifier(self):
        c = self.conn()
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 2, block()))
        self.expect_conn_error(c, PROTOCOL)

    def test_5_1_1_stream_identifier_smaller_than_previous(self):
        c = self.conn()
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 5, block()))
        c.wait(lambda t, fl, sid, p: t == HEADERS and sid == 5)
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, block()))
        self.expect_conn_error(c, PROTOCOL)

    # ---- 5.3, 5.5 ----
    def test_5_3_1_headers_depending_on_itself(self):
        c = self.conn()
        c.send(frame(HEADERS, END_HEADERS | END_STREAM | PRIO, 1,
                     b"\0\0\0\x01\x10" + block()))
        self.expect_stream_error(c, 1, PROTOCOL)

    def test_5_3_1_priority_depending_on_itself(self):
        c = self.conn()
        c.send(frame(PRIORITY, 0, 1, b"\0\0\0\x01\x10"))
        self.expect_stream_error(c, 1, PROTOCOL)

    def test_5_5_unknown_frame_type_is_ignored(self):
        c = self.conn()
        c.send(frame(0xff, 0, 0, b"unknown"))
        self.expect_alive(c)

    def test_5_5_unknown_frame_in_the_middle_of_a_header_block(self):
        c = self.conn()
        c.send(frame(HEADERS, END_STREAM, 1, block()), frame(0xff, 0, 1, b"x"),
               frame(CONT, END_HEADERS, 1, b""))
        self.expect_conn_error(c, PROTOCOL)

    # ---- 6.x frame definitions ----
    def test_6_1_data_on_stream_0(self):
        c = self.conn()
        c.send(frame(DATA, END_STREAM, 0, b"x"))
        self.expect_conn_error(c, PROTOCOL)

    def test_6_1_data_with_invalid_pad_length(self):
        c = self.conn()
        self.open_stream(c)
        c.send(frame(DATA, PADDED | END_STREAM, 1, b"\x06xxxxx"))
        self.expect_conn_error(c, PROTOCOL)

    def test_6_2_headers_on_stream_0(self):
        c = self.conn()
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 0, block()))
        self.expect_conn_error(c, PROTOCOL)

    def test_6_2_headers_with_invalid_pad_length(self):
        c = self.conn()
        b = block()
        c.send(frame(HEADERS, END_HEADERS | END_STREAM | PADDED, 1, bytes([len(b) + 1]) + b))
        self.expect_conn_error(c, PROTOCOL)

    def test_6_3_priority_on_stream_0(self):
        c = self.conn()
        c.send(frame(PRIORITY, 0, 0, b"\0\0\0\x01\x10"))
        self.expect_conn_error(c, PROTOCOL)

    def test_6_3_priority_of_wrong_length(self):
        c = self.conn()
        c.send(frame(PRIORITY, 0, 1, b"\0\0\0\x01"))
        self.expect_stream_error(c, 1, FRAME_SIZE)

    def test_6_4_rst_stream_on_stream_0(self):
        c = self.conn()
        c.send(frame(RST, 0, 0, b"\0\0\0\x08"))
        self.expect_conn_error(c, PROTOCOL)

    def test_6_4_rst_stream_of_wrong_length(self):
        c = self.conn()
        self.open_stream(c)
        c.send(frame(RST, 0, 1, b"\0\0\x08"))
        self.expect_conn_error(c, FRAME_SIZE)

    def test_6_5_settings_ack_with_payload(self):
        c = self.conn()
        c.send(frame(SETTINGS, 1, 0, b"\0\x03\0\0\0\x64"))
        self.expect_conn_error(c, FRAME_SIZE)

    def test_6_5_settings_on_a_stream(self):
        c = self.conn()
        c.send(frame(SETTINGS, 0, 1, b"\0\x03\0\0\0\x64"))
        self.expect_conn_error(c, PROTOCOL)

    def test_6_5_settings_of_wrong_length(self):
        c = self.conn()
        c.send(frame(SETTINGS, 0, 0, b"\0\x03\0"))
        self.expect_conn_error(c, FRAME_SIZE)

    def test_6_5_2_enable_push_other_than_0_or_1(self):
        c = self.conn()
        c.send(frame(SETTINGS, 0, 0, b"\0\x02\0\0\0\x02"))
        self.expect_conn_error(c, PROTOCOL)

    def test_6_5_2_initial_window_size_above_maximum(self):
        c = self.conn()
        c.send(frame(SETTINGS, 0, 0, b"\0\x04\x80\0\0\0"))
        self.expect_conn_error(c, FLOW)

    def test_6_5_2_max_frame_size_below_initial(self):
        c = self.conn()
        c.send(frame(SETTINGS, 0, 0, b"\0\x05\0\0\x3f\xff"))
        self.expect_conn_error(c, PROTOCOL)

    def test_6_5_2_max_frame_size_above_maximum(self):
        c = self.conn()
        c.send(frame(SETTINGS, 0, 0, b"\0\x05\x01\0\0\0"))
        self.expect_conn_error(c, PROTOCOL)

    def test_6_5_3_unknown_setting_is_ignored_and_acknowledged(self):
        c = self.conn()
        c.send(frame(SETTINGS, 0, 0, b"\x00\xff\0\0\0\x01"))
        self.assertIsNotNone(c.wait(lambda t, fl, sid, p: t == SETTINGS and fl & 1))

    def test_6_7_ping_is_answered_with_the_same_payload(self):
        self.expect_alive(self.conn())

    def test_6_7_ping_on_a_stream(self):
        c = self.conn()
        c.send(frame(PING, 0, 1, b"h2speccc"))
        self.expect_conn_error(c, PROTOCOL)

    def test_6_7_ping_of_wrong_length(self):
        c = self.conn()
        c.send(frame(PING, 0, 0, b"h2spec"))
        self.expect_conn_error(c, FRAME_SIZE)

    def test_6_8_goaway_on_a_stream(self):
        c = self.conn()
        c.send(frame(GOAWAY, 0, 1, b"\0\0\0\0\0\0\0\0"))
        self.expect_conn_error(c, PROTOCOL)

    def test_6_9_window_update_with_zero_increment(self):
        c = self.conn()
        c.send(frame(WINDOW, 0, 0, b"\0\0\0\0"))
        self.expect_conn_error(c, PROTOCOL)

    def test_6_9_window_update_of_wrong_length(self):
        c = self.conn()
        c.send(frame(WINDOW, 0, 0, b"\0\0\x01"))
        self.expect_conn_error(c, FRAME_SIZE)

    def test_6_9_1_connection_window_above_maximum(self):
        c = self.conn()
        c.send(frame(WINDOW, 0, 0, b"\x7f\xff\xff\xff"))
        self.expect_conn_error(c, FLOW)

    def test_6_10_continuation_after_end_headers(self):
        c = self.conn()
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block()),
               frame(CONT, END_HEADERS, 1, lit("x-dummy", "x")))
        self.expect_conn_error(c, PROTOCOL)

    def test_6_10_continuation_on_stream_0(self):
        c = self.conn()
        c.send(frame(HEADERS, END_STREAM, 1, block()), frame(CONT, END_HEADERS, 0, b""))
        self.expect_conn_error(c, PROTOCOL)

    def test_6_10_headers_followed_by_data_before_continuation(self):
        c = self.conn()
        c.send(frame(HEADERS, 0, 1, block()), frame(DATA, END_STREAM, 1, b"x"))
        self.expect_conn_error(c, PROTOCOL)

    # ---- 8.1 HTTP messages ----
    def bad_request(self, b):
        c = self.conn()
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, b))
        self.expect_stream_error(c, 1, PROTOCOL)

    def test_8_1_2_uppercase_header_name(self):
        self.bad_request(block(extra=[("X-Upper", "1")]))

    def test_8_1_2_1_pseudo_header_after_regular_header(self):
        self.bad_request(block(path=None) + lit("x-a", "1") + lit(":path", "/"))

    def test_8_1_2_1_unknown_pseudo_header(self):
        self.bad_request(block(extra=[(":foo", "bar")]))

    def test_8_1_2_1_response_pseudo_header_in_a_request(self):
        self.bad_request(block(extra=[(":status", "200")]))

    def test_8_1_2_2_connection_specific_header(self):
        self.bad_request(block(extra=[("connection", "keep-alive")]))

    def test_8_1_2_2_te_other_than_trailers(self):
        self.bad_request(block(extra=[("te", "gzip")]))

    def test_8_1_2_3_missing_path(self):
        self.bad_request(block(path=None))

    def test_8_1_2_3_empty_path(self):
        self.bad_request(block(path=""))

    def test_8_1_2_3_duplicate_method(self):
        self.bad_request(block(extra=[(":method", "GET")]))

    def test_8_1_2_6_content_length_mismatch(self):
        c = self.conn()
        c.send(frame(HEADERS, END_HEADERS, 1, block("POST", extra=[("content-length", "1")])),
               frame(DATA, END_STREAM, 1, b"xx"))
        self.expect_stream_error(c, 1, PROTOCOL)

    def test_8_1_a_valid_request_is_answered(self):
        c = self.conn()
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block()))
        f = c.wait(lambda t, fl, sid, p: t == HEADERS and sid == 1)
        self.assertIsNotNone(f, "no response HEADERS")


class H2cConformance(Cases, tls.TlsBase):
    TLS = False

    def setUp(self):
        super().setUp()
        self.start_tls(self.resources() + [vhost("vq", "q.test", [route("/", "ca")])])

    def port(self):
        return self.proxy.port


class H2Conformance(H2cConformance):
    TLS = True

    def port(self):
        return self.https_port


if __name__ == "__main__":
    l7t.L7PROXY, l7t.BACKEND = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    l7t.skip_policy.main([sys.argv[0]] + sys.argv[3:])
