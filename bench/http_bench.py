#!/usr/bin/python3
"""Remote-source benchmark (zarr-source issue, item 8): omezarr-materialize from a loopback HTTP
server against the transfer bound measured in the same run, which is curl fetching the same chunk
files with the same number of connections.

    bench/http_bench.py [--quick] [--reps N] [--delay-ms MS ...] [--record]

The store: a zarr v2 array written by zarr-python, 256x1024x1024 uint16 (512 MiB) in 128^3
chunks with blosc lz4 + shuffle (--quick: 128x512x512). It holds a smooth field plus noise, so it
compresses like a CT scan, not like zeros. It is served by tests/integration/faultserver.py (a
Python ThreadingHTTPServer), optionally with an added per-request latency (--delay-ms) standing
in for a remote server.

Per latency, medians of --reps:
- curl: `curl --parallel --parallel-max 10` with every chunk URL, written to /dev/null. This is
  the transfer bound.
- materialize: `omezarr-materialize URL DEST --quiet` with the defaults (source chunk 128, the
  source's blosc, 6 levels, max_connections=10) and a fresh cache dir, then `sync`.
- ratio: materialize / curl.
- the same materialize from the store as a local directory (compute + write, no HTTP), and
  materialize / max(curl, local): how far the remote run is from the slower of its two bounds.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def make_store(path, shape):
    import numcodecs
    import numpy as np
    import zarr
    if os.path.exists(os.path.join(path, ".zarray")):
        return
    arr = zarr.open_array(path, mode="w", shape=shape, chunks=(128, 128, 128), dtype="<u2",
                          compressor=numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE))
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:shape[1], 0:shape[2]].astype(np.float32)
    for z0 in range(0, shape[0], 128):
        slab = np.empty((min(128, shape[0] - z0),) + shape[1:], np.uint16)
        for i in range(slab.shape[0]):
            field = 20000 + 8000 * np.sin((x + 3 * (z0 + i)) / 37.0) * np.cos(y / 53.0)
            slab[i] = np.clip(field + rng.normal(0, 600, field.shape), 0, 65535).astype(np.uint16)
        arr[z0:z0 + slab.shape[0]] = slab


def start_server(store_root, delay_ms):
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "integration", "faultserver.py"),
                          store_root, "--delay-ms", str(delay_ms)], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().split()
    return p, int(line[1])


def timed(cmd, **kw):
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, **kw)
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--delay-ms", type=float, action="append", default=None)
    ap.add_argument("--data", default=os.environ.get("OMEZARRFS_BENCH_DATA", "/tmp/omezarrfs-bench"))
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--record", action="store_true")
    a = ap.parse_args()
    reps = a.reps or (1 if a.quick else 3)
    delays = a.delay_ms or [0, 20]
    shape = (128, 512, 512) if a.quick else (256, 1024, 1024)
    name = "http-%dx%dx%d.zarr" % shape
    os.makedirs(a.data, exist_ok=True)
    make_store(os.path.join(a.data, name), shape)
    store = os.path.join(a.data, name)
    keys = sorted(k for k in os.listdir(store) if not k.startswith("."))
    nbytes = sum(os.path.getsize(os.path.join(store, k)) for k in keys)
    tool = os.path.join(a.build, "cli", "omezarr-materialize")
    work = tempfile.mkdtemp(prefix="ozhttp-", dir=a.data)
    rows = []
    try:
        for delay in delays:
            srv, port = start_server(a.data, delay)
            base = "http://127.0.0.1:%d/%s" % (port, name)
            try:
                cfg = os.path.join(work, "curl.cfg")
                with open(cfg, "w") as f:
                    for k in keys:
                        f.write('url = "%s/%s"\noutput = "/dev/null"\n' % (base, k))
                curl_t, mat_t, local_t = [], [], []
                for _ in range(reps):
                    dest = os.path.join(work, "out.zarr")
                    cache = os.path.join(work, "cache")
                    shutil.rmtree(dest, ignore_errors=True)
                    shutil.rmtree(cache, ignore_errors=True)
                    t = timed([tool, store, dest, "--quiet", "-o", "cache=" + cache],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    local_t.append(t + timed(["sync"]))
                    curl_t.append(timed(["curl", "-sS", "--fail", "--parallel", "--parallel-max", "10",
                                         "-K", cfg]))
                    dest = os.path.join(work, "out.zarr")
                    cache = os.path.join(work, "cache")
                    shutil.rmtree(dest, ignore_errors=True)
                    shutil.rmtree(cache, ignore_errors=True)
                    t = timed([tool, base, dest, "--quiet", "-o", "cache=" + cache],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    t += timed(["sync"])
                    mat_t.append(t)
                c, m, lo = statistics.median(curl_t), statistics.median(mat_t), statistics.median(local_t)
                rows.append((delay, c, m, lo, curl_t, mat_t))
                print("delay %g ms: curl %.2f s (%.0f MB/s), materialize %.2f s, ratio %.2f; "
                      "same store as a local directory %.2f s" % (delay, c, nbytes / c / 1e6, m, m / c, lo), flush=True)
            finally:
                srv.terminate()
                srv.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()[0]
    out = ["", "## HTTP source: materialize from a loopback server vs curl (%s, load %.1f)" %
           (time.strftime("%Y-%m-%d %H:%M"), load), "",
           "Store %s: %d chunk files, %.0f MiB compressed (blosc lz4), %.0f MiB raw; faultserver.py; "
           "10 connections on both sides; medians of %d." %
           (name, len(keys), nbytes / 2**20, shape[0] * shape[1] * shape[2] * 2 / 2**20, reps), "",
           "| added latency per request | curl (bound) | materialize + sync | ratio | local-directory materialize (compute + write) | max(curl, local) ratio | runs (curl / materialize) |",
           "|---|---|---|---|---|---|---|"]
    for delay, c, m, lo, ct, mt in rows:
        out.append("| %g ms | %.2f s | %.2f s | %.2f | %.2f s | %.2f | %s / %s |" % (
            delay, c, m, m / c, lo, m / max(c, lo), ", ".join("%.2f" % v for v in ct),
            ", ".join("%.2f" % v for v in mt)))
    print("\n".join(out))
    if a.record:
        with open(os.path.join(HERE, "RESULTS.md"), "a") as f:
            f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
