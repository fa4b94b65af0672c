#!/usr/bin/python3
"""Loopback HTTP/1.1 file server with scripted faults, for the HTTP store and mount tests and for
benchmarks.  Standard library only; threaded; keep-alive; optional TLS.

As a module:

    from faultserver import FaultServer
    with FaultServer(root="/data/a.zarr") as srv:          # 127.0.0.1, a free port
        srv.add("0/1.*", "status", status=503, times=2)    # first 2 matching requests: 503
        url = srv.url("0/1.0.0")
        ...
        srv.count("0/1.*")        # requests whose path matched (every attempt and redirect hop)
        srv.requests              # [Request(path, method, headers, authorization, conn, t)]
        srv.connections           # TCP connections accepted
        srv.max_concurrent        # most requests being handled at once

  Files come from `root` (a directory) and/or `files` ({"key/path": bytes}, which wins).  Served
  files carry an ETag and a Last-Modified header.  A single "Range: bytes=..." request header is
  answered with 206 and Content-Range (416 when unsatisfiable); srv.sent lists (path, range,
  body bytes) of every file response and srv.bytes_sent(glob) sums them.  Paths are matched without the leading "/".

As a program (for benchmarks and manual tests):

    faultserver.py ROOT [--host 127.0.0.1] [--port 0] [--delay-ms N]
                   [--fault 'GLOB KIND [times=K] [name=value ...]'] ...
  prints "port N" on stdout once listening, then serves until SIGINT or SIGTERM.

Faults: srv.add(glob, kind, times=None, **params).  Rules are tried in the order added; the first
rule whose glob matches the path (fnmatch) and that has uses left applies, and uses one.  times=None
means forever.  Kinds:
  status    status=S [retry_after=V] [body=TEXT]   answer S (503, 500, 404, 410, 403, 408, 429 ...)
  truncate  Content-Length of the whole file, then half the body, then close the connection
  reset     close the connection without answering
  hang      read the request and never answer (until the server stops)
  trickle   interval_ms=N: send the body one byte every N ms
  delay     ms=N: wait N ms, then serve normally (holds requests in flight)
  body      size=N [length=1|0]: N bytes of b"x" instead of the file; length=0 sends no
            Content-Length and ends the body by closing the connection
  auth      user=U password=P: 401 (WWW-Authenticate: Basic) unless the request carries exactly
            these basic credentials; matching requests go on to the next rules (not used up)
  norange   ignore a Range header: answer 200 with the whole file (a server without ranges)
  redirect  to=URL [status=302]: redirect; in `to`, "{path}" is the request path (no leading
            "/"); as a module `to` may also be a function path -> URL
"""

import argparse
import base64
import collections
import email.utils
import fnmatch
import os
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Request = collections.namedtuple("Request", "path method headers authorization conn t")


class _Rule:
    def __init__(self, glob, kind, times, params):
        self.glob, self.kind, self.left, self.params = glob, kind, times, params


