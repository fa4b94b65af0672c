#!/usr/bin/python3
"""omezarr-serve, the CORS HTTP server for web viewers, in front of a real mount: CORS headers on
every answer, OPTIONS, HEAD, byte ranges, 404 for every absent key (empty chunks included),
never a directory listing (listing a chunk row of a mount computes it), 500 and a log line for a
chunk the mount cannot produce (EIO), read-only, clean exit on SIGTERM."""
import errno
import hashlib
import http.client
import itertools
import json
import os
import signal
import subprocess
import time

import numpy as np

import oztest as oz
import ozserve

S = oz.Suite("serve")
CHUNK = 16


def mounted_stack(options=None, mask=True):
    d = oz.tmpdir("src")
    vol = oz.make_stack(d, volume=oz.make_volume((20, 40, 50), np.uint16, seed=5, mask=mask))
    opts = {"chunk": CHUNK, "levels": 2}
    opts.update(options or {})
    return d, vol, oz.Mount(d, opts)


def chunk_keys(vol, empty):
    """Level-0 chunk keys of `vol` whose chunk is all zero (empty=True) or not."""
    grid = oz.chunk_grid(vol.shape, [CHUNK] * 3)
    for ci in itertools.product(*[range(g) for g in grid]):
        if oz.chunk_is_empty(vol, ci, CHUNK) == empty:
            yield "0/" + "/".join(map(str, ci))


def cors_ok(h, what):
    oz.check(h.get("access-control-allow-origin") == "*", "%s: no Access-Control-Allow-Origin: %r"
             % (what, h))


@S.case
def serves_metadata_and_chunks_with_cors():
    _, vol, m = mounted_stack()
    with m, ozserve.Server(m.path) as srv:
        for key in (".zgroup", ".zattrs", "0/.zarray", "1/.zarray"):
            st, h, body = srv.get("/" + key)
            oz.check(st == 200, "%s: HTTP %d" % (key, st))
            cors_ok(h, key)
            oz.check(h.get("content-type") == "application/json", "%s: %r" % (key, h))
            with open(os.path.join(m.path, key), "rb") as f:
                oz.check(body == f.read(), "%s: body differs from the mount's file" % key)
            json.loads(body)
        full = next(chunk_keys(vol, empty=False))
        st, h, body = srv.get("/" + full)
        oz.check(st == 200 and int(h["content-length"]) == len(body) == CHUNK ** 3 * 2,
                 "%s: HTTP %d, %d bytes, headers %r" % (full, st, len(body), h))
        cors_ok(h, full)
        oz.check(h.get("content-type") == "application/octet-stream", "chunk type %r" % h)
        oz.check("content-range" in h.get("access-control-expose-headers", "").lower(),
                 "Content-Range not exposed to scripts: %r" % h)
        with open(os.path.join(m.path, full), "rb") as f:
            oz.check(body == f.read(), "chunk body differs from the mount's file")
        # Keep-alive: several requests on one connection.
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
        for key in (".zattrs", full, "0/.zarray", "0/9/9/9"):
            st, _, _ = srv.get("/" + key, conn=conn)
            oz.check(st in (200, 404), "keep-alive request %s: %d" % (key, st))
        conn.close()


@S.case
def absent_keys_are_404_never_403_or_500():
    _, vol, m = mounted_stack()
    with m, ozserve.Server(m.path) as srv:
        empty = list(chunk_keys(vol, empty=True))
        oz.check(empty, "test data has no empty chunk")
        absent = empty[:3] + ["0/.zattrs", ".zarray", "0/9/9/9", "7/0/0/0", "nope",
                              "0/0/0/0/0", "0/0/0/x", "%2e%2e/%2e%2e/etc/passwd",
                              "../../../etc/passwd", "a%00b", "%ff%fe"]
        for key in absent:
            for method in ("GET", "HEAD"):
                st, h, body = srv.get("/" + key, method=method)
                oz.check(st == 404, "%s /%s: HTTP %d (want 404)" % (method, key, st))
                cors_ok(h, key)
                if method == "HEAD":
                    oz.check(body == b"", "HEAD 404 with a body")
        oz.check(not any(code.startswith("5") or code == "403" for _, _, code in srv.requests()),
                 "403/5xx in %r" % srv.requests())


