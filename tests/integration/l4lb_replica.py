#!/usr/bin/env python3
"""A stand-in L7 replica for l4lb's integration tests (stdlib only).

Listens on 127.0.0.1 for forwarded connections and, on a separate port,
answers GET /readyz with 200 (or 503 after SIGUSR1; SIGUSR2 makes it 200
again). Each forwarded connection must start with a PROXY protocol v2
header (unless --no-proxy); the replica parses it strictly and then reads
one command line:

  WHO\\n   -> "name=NAME src=IP:PORT dst=IP:PORT\\n", then echoes
  ECHO\\n  -> echoes every byte until EOF, then half-closes (SHUT_WR)
  HALF\\n  -> sends "bye\\n", half-closes at once, counts what still arrives
            and prints "half-received N" on stdout at EOF

A bad PROXY header closes the connection with "error=...\\n".
Prints "ready data=PORT check=PORT" on stdout once listening.
"""
import argparse
import signal
import socket
import struct
import sys
import threading

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
ready_ok = True


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError("eof in header")
        buf += chunk
    return buf


def parse_proxy_v2(conn):
    hdr = recv_exact(conn, 16)
    if hdr[:12] != SIG:
        raise ValueError("bad signature")
    ver_cmd, fam, length = hdr[12], hdr[13], struct.unpack("!H", hdr[14:16])[0]
    if ver_cmd >> 4 != 2 or ver_cmd & 0xF != 1:
        raise ValueError("bad version/command %#x" % ver_cmd)
    body = recv_exact(conn, length)
    if fam == 0x11:
        src = socket.inet_ntop(socket.AF_INET, body[0:4])
        dst = socket.inet_ntop(socket.AF_INET, body[4:8])
        sport, dport = struct.unpack("!HH", body[8:12])
        return "%s:%d" % (src, sport), "%s:%d" % (dst, dport)
    if fam == 0x21:
        src = socket.inet_ntop(socket.AF_INET6, body[0:16])
        dst = socket.inet_ntop(socket.AF_INET6, body[16:32])
        sport, dport = struct.unpack("!HH", body[32:36])
        return "[%s]:%d" % (src, sport), "[%s]:%d" % (dst, dport)
    raise ValueError("bad family %#x" % fam)


def read_line(conn):
    line = b""
    while not line.endswith(b"\n") and len(line) < 64:
        c = conn.recv(1)
        if not c:
            break
        line += c
    return line.strip()


def echo(conn):
    while True:
        data = conn.recv(1 << 16)
        if not data:
            break
        conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)


def serve_data(conn, name, proxy):
    try:
        src, dst = parse_proxy_v2(conn) if proxy else ("-", "-")
        cmd = read_line(conn)
        if cmd == b"WHO":
            conn.sendall(("name=%s src=%s dst=%s\n" % (name, src, dst)).encode())
            echo(conn)
        elif cmd == b"ECHO":
            echo(conn)
        elif cmd == b"HALF":
            conn.sendall(b"bye\n")
            conn.shutdown(socket.SHUT_WR)
            n = 0
            while True:
                data = conn.recv(1 << 16)
                if not data:
                    break
                n += len(data)
            print("half-received %d" % n, flush=True)
    except (ValueError, EOFError) as e:
        try:
            conn.sendall(("error=%s\n" % e).encode())
        except OSError:
            pass
    except OSError:
        pass
    finally:
        conn.close()


def serve_check(conn):
    try:
        conn.settimeout(5)
        req = b""
        while b"\r\n\r\n" not in req and len(req) < 8192:
            chunk = conn.recv(4096)
            if not chunk:
                break
            req += chunk
        if ready_ok and req.startswith(b"GET /readyz "):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        else:
            conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")
    except OSError:
        pass
    finally:
        conn.close()


def listener(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(256)
    return s


def accept_loop(sock, handler):
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=handler, args=(conn,), daemon=True).start()


def main():
    global ready_ok
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--check-port", type=int, default=0)
    p.add_argument("--no-proxy", action="store_true")
    a = p.parse_args()

    def not_ready(*_):
        global ready_ok
        ready_ok = False

    def ready(*_):
        global ready_ok
        ready_ok = True

    signal.signal(signal.SIGUSR1, not_ready)
    signal.signal(signal.SIGUSR2, ready)
    data = listener(a.port)
    check = listener(a.check_port)
    threading.Thread(target=accept_loop, args=(check, serve_check), daemon=True).start()
    print("ready data=%d check=%d" % (data.getsockname()[1], check.getsockname()[1]), flush=True)
    accept_loop(data, lambda c: serve_data(c, a.name, not a.no_proxy))


if __name__ == "__main__":
    sys.exit(main())