KINDS = ("status", "truncate", "reset", "hang", "trickle", "delay", "body", "auth", "redirect", "norange")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server_version = "faultserver"
    sys_version = ""

    def log_message(self, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        fs = self.server.fault
        with fs._lock:
            fs._conn_seq += 1
            self.conn_id = fs._conn_seq

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _serve(self, head):
        fs = self.server.fault
        path = self.path.split("?", 1)[0].lstrip("/")
        headers = {k.lower(): v for k, v in self.headers.items()}
        with fs._lock:
            fs.requests.append(Request(self.path, self.command, headers,
                                       headers.get("authorization"), self.conn_id, time.monotonic()))
            fs._active += 1
            fs.max_concurrent = max(fs.max_concurrent, fs._active)
        try:
            if fs.delay_ms:
                time.sleep(fs.delay_ms / 1000.0)
            self._apply(path, headers, head)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True
        finally:
            with fs._lock:
                fs._active -= 1

    # -- responses ------------------------------------------------------------------------

    def _send(self, status, body=b"", extra=(), head=False):
        self.send_response(status)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _apply(self, path, headers, head):
        fs = self.server.fault
        for rule in fs._rules_for(path, headers):
            p = rule.params
            k = rule.kind
            if k == "status":
                st = int(p.get("status", 503))
                extra = []
                if "retry_after" in p:
                    extra.append(("Retry-After", str(p["retry_after"])))
                if st == 401:
                    extra.append(("WWW-Authenticate", 'Basic realm="faultserver"'))
                self._send(st, str(p.get("body", "fault %d\n" % st)).encode(), extra, head)
                return
            if k == "auth":
                self._send(401, b"authentication required\n",
                           [("WWW-Authenticate", 'Basic realm="faultserver"')], head)
                return
            if k == "redirect":
                to = p["to"]
                to = to(path) if callable(to) else str(to).replace("{path}", path)
                self._send(int(p.get("status", 302)), b"", [("Location", to)], head)
                return
            if k == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.close_connection = True
                return
            if k == "hang":
                fs._stop.wait(float(p.get("seconds", 3600)))
                self.close_connection = True
                return
            if k == "delay":
                fs._stop.wait(float(p.get("ms", 100)) / 1000.0)
                continue  # then serve normally
            if k == "body":
                size = int(p.get("size", 1 << 20))
                with_length = str(p.get("length", "1")) not in ("0", "false", "False")
                self.send_response(200)
                if with_length:
                    self.send_header("Content-Length", str(size))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if not head:
                    chunk = b"x" * 65536
                    left = size
                    while left > 0:
                        n = min(left, len(chunk))
                        self.wfile.write(chunk[:n])
                        left -= n
                return
            data = fs._file(path)
            if data is None:
                self._send(404, b"not found\n", (), head)
                return
            if k == "norange":
                etag, modified = fs._validators(path, data)
                self._send(200, data, [("ETag", etag), ("Last-Modified", modified)], head)
                fs._sent(path, None, len(data))
                return
            if k == "truncate":
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            if k == "trickle":
                interval = float(p.get("interval_ms", 100)) / 1000.0
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.flush()
                for i in range(len(data)):
                    if fs._stop.wait(interval):
                        break
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
                self.close_connection = True
                return
        rng = headers.get("range")
        if rng is not None:
            # Reads only the range from disk (a shard may be large); validators from size and mtime.
            found = fs._file_part(path, rng)
            if found is None:
                self._send(404, b"not found\n", (), head)
                return
            size, part, body, etag, modified = found
            if part is None:
                self._send(416, b"", [("Content-Range", "bytes */%d" % size)], head)
                fs._sent(path, rng, 0)
                return
            self._send(206, body, [("ETag", etag), ("Last-Modified", modified),
                                   ("Content-Range", "bytes %d-%d/%d" % (part[0], part[1], size))], head)
            fs._sent(path, rng, len(body))
            return
        data = fs._file(path)
        if data is None:
            self._send(404, b"not found\n", (), head)
            return
        etag, modified = fs._validators(path, data)
        self._send(200, data, [("ETag", etag), ("Last-Modified", modified)], head)
        fs._sent(path, None, len(data))


class FaultServer:
    """See the module docstring.  Thread-safe; a context manager (start on enter, stop on exit)."""

    def __init__(self, root=None, files=None, host="127.0.0.1", port=0, delay_ms=0, tls=None):
        self.root = os.path.abspath(root) if root else None
        self.files = dict(files or {})
        self.host = host
        self.delay_ms = delay_ms
        self.requests = []
        self.max_concurrent = 0
        self.sent = []  # (path, Range header or None, body bytes) of every file response served
        self._rules = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conn_seq = 0
        self._active = 0
        self._httpd = _Server((host, port), _Handler)
        self._httpd.fault = self
        self.scheme = "http"
        if tls:
            certfile, keyfile = tls
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(certfile, keyfile)
            self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
            self.scheme = "https"
        self.port = self._httpd.server_address[1]
        self._thread = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self):
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- configuration --------------------------------------------------------------------

    def url(self, path=""):
        return "%s://%s:%d/%s" % (self.scheme, self.host, self.port, path.lstrip("/"))

    def add(self, glob, kind, times=None, **params):
        if kind not in KINDS:
            raise ValueError("unknown fault kind %r (one of %s)" % (kind, ", ".join(KINDS)))
        with self._lock:
            self._rules.append(_Rule(glob.lstrip("/"), kind, times, params))
        return self

    def clear_rules(self):
        with self._lock:
            self._rules = []

    def reset(self):
        """Forgets the recorded requests and counters (rules stay)."""
        with self._lock:
            self.requests = []
            self.sent = []
            self.max_concurrent = 0
            self._conn_seq = 0

    # -- observations ---------------------------------------------------------------------

    @property
    def connections(self):
        with self._lock:
            return self._conn_seq

    def matching(self, glob="*"):
        with self._lock:
            return [r for r in self.requests
                    if fnmatch.fnmatchcase(r.path.split("?", 1)[0].lstrip("/"), glob.lstrip("/"))]

    def count(self, glob="*"):
        return len(self.matching(glob))

    def bytes_sent(self, glob="*"):
        """Body bytes of the file responses (whole or ranged) whose path matched."""
        with self._lock:
            return sum(n for p, _, n in self.sent if fnmatch.fnmatchcase(p, glob.lstrip("/")))

    def sent_matching(self, glob="*"):
        with self._lock:
            return [x for x in self.sent if fnmatch.fnmatchcase(x[0], glob.lstrip("/"))]

    def _sent(self, path, rng, n):
        with self._lock:
            self.sent.append((path, rng, n))

    # -- internals ------------------------------------------------------------------------

    def _rules_for(self, path, headers):
        """The rules that apply to this request, in order, each used once: any matching delay
        rules, then the first matching rule that answers.  An auth rule whose credentials the
        request carries does not apply (and is not used up)."""
        chosen = []
        with self._lock:
            for rule in self._rules:
                if rule.left == 0 or not fnmatch.fnmatchcase(path, rule.glob):
                    continue
                if rule.kind == "auth" and _auth_ok(headers, rule.params):
                    continue
                if rule.left is not None:
                    rule.left -= 1
                chosen.append(rule)
                if rule.kind != "delay":
                    break
        return chosen

    def _file(self, path):
        if path in self.files:
            return self.files[path]
        if not self.root:
            return None
        full = os.path.realpath(os.path.join(self.root, path))
        if not (full == self.root or full.startswith(self.root + os.sep)) or not os.path.isfile(full):
            return None
        with open(full, "rb") as f:
            return f.read()

    def _file_part(self, path, rng):
        """(size, (first, last) or None if unsatisfiable, body, etag, last-modified), None if absent."""
        if path in self.files:
            data = self.files[path]
            part = _parse_range(rng, len(data))
            etag, modified = self._validators(path, data)
            return len(data), part, data[part[0]:part[1] + 1] if part else b"", etag, modified
        if not self.root:
            return None
        full = os.path.realpath(os.path.join(self.root, path))
        if not (full == self.root or full.startswith(self.root + os.sep)) or not os.path.isfile(full):
            return None
        st = os.stat(full)
        part = _parse_range(rng, st.st_size)
        body = b""
        if part:
            with open(full, "rb") as f:
                f.seek(part[0])
                body = f.read(part[1] - part[0] + 1)
        return (st.st_size, part, body, '"%x-%x"' % (st.st_size, st.st_mtime_ns),
                email.utils.formatdate(st.st_mtime, usegmt=True))

    def _validators(self, path, data):
        if path in self.files or not self.root:
            mtime = 0
        else:
            mtime = os.stat(os.path.join(self.root, path)).st_mtime
        etag = '"%x-%08x"' % (len(data), zlib.crc32(data))
        return etag, email.utils.formatdate(mtime, usegmt=True)