@S.case
def directories_are_never_listed():
    _, vol, m = mounted_stack()
    with m:
        before = oz.stats(m.path)["chunks_computed"]
        with ozserve.Server(m.path) as srv:
            for key in ("", "0", "0/", "0/0", "0/0/", "0/0/0", "0/0/0/", "1/0/0/"):
                st, h, body = srv.get("/" + key)
                oz.check(st == 404, "GET /%s: HTTP %d (want 404)" % (key, st))
                cors_ok(h, key)
                oz.check(b"0\n1\n" not in body and b".zarray" not in body,
                         "GET /%s looks like a listing: %r" % (key, body[:200]))
        after = oz.stats(m.path)["chunks_computed"]
        oz.check(after == before, "serving directory URLs computed %d chunks (a listing)"
                 % (after - before))
    # A plain directory with an index.html (e.g. a Neuroglancer build) serves it.
    d = oz.tmpdir("site")
    os.makedirs(os.path.join(d, "app"))
    with open(os.path.join(d, "app", "index.html"), "w") as f:
        f.write("<html>hi</html>")
    with ozserve.Server(d) as srv:
        st, h, _ = srv.get("/app")
        oz.check(st == 301 and h.get("location") == "/app/", "GET /app: %d %r" % (st, h))
        st, h, body = srv.get("/app/")
        oz.check(st == 200 and body == b"<html>hi</html>" and h["content-type"].startswith(
            "text/html"), "GET /app/: %d %r" % (st, h))


@S.case
def options_head_and_ranges():
    _, vol, m = mounted_stack()
    with m, ozserve.Server(m.path) as srv:
        key = "/" + next(chunk_keys(vol, empty=False))
        with open(m.path + key, "rb") as f:
            data = f.read()
        size = len(data)
        st, h, body = srv.get(key, {"Origin": "http://viewer.example",
                                    "Access-Control-Request-Method": "GET",
                                    "Access-Control-Request-Headers": "range"}, method="OPTIONS")
        oz.check(st in (200, 204), "OPTIONS: HTTP %d" % st)
        cors_ok(h, "OPTIONS")
        oz.check("GET" in h.get("access-control-allow-methods", "") and
                 "range" in h.get("access-control-allow-headers", "").lower(),
                 "preflight does not allow GET with Range: %r" % h)
        st, h, _ = srv.get(key, {"Origin": "https://neuroglancer-demo.appspot.com",
                                 "Access-Control-Request-Method": "GET",
                                 "Access-Control-Request-Private-Network": "true"},
                           method="OPTIONS")
        oz.check(h.get("access-control-allow-private-network") == "true",
                 "Private Network Access preflight not allowed: %r" % h)
        st, h, body = srv.get(key, method="HEAD")
        oz.check(st == 200 and body == b"" and int(h["content-length"]) == size and
                 h.get("accept-ranges") == "bytes", "HEAD: %d %r" % (st, h))
        cases = [("bytes=0-99", 206, 0, 100), ("bytes=100-", 206, 100, size),
                 ("bytes=-50", 206, size - 50, size), ("bytes=%d-%d" % (size - 10, size + 500),
                                                       206, size - 10, size),
                 ("bytes=0-0", 206, 0, 1), ("bytes=0-9,20-29", 200, 0, size),
                 ("bytes=9-2", 200, 0, size), ("items=0-9", 200, 0, size)]
        for rng, want, a, b in cases:
            st, h, body = srv.get(key, {"Range": rng})
            oz.check(st == want and body == data[a:b], "Range %s: HTTP %d, %d bytes (want %d, %d)"
                     % (rng, st, len(body), want, b - a))
            if want == 206:
                oz.check(h.get("content-range") == "bytes %d-%d/%d" % (a, b - 1, size),
                         "Range %s: Content-Range %r" % (rng, h.get("content-range")))
            cors_ok(h, rng)
        st, h, _ = srv.get(key, {"Range": "bytes=%d-" % size})
        oz.check(st == 416 and h.get("content-range") == "bytes */%d" % size,
                 "unsatisfiable range: %d %r" % (st, h))
        st, h, _ = srv.get(key)
        st2, _, body2 = srv.get(key, {"If-None-Match": h["etag"]})
        oz.check(st2 == 304 and body2 == b"", "If-None-Match with the ETag: HTTP %d" % st2)


