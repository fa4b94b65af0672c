#!/usr/bin/python3
"""Kernels and data types through omezarr-materialize, every configuration in the same run
(issue 14's speed targets). A label volume (labels in 5^3-voxel patches, so 2x2x2 blocks straddle
patch faces, plus 2% single-voxel noise) is written as uint16 and as uint64 z-slice TIFFs (the
same integers); then, alternating, --reps times each, median reported:
  - uint16 algorithm=mean, uint16 algorithm=mode  -> mode / mean (target <= 2)
  - uint64 algorithm=mode vs uint16 algorithm=mode -> byte rate (source bytes / s) ratio
    (target: uint64 within 1.1x of uint16, i.e. ratio >= 0.91)
Materialize: format 0.4, compression=none, chunk=64, levels=5, a fresh DEST each time, sync
included.

  bench/dtype_bench.py [--shape 128,512,512] [--reps 3] [--work DIR] [--build build]
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


def labels(shape, seed=1):
    rng = np.random.default_rng(seed)
    Z, Y, X = shape
    p = 5
    patch = rng.integers(1, 200, size=(-(-Z // p), -(-Y // p), -(-X // p)))
    vol = np.repeat(np.repeat(np.repeat(patch, p, 0), p, 1), p, 2)[:Z, :Y, :X]
    noise = rng.random(shape) < 0.02
    vol = np.where(noise, rng.integers(1, 200, size=shape), vol)
    return vol


def write(d, vol):
    os.makedirs(d, exist_ok=True)
    for z in range(vol.shape[0]):
        tifffile.imwrite(os.path.join(d, "%04d.tif" % z), vol[z], photometric="minisblack", metadata=None)


def run(exe, src, work, opts):
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="128,512,512")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--work", default=None)
    ap.add_argument("--build", default="build")
    a = ap.parse_args()
    shape = tuple(int(x) for x in a.shape.split(","))
    exe = os.path.join(a.build, "cli", "omezarr-materialize")
    work = a.work or tempfile.mkdtemp(prefix="oz-dtype-bench-")
    vol = labels(shape)
    s16, s64 = os.path.join(work, "u16"), os.path.join(work, "u64")
    write(s16, vol.astype(np.uint16))
    write(s64, vol.astype(np.uint64))
    base = "chunk=64,levels=5,compression=none"
    configs = [("uint16 mean", s16, base + ",algorithm=mean"), ("uint16 mode", s16, base + ",algorithm=mode"),
               ("uint64 mode", s64, base + ",algorithm=mode"), ("uint64 mean", s64, base + ",algorithm=mean")]
    times = {name: [] for name, _, _ in configs}
    for _ in range(a.reps):
        for name, src, opts in configs:
            times[name].append(run(exe, src, work, opts))
    med = {k: statistics.median(v) for k, v in times.items()}
    nvox = int(np.prod(shape))
    print("shape %s, %d labels in 5^3 patches + 2%% noise, median of %d, load %.1f" % (
        shape, 199, a.reps, os.getloadavg()[0]))
    for name, _, _ in configs:
        bpv = 2 if name.startswith("uint16") else 8
        print("%-12s %7.2f s  %7.1f MB/s of source  (runs %s)" % (
            name, med[name], nvox * bpv / med[name] / 1e6, " ".join("%.2f" % t for t in times[name])))
    print("mode / mean, uint16: %.2f (target <= 2)" % (med["uint16 mode"] / med["uint16 mean"]))
    r = (nvox * 8 / med["uint64 mode"]) / (nvox * 2 / med["uint16 mode"])
    print("uint64 / uint16 byte rate, mode: %.2f (target >= 1/1.1 = 0.91)" % r)
    r = (nvox * 8 / med["uint64 mean"]) / (nvox * 2 / med["uint16 mean"])
    print("uint64 / uint16 byte rate, mean: %.2f" % r)
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