def _parse_range(value, size):
    """(first, last) of a single-range "bytes=A-B" / "bytes=A-" / "bytes=-N" header, None when it
    is unsatisfiable (416). Multiple ranges are not supported (served as the first)."""
    spec = value.strip()
    if not spec.startswith("bytes="):
        return None
    a, _, b = spec[6:].split(",")[0].strip().partition("-")
    if a == "":
        n = int(b)
        if n == 0 or size == 0:
            return None
        return max(0, size - n), size - 1
    first = int(a)
    last = int(b) if b else size - 1
    if first >= size or last < first:
        return None
    return first, min(last, size - 1)


def _auth_ok(headers, params):
    want = base64.b64encode(("%s:%s" % (params.get("user", ""), params.get("password", ""))).encode()).decode()
    return headers.get("authorization", "") == "Basic " + want


def _parse_fault(spec):
    words = spec.split()
    if len(words) < 2:
        raise SystemExit("--fault needs 'GLOB KIND [name=value ...]', got %r" % spec)
    glob, kind, params = words[0], words[1], {}
    for w in words[2:]:
        if "=" not in w:
            raise SystemExit("--fault: %r is not name=value" % w)
        k, v = w.split("=", 1)
        params[k] = v
    times = params.pop("times", None)
    return glob, kind, (int(times) if times is not None else None), params


def main(argv=None):
    ap = argparse.ArgumentParser(description="Loopback HTTP file server with scripted faults.")
    ap.add_argument("root", help="directory to serve")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--delay-ms", type=float, default=0, help="latency added to every request")
    ap.add_argument("--fault", action="append", default=[], help="'GLOB KIND [times=K] [name=value ...]'")
    args = ap.parse_args(argv)
    srv = FaultServer(root=args.root, host=args.host, port=args.port, delay_ms=args.delay_ms)
    for spec in args.fault:
        glob, kind, times, params = _parse_fault(spec)
        srv.add(glob, kind, times=times, **params)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    with srv:
        print("port %d" % srv.port, flush=True)
        while not done.wait(1):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
