#!/usr/bin/python3
"""zarr v3 source benchmark (issue 12, Speed): a sharded zarr v3 store and an unsharded zarr v2
copy of the same data, served side by side by tests/integration/faultserver.py over loopback
HTTP; level 0 is read cold (fresh cache, fresh mount) through a mount of each.

    bench/zarr3_source_bench.py [--quick] [--reps N] [--build DIR] [--data DIR]

The data: 128x512x512 uint16 (--quick: 64x256x256), a smooth field plus noise. The v2 copy is
written by zarr-python (64^3 chunks, blosc lz4 + shuffle); the v3 store by the tests' spec-based
writer (tests/integration/zarr3_ref.py): shards of 128x256x256 (--quick 64x128x128) with 64^3
inner chunks (bytes + blosc lz4 + shuffle), index at the end with crc32c. Both mounts use
levels=1, chunk=64, compression=none, so the served chunk is one source chunk.

Per run (alternating v2 and v3, medians of --reps):
- full: every level-0 chunk file read (4 reader threads). bytes fetched / bytes of the inner
  chunks needed (all of them, plus nothing else) for v3; time v3 / v2.
- sparse: every other chunk along x read. The same two ratios (the needed inner chunks are
  every other one: coalescing must not bridge the gaps).
Target (issue): bytes <= 1.1x the needed inner chunks, time <= 1.3x v2.
"""

import argparse
import concurrent.futures
import os
import shutil
import statistics
import struct
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import numpy as np  # noqa: E402

import oztest as oz  # noqa: E402
import zarr3_ref as zr  # noqa: E402
from faultserver import FaultServer  # noqa: E402


def data(shape):
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:shape[1], 0:shape[2]].astype(np.float32)
    out = np.empty(shape, np.uint16)
    for z in range(shape[0]):
        field = 20000 + 8000 * np.sin((x + 3 * z) / 37.0) * np.cos(y / 53.0)
        out[z] = (field + rng.normal(0, 300, field.shape)).clip(0, 65535).astype(np.uint16)
    return out


def write_stores(root, vol, shard):
    import numcodecs
    import zarr
    v2 = os.path.join(root, "v2.zarr")
    a = zarr.open_array(v2, mode="w", shape=vol.shape, chunks=(64, 64, 64), dtype="<u2",
                        compressor=numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE))
    a[...] = vol
    v3 = os.path.join(root, "v3.zarr")
    blosc = {"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5, "shuffle": "shuffle", "typesize": 2,
                                                 "blocksize": 0}}
    codecs = [{"name": "sharding_indexed", "configuration": {
        "chunk_shape": [64, 64, 64], "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, blosc],
        "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
        "index_location": "end"}}]
    zr.write_array(v3, vol, shard, codecs)
    # The inner chunks' sizes, by level-0 chunk index (z, y, x), from the shard indexes.
    sizes = {}
    per = [s // 64 for s in shard]
    n = per[0] * per[1] * per[2]
    for idx, size, entries in zr.shard_report(v3):
        if entries is None:
            continue
        for i, (off, nb) in enumerate(entries):
            if off == zr.ABSENT:
                continue
            lz, ly, lx = np.unravel_index(i, per)
            sizes[(idx[0] * per[0] + lz, idx[1] * per[1] + ly, idx[2] * per[2] + lx)] = nb
    return v2, v3, sizes, 16 * n + 4


def read_chunks(mnt, keys):
    def one(k):
        with open(os.path.join(mnt, *map(str, k)), "rb") as f:
            return len(f.read())
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        return sum(ex.map(one, keys))


def run_one(srv, name, keys, build):
    cache = tempfile.mkdtemp(prefix="z3bench-cache-")
    try:
        opts = {"levels": 1, "chunk": 64, "compression": "none", "max_connections": 8}
        with oz.Mount(srv.url(name), opts, cache=cache) as m:
            srv.reset()
            t0 = time.perf_counter()
            read_chunks(m.path, keys)
            dt = time.perf_counter() - t0
            sent = srv.sent_matching(name + "/*")
        return dt, sum(n for p, _, n in sent if not p.endswith("zarr.json") and not p.endswith(".zarray")), len(sent)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--data", default=None)
    args = ap.parse_args()
    os.environ.setdefault("OMEZARRFS_BIN", os.path.join(args.build, "fs", "omezarrfs"))
    shape = (64, 256, 256) if args.quick else (128, 512, 512)
    shard = [64, 128, 128] if args.quick else [128, 256, 256]
    root = args.data or tempfile.mkdtemp(prefix="z3bench-")
    try:
        vol = data(shape)
        v2, v3, sizes, index_bytes = write_stores(root, vol, shard)
        grid = [s // 64 for s in shape]
        n_shards = int(np.prod([-(-s // c) for s, c in zip(shape, shard)]))
        patterns = {
            "full": [(z, y, x) for z in range(grid[0]) for y in range(grid[1]) for x in range(grid[2])],
            "sparse": [(z, y, x) for z in range(grid[0]) for y in range(grid[1]) for x in range(0, grid[2], 2)],
        }
        print("data %s uint16 (%d MiB), v3 shards %s (%d) of 64^3 inner chunks, v2 chunks 64^3; reps %d" %
              ("x".join(map(str, shape)), vol.nbytes >> 20, "x".join(map(str, shard)), n_shards, args.reps))
        results = {}
        with FaultServer(root=root) as srv:
            for pat, keys in patterns.items():
                t2, t3, b3, r3 = [], [], [], []
                for _ in range(args.reps):
                    dt, _, _ = run_one(srv, "v2.zarr", keys, args.build)
                    t2.append(dt)
                    dt, nbytes, nreq = run_one(srv, "v3.zarr", keys, args.build)
                    t3.append(dt)
                    b3.append(nbytes)
                    r3.append(nreq)
                needed = sum(sizes[k] for k in keys)
                touched = {(k[0] * 64 // shard[0], k[1] * 64 // shard[1], k[2] * 64 // shard[2]) for k in keys}
                ratio_b = statistics.median(b3) / needed
                ratio_bi = statistics.median(b3) / (needed + index_bytes * len(touched))
                ratio_t = statistics.median(t3) / statistics.median(t2)
                results[pat] = (ratio_b, ratio_t)
                print("%-6s v2 %.3f s  v3 %.3f s  time v3/v2 %.2f | v3 fetched %d bytes in %d requests, inner chunks "
                      "needed %d (+ %d index bytes): bytes/needed %.3f, bytes/(needed+indexes) %.3f" %
                      (pat, statistics.median(t2), statistics.median(t3), ratio_t, statistics.median(b3),
                       int(statistics.median(r3)), needed, index_bytes * len(touched), ratio_b, ratio_bi))
        ok = all(b <= 1.1 and t <= 1.3 for b, t in results.values())
        print("targets (bytes <= 1.1x needed, time <= 1.3x v2): %s" % ("met" if ok else "NOT met"))
    finally:
        if not args.data:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
