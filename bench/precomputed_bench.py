#!/usr/bin/python3
"""Neuroglancer precomputed (format=precomputed) benchmark, side by side with OME-Zarr 0.4 in one
run (medians of --reps). Run it through bench/run_precomputed_bench.sh.

On one generated scroll-like stack (bench/gen_stack.py):
  materialize  wall time of omezarr-materialize (no fsync, fresh DEST) to 0.4 raw, precomputed
               raw, precomputed gzip, and (bytes=1) 0.4 raw, precomputed jpeg; files and bytes
  cold chunk   drop the page cache, fresh cache + fresh mount, open and read one level-0 chunk
               near the middle of the volume (its computation included): precomputed raw and
               jpeg against the same 0.4 chunk
  codec        one interior level-0 chunk (uint8, bytes=1) encoded by oz_bench_codec: JPEG at
               the default quality (and 90) against blosc-lz4 (bitshuffle) and zstd-3 of the same
               voxels: bytes and median encode time, one thread
  jpeg levels  JPEG bytes per chunk of every level of the materialized jpeg tree, against raw
  psnr         PSNR of every level of jpeg trees (jpeg_quality 90, 92, 95) against the exact uint8
               tree (precomputed raw, bytes=1), all read by tests/integration/precomputed_ref.py
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

MiB = 1 << 20
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import precomputed_ref  # noqa: E402


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def drop_caches():
    subprocess.run(["sync"])
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


class Bench:
    def __init__(self, a):
        self.a = a
        self.n = 0

    def new_dir(self, kind):
        self.n += 1
        d = os.path.join(self.a.work, "%s-%d" % (kind, self.n))
        os.makedirs(d)
        return d

    def mount(self, src, opts):
        mnt, cache = self.new_dir("mnt"), self.new_dir("cache")
        r = subprocess.run([self.a.fs, src, mnt, "-o", opts + ",cache=" + cache], capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError("mount failed: " + r.stderr)
        pid = int(subprocess.run(["pgrep", "-f", "--", mnt], capture_output=True, text=True).stdout.split()[0])
        return mnt, pid

    def umount(self, mnt, pid):
        for _ in range(40):
            if subprocess.run(["fusermount3", "-u", mnt], capture_output=True).returncode == 0:
                break
            time.sleep(0.25)
        for _ in range(400):
            if not os.path.exists("/proc/%d" % pid):
                break
            time.sleep(0.05)

    def materialize(self, src, opts, keep=False):
        dest = os.path.join(self.new_dir("dest"), "out")
        t0 = time.perf_counter()
        r = subprocess.run([self.a.mat, src, dest, "-o", opts + ",cache_size=0", "--no-fsync", "--quiet"],
                           capture_output=True, text=True)
        dt = time.perf_counter() - t0
        if r.returncode:
            raise RuntimeError("materialize failed: " + r.stderr)
        files = sum(len(fs) for d, _, fs in os.walk(dest) if ".omezarr-materialize" not in d)
        nbytes = sum(os.path.getsize(os.path.join(d, x)) for d, ds, fs in os.walk(dest) for x in fs
                     if ".omezarr-materialize" not in d)
        if not keep:
            shutil.rmtree(os.path.dirname(dest))
        return dt, files, nbytes, dest


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--shape", required=True, help="z,y,x of the stack")
    ap.add_argument("--build", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--chunk", type=int, default=128)
    ap.add_argument("--levels", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    a.fs = os.path.join(a.build, "fs", "omezarrfs")
    a.mat = os.path.join(a.build, "cli", "omezarr-materialize")
    a.codec = os.path.join(a.build, "bench", "oz_bench_codec")
    b = Bench(a)
    med = statistics.median
    shape = [int(v) for v in a.shape.split(",")]
    c = a.chunk
    base = "chunk=%d,levels=%d" % (c, a.levels)
    pc = ",format=precomputed"
    configs = [("0.4 raw", base), ("precomputed raw", base + pc), ("precomputed gzip", base + pc + ",compression=gzip"),
               ("0.4 raw bytes=1", base + ",bytes=1"), ("precomputed jpeg bytes=1", base + pc + ",bytes=1,compression=jpeg")]
    b.materialize(a.src, base)  # warm-up: the source in the page cache for every config
    out = {"shape": shape, "chunk": c, "levels": a.levels, "materialize": [], "cold_chunk": [], "codec": []}
    jpeg_dest = None
    for name, opts in configs:
        runs = [b.materialize(a.src, opts, keep=(name.startswith("precomputed jpeg") and i == 0))
                for i in range(a.reps)]
        if name.startswith("precomputed jpeg"):
            jpeg_dest = runs[0][3]
        row = {"config": name, "seconds": med(r[0] for r in runs), "runs": [round(r[0], 3) for r in runs],
               "files": runs[0][1], "bytes": runs[0][2]}
        out["materialize"].append(row)
        log(json.dumps(row))
    # Cold read of one level-0 chunk near the middle.
    mid = [(s // 2) // c for s in shape]  # z, y, x chunk index
    lo = [m * c for m in mid]
    hi = [min(l + c, s) for l, s in zip(lo, shape)]
    pname = "%d-%d_%d-%d_%d-%d" % (lo[2], hi[2], lo[1], hi[1], lo[0], hi[0])
    for name, opts in configs:
        if "gzip" in name:
            continue
        rel = os.path.join("0", pname) if "precomputed" in name else os.path.join("0", *map(str, mid))
        lats, sizes = [], []
        for _ in range(a.reps):
            drop_caches()
            mnt, pid = b.mount(a.src, opts)
            t0 = time.perf_counter()
            with open(os.path.join(mnt, rel), "rb") as f:
                sizes.append(len(f.read()))
            lats.append(time.perf_counter() - t0)
            b.umount(mnt, pid)
        row = {"config": name, "ms": med(lats) * 1e3, "runs_ms": [round(t * 1e3, 1) for t in lats], "bytes": sizes[0]}
        out["cold_chunk"].append(row)
        log(json.dumps(row))
    # Codecs on one interior chunk (uint8: bytes=1; uint16 too, without jpeg).
    for dtype, opts in (("uint8", base + pc + ",bytes=1"), ("uint16", base + pc)):
        mnt, pid = b.mount(a.src, opts)
        raw = os.path.join(a.work, "chunk-%s.raw" % dtype)
        shutil.copyfile(os.path.join(mnt, "0", pname), raw)
        b.umount(mnt, pid)
        r = subprocess.run([a.codec, raw, "--edge", str(c), "--dtype", dtype, "--reps", "15",
                            "--jpeg-quality", "95,90"], capture_output=True, text=True, check=True)
        for line in r.stdout.splitlines():
            row = dict(json.loads(line), dtype=dtype)
            out["codec"].append(row)
            log(json.dumps(row))
    # JPEG bytes per chunk of every level.
    levels = []
    if jpeg_dest:
        info = json.load(open(os.path.join(jpeg_dest, "info")))
        for s in info["scales"]:
            d = os.path.join(jpeg_dest, s["key"])
            files = os.listdir(d)
            nbytes = sum(os.path.getsize(os.path.join(d, f)) for f in files)
            x, y, z = s["size"]
            levels.append({"key": s["key"], "size": s["size"], "chunks": len(files), "bytes": nbytes,
                           "raw_bytes": x * y * z})
        shutil.rmtree(os.path.dirname(jpeg_dest))
    out["jpeg_levels"] = levels
    # PSNR per level and quality against the exact uint8 tree.
    exact_dest = b.materialize(a.src, base + pc + ",bytes=1", keep=True)[3]
    info = precomputed_ref.read_info(exact_dest)
    exact = [precomputed_ref.read_scale(exact_dest, info, i)[0] for i in range(len(info["scales"]))]
    out["psnr"] = []
    for q in (90, 92, 95):
        dest = b.materialize(a.src, base + pc + ",bytes=1,compression=jpeg,jpeg_quality=%d" % q, keep=True)[3]
        ij = precomputed_ref.read_info(dest)
        row = {"quality": q, "db": [round(precomputed_ref.psnr(precomputed_ref.read_scale(dest, ij, i)[0], exact[i]), 2)
                                    for i in range(len(exact))]}
        out["psnr"].append(row)
        log(json.dumps(row))
        shutil.rmtree(os.path.dirname(dest))
    shutil.rmtree(os.path.dirname(exact_dest))
    print(json.dumps(out))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)

    m = {r["config"]: r for r in out["materialize"]}
    print("\n| materialize | files | MiB | s | / 0.4 (same dtype) | runs (s) |\n|---|---:|---:|---:|---:|---|")
    for r in out["materialize"]:
        ref = m["0.4 raw bytes=1" if "bytes=1" in r["config"] else "0.4 raw"]
        print("| %s | %d | %.1f | %.2f | %.2f | %s |" % (r["config"], r["files"], r["bytes"] / MiB, r["seconds"],
                                                       r["seconds"] / ref["seconds"], r["runs"]))
    cc = {r["config"]: r for r in out["cold_chunk"]}
    print("\n| cold level-0 chunk (%s) | bytes | ms | / 0.4 (same dtype) | runs (ms) |\n|---|---:|---:|---:|---|" % pname)
    for r in out["cold_chunk"]:
        ref = cc["0.4 raw bytes=1" if "bytes=1" in r["config"] else "0.4 raw"]
        print("| %s | %d | %.1f | %.2f | %s |" % (r["config"], r["bytes"], r["ms"], r["ms"] / ref["ms"], r["runs_ms"]))
    print("\n| encoder (one %d^3 chunk) | dtype | bytes | raw / bytes | encode ms | / blosc-lz4 ms |\n"
          "|---|---|---:|---:|---:|---:|" % c)
    for r in out["codec"]:
        lz4 = next(x for x in out["codec"] if x["dtype"] == r["dtype"] and x["encoder"] == "blosc-lz4")
        print("| %s | %s | %d | %.2f | %.2f | %.1f |" % (r["encoder"], r["dtype"], r["bytes"], r["ratio"],
                                                       r["encode_ms"], r["encode_ms"] / lz4["encode_ms"]))
    if levels:
        print("\n| jpeg level | size (x, y, z) | chunks | KiB per chunk | raw / jpeg |\n|---|---|---:|---:|---:|")
        for l in levels:
            print("| %s | %s | %d | %.1f | %.2f |" % (l["key"], l["size"], l["chunks"], l["bytes"] / l["chunks"] / 1024,
                                                   l["raw_bytes"] / l["bytes"]))
    print("\n| jpeg_quality | PSNR dB per level (0 = full resolution) | lowest |\n|---:|---|---:|")
    for r in out["psnr"]:
        print("| %d | %s | %.1f |" % (r["quality"], ", ".join("%.1f" % v for v in r["db"]), min(r["db"])))


if __name__ == "__main__":
    main()
