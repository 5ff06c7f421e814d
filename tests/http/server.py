#!/usr/bin/env python3
"""server.py: the HTTP test server for tests/http (standard library only).

Listens on 127.0.0.1 on a free port, prints the port on the first line of
stdout, and exits when its stdin closes (the test ended or died) or on
SIGTERM. Every request is recorded (method, path, query, headers, body).
`server.py --tls CERT KEY` also serves HTTPS on a second free port, printed
after the first on the same line. `--second` (alone or before --tls) also
serves plain HTTP on another free port, printed last: another origin for
redirect tests; both record into the same list ("port" says which).

Behaviour by query parameter, on any path not starting with /_:
  status=N          reply status (default 200)
  body=TEXT         reply body (default: a small JSON echo)
  ct=TYPE           Content-Type (default application/json)
  h=Name:Value      an extra reply header (repeatable)
  delay=SECONDS     wait before replying
  hang=1            never reply (the connection stays open)
  reset=1           close the connection with a TCP reset (SO_LINGER 0)
  size=N            a body of N bytes ("x"), sent in 64 KiB pieces
  chunked=1         with size: chunked encoding, no Content-Length
  retry_after=V     Retry-After: V ("date+N": an HTTP date N seconds ahead)
  retry_after_ms=V  retry-after-ms: V
  redirect=PATH     302 to PATH (a path or a whole URL)
  redirect_status=N with redirect: 301, 303, 307 or 308 instead
  pad=N             with body: N bytes of "x" before it
  key=K             groups requests for /_requests, /_verify and /_stats
  fail=N            with key: the first N requests for K get fail_status
  fail_status=S     default 503
  drop=SECONDS      keep-alive as usual (no "Connection: close"), but close the
                    connection SECONDS after the reply: a request sent on it
                    meanwhile is never answered (the close resets it), as
                    servers and proxies that drop idle connections do
  big_header=N[xK]  K reply headers (X-Big-0 ...; default 1) of N bytes each
Control endpoints:
  /_requests?key=K  the recorded requests (all when no key), JSON
  /_verify?key=K&secret=S  for each request of K: is X-Dagrun-Signature a
                    valid HMAC-SHA256 of "<t>.<body>" keyed with S (JSON list)
  /_stats?key=K     {"count": n, "max_concurrent": m} for K
"""
import email.utils
import hashlib
import hmac
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()
RECORDS = []          # dicts, in arrival order
RAW = []              # raw bodies, parallel to RECORDS
SEEN = {}             # key -> requests so far
ACTIVE = {}           # key -> requests being handled now
MAX_ACTIVE = {}       # key -> the most at once


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body, headers=(), ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def control(self, path, q):
        key = q.get("key", [None])[0]
        with LOCK:
            pairs = [(r, b) for r, b in zip(RECORDS, RAW) if key is None or r["key"] == key]
            if path == "/_requests":
                out = [r for r, _ in pairs]
            elif path == "/_verify":
                secret = q.get("secret", [""])[0].encode()
                out = [verify(r, b, secret) for r, b in pairs]
            elif path == "/_stats":
                out = {"count": SEEN.get(key, 0), "max_concurrent": MAX_ACTIVE.get(key, 0)}
            else:
                self.reply(404, b'{"error":"unknown control path"}')
                return
        self.reply(200, json.dumps(out).encode())

    def handle_any(self):
        url = urlsplit(self.path)
        q = parse_qs(url.query, keep_blank_values=True)
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if url.path.startswith("/_"):
            self.control(url.path, q)
            return
        key = q.get("key", [""])[0]
        with LOCK:
            RECORDS.append({
                "method": self.command, "path": url.path, "query": url.query, "key": key,
                "port": self.server.server_address[1],
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": raw.decode("utf-8", "replace"),
            })
            RAW.append(raw)
            SEEN[key] = SEEN.get(key, 0) + 1
            seen = SEEN[key]
            ACTIVE[key] = ACTIVE.get(key, 0) + 1
            MAX_ACTIVE[key] = max(MAX_ACTIVE.get(key, 0), ACTIVE[key])
        try:
            self.respond(q, url.path, seen)
        finally:
            with LOCK:
                ACTIVE[key] -= 1
        drop = q.get("drop", [None])[0]
        if drop is not None:
            self.wfile.flush()
            time.sleep(float(drop))
            self.close_connection = True

    def respond(self, q, path, seen):
        get = lambda name, default=None: q.get(name, [default])[0]
        if get("delay"):
            time.sleep(float(get("delay")))
        if get("hang"):
            time.sleep(3600)
        if get("reset"):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        status = int(get("status", "200"))
        if get("fail") and seen <= int(get("fail")):
            status = int(get("fail_status", "503"))
        headers = []
        for h in q.get("h", []):
            name, _, value = h.partition(":")
            headers.append((name, value))
        ra = get("retry_after")
        if ra is not None:
            if ra.startswith("date+"):
                ra = email.utils.formatdate(time.time() + int(ra[5:]), usegmt=True)
            headers.append(("Retry-After", ra))
        if get("retry_after_ms") is not None:
            headers.append(("retry-after-ms", get("retry_after_ms")))
        if get("big_header"):
            size, _, count = get("big_header").partition("x")
            for i in range(int(count or 1)):
                headers.append(("X-Big-%d" % i, "b" * int(size)))
        if get("redirect"):
            headers.append(("Location", get("redirect")))
            self.reply(int(get("redirect_status", "302")), b"", headers)
            return
        if get("size"):
            self.send_big(status, int(get("size")), bool(get("chunked")), headers)
            return
        body = get("body")
        if body is None:
            body = json.dumps({"method": self.command, "path": path, "n": seen})
        if get("pad"):
            body = "x" * int(get("pad")) + body
        self.reply(status, body.encode(), headers, get("ct", "application/json"))

    def send_big(self, status, size, chunked, headers):
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(size))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        piece = b"x" * 65536
        left = size
        try:
            while left > 0:
                part = piece[:min(left, len(piece))]
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                else:
                    self.wfile.write(part)
                left -= len(part)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True   # the client gave up: expected

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any


def verify(record, raw, secret):
    sig = record["headers"].get("x-dagrun-signature", "")
    parts = dict(p.split("=", 1) for p in sig.split(",") if "=" in p)
    if "t" not in parts or "v1" not in parts:
        return False
    want = hmac.new(secret, parts["t"].encode() + b"." + raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, parts["v1"])


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A client that gave up on a reply (a reset, a closed pipe) is what
        # some tests provoke; anything else is still reported.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    ports = [str(srv.server_address[1])]
    second = len(sys.argv) > 1 and sys.argv[1] == "--second"
    if second:
        del sys.argv[1]
    if len(sys.argv) == 4 and sys.argv[1] == "--tls":
        tls = Server(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
        ports.append(str(tls.server_address[1]))
        threading.Thread(target=tls.serve_forever, args=(0.1,), daemon=True).start()
    if second:
        other = Server(("127.0.0.1", 0), Handler)
        ports.append(str(other.server_address[1]))
        threading.Thread(target=other.serve_forever, args=(0.1,), daemon=True).start()
    print(" ".join(ports), flush=True)

    def watch_stdin():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    srv.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main()
