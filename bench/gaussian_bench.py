#!/usr/bin/python3
"""algorithm=gaussian against algorithm=mean on one TIFF stack, side by side in the same run
(alternating, --reps times each, median; issue 14's target: a gaussian coarsest level costs
<= 1.5x a mean one):
  - materialize: omezarr-materialize, all levels, a fresh DEST each time, sync included;
  - coarsest: a cold mount (fresh cache), read every file of the coarsest level (which computes
    and caches every level below), unmount.
The stack: uint16 z-slice TIFFs (zlib) of a smooth image plus noise.

  bench/gaussian_bench.py [--shape 128,512,512] [--reps 3] [--build build]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import tifffile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))


def image(shape, seed=1):
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    v = 20000 + 8000 * np.sin(z / 17) * np.cos(y / 23) + 5000 * np.sin(x / 31) + rng.normal(0, 500, shape)
    return np.clip(v, 0, 65535).astype(np.uint16)


def write(d, vol):
    os.makedirs(d, exist_ok=True)
    for z in range(vol.shape[0]):
        tifffile.imwrite(os.path.join(d, "%04d.tif" % z), vol[z], photometric="minisblack", metadata=None,
                         compression="zlib")


def materialize(exe, src, work, opts):
    dest = os.path.join(work, "dest")
    shutil.rmtree(dest, ignore_errors=True)
    subprocess.run(["sync"], check=True)
    t0 = time.monotonic()
    p = subprocess.run([exe, src, dest, "--quiet", "-o", opts], capture_output=True, text=True)
    subprocess.run(["sync"], check=True)
    t = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit("materialize failed: " + p.stderr[-1500:])
    shutil.rmtree(dest, ignore_errors=True)
    return t


def coarsest(exe, src, work, opts, levels):
    mnt, cache = os.path.join(work, "mnt"), os.path.join(work, "cache")
    shutil.rmtree(cache, ignore_errors=True)
    os.makedirs(mnt, exist_ok=True)
    os.makedirs(cache)
    p = subprocess.run([exe, src, mnt, "-o", "cache=%s,%s" % (cache, opts)], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("mount failed: " + p.stderr[-1500:])
    try:
        t0 = time.monotonic()
        top = os.path.join(mnt, str(levels - 1))
        n = 0
        for dp, _, fns in os.walk(top):
            for fn in fns:
                with open(os.path.join(dp, fn), "rb") as f:
                    n += len(f.read())
        t = time.monotonic() - t0
    finally:
        subprocess.run(["fusermount3", "-u", mnt], check=False)
        time.sleep(0.5)
    shutil.rmtree(cache, ignore_errors=True)
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="128,512,512")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--build", default="build")
    a = ap.parse_args()
    shape = tuple(int(x) for x in a.shape.split(","))
    mat = os.path.join(a.build, "cli", "omezarr-materialize")
    fs = os.path.join(a.build, "fs", "omezarrfs")
    if not os.path.exists(fs):
        fs = os.path.join(a.build, "omezarrfs")
    work = tempfile.mkdtemp(prefix="oz-gauss-bench-")
    src = os.path.join(work, "src")
    write(src, image(shape))
    levels = 4
    base = "chunk=64,levels=%d,compression=none" % levels
    t = {k: [] for k in ("mat mean", "mat gaussian", "top mean", "top gaussian")}
    for _ in range(a.reps):
        for alg in ("mean", "gaussian"):
            t["mat " + alg].append(materialize(mat, src, work, base + ",algorithm=" + alg))
            t["top " + alg].append(coarsest(fs, src, work, base + ",algorithm=" + alg, levels))
    med = {k: statistics.median(v) for k, v in t.items()}
    print("shape %s uint16 zlib TIFFs, chunk 64, %d levels, median of %d, load %.1f" % (
        shape, levels, a.reps, os.getloadavg()[0]))
    for k, v in t.items():
        print("%-13s %7.2f s  (runs %s)" % (k, med[k], " ".join("%.2f" % x for x in v)))
    print("materialize gaussian / mean: %.2f (target <= 1.5)" % (med["mat gaussian"] / med["mat mean"]))
    print("cold coarsest gaussian / mean: %.2f (target <= 1.5)" % (med["top gaussian"] / med["top mean"]))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