@S.case
def read_only_methods_are_405():
    _, vol, m = mounted_stack()
    with m, ozserve.Server(m.path) as srv:
        for method in ("PUT", "POST", "DELETE", "PATCH"):
            st, h, _ = srv.get("/.zattrs", method=method)
            oz.check(st == 405 and "GET" in h.get("allow", ""), "%s: HTTP %d %r" % (method, st, h))


@S.case
def eio_is_500_and_logged():
    d, vol, m = mounted_stack(mask=False)
    with m, ozserve.Server(m.path) as srv:
        # The mount refuses to mix old and new data: a chunk computed from a slice that changed
        # since the mount fails with EIO.
        victim = sorted(f for f in os.listdir(d) if f.endswith(".tif"))[0]
        p = os.path.join(d, victim)
        with open(p, "ab") as f:
            f.write(b"\0" * 64)
        key = "/0/0/0/0"
        try:
            open(m.path + key, "rb").read()
            oz.check(False, "the mount served a chunk of a changed slice")
        except OSError as e:
            oz.check(e.errno == errno.EIO, "reading the chunk directly: %r (want EIO)" % e)
        st, h, body = srv.get(key)
        oz.check(st == 500, "chunk with EIO: HTTP %d (want 500)" % st)
        cors_ok(h, "500")
        log = srv.stderr()
        oz.check("500" in log and "0/0/0/0" in log and "Input/output error" in log,
                 "no log line for the EIO: %r" % log)
        st, _, _ = srv.get("/.zattrs")
        oz.check(st == 200, "server unusable after an EIO: %d" % st)
        st, _, _ = srv.get("/0/9/9/9")
        oz.check(st == 404, "absent key after an EIO: %d" % st)


@S.case
def large_files_stream():
    d = oz.tmpdir("big")
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, size=(70 << 20), dtype=np.uint8).tobytes()  # > whole-read limit
    with open(os.path.join(d, "big"), "wb") as f:
        f.write(data)
    with ozserve.Server(d) as srv:
        st, h, body = srv.get("/big")
        oz.check(st == 200 and int(h["content-length"]) == len(data) and
                 hashlib.sha256(body).digest() == hashlib.sha256(data).digest(),
                 "70 MiB file: HTTP %d, %d bytes" % (st, len(body)))
        st, h, body = srv.get("/big", {"Range": "bytes=%d-%d" % (33 << 20, (66 << 20) + 7)})
        oz.check(st == 206 and body == data[33 << 20:(66 << 20) + 8], "large range: %d" % st)


@S.case
def stale_mountpoint_is_reported():
    _, _, m = mounted_stack()
    with m:
        for p in m.pids:
            os.kill(p, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while any(oz._alive(p) for p in m.pids):
            oz.check(time.monotonic() < deadline, "daemon did not die")
            time.sleep(0.05)
        res = subprocess.run(["/usr/bin/python3", ozserve.SERVE, m.path, "--port", "0"],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        oz.check(res.returncode != 0 and "fusermount3 -u " + m.path in res.stderr,
                 "serving a stale mount: exit %d, %r" % (res.returncode, res.stderr))


@S.case
def version_matches_the_project():
    with open(os.path.join(oz.REPO, "CMakeLists.txt")) as f:
        want = next(line.split("VERSION")[1].split()[0] for line in f if line.startswith("project("))
    out = subprocess.run(["/usr/bin/python3", ozserve.SERVE, "--version"], capture_output=True,
                         text=True).stdout.strip()
    oz.check(out == "omezarr-serve " + want, "omezarr-serve --version: %r, project %s" % (out, want))


if __name__ == "__main__":
    S.main()
