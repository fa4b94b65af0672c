#!/usr/bin/python3
"""Label images (-o labels=) through omezarr-materialize, every configuration side by side in the
same run, alternating, --reps times each, median reported. The label volume is dtype_bench.py's
(uint16 ids in 5^3-voxel patches + 2% single-voxel noise); the image is a uint16 stack of the
same shape.
  - uint16 labels as an image: algorithm=mean vs algorithm=mode (full pyramid) -> mode / mean
  - image (mean) alone vs image + labels=cells:LABELS (the label pyramid in mode) in
    ome-zarr-0.4 -> the cost of the label tree relative to the image tree
  - the same in format=precomputed (label chunks encoded as compressed_segmentation, 8^3 blocks)
    -> the cost of the label tree there, and its bytes vs raw uint32
Materialize: compression=none, chunk=64, levels=5, a fresh DEST each time, sync included.

  bench/labels_bench.py [--shape 128,384,384] [--reps 3] [--build build]
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dtype_bench import labels, write  # noqa: E402


def run(exe, src, work, opts, sizes=None):
    dest = os.path.join(work, "dest")
    shutil.rmtree(dest, ignore_errors=True)
    subprocess.run(["sync"], check=True)
    t0 = time.monotonic()
    p = subprocess.run([exe, src, dest, "--quiet", "-o", opts], capture_output=True, text=True)
    subprocess.run(["sync"], check=True)
    t = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit("materialize failed (%s): %s" % (opts, p.stderr[-1500:]))
    if sizes is not None:
        lab = os.path.join(dest, "labels", "cells", "0")
        if os.path.isdir(lab):
            sizes.append(sum(os.path.getsize(os.path.join(lab, n)) for n in os.listdir(lab)))
    shutil.rmtree(dest, ignore_errors=True)
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="128,384,384")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--build", default="build")
    a = ap.parse_args()
    shape = tuple(int(x) for x in a.shape.split(","))
    exe = os.path.join(a.build, "cli", "omezarr-materialize")
    work = tempfile.mkdtemp(prefix="oz-labels-bench-")
    lab, img = os.path.join(work, "lab"), os.path.join(work, "img")
    write(lab, labels(shape).astype(np.uint16))
    rng = np.random.default_rng(7)
    write(img, rng.integers(0, 4000, size=shape).astype(np.uint16))
    base = "chunk=64,levels=5,compression=none"
    L = ",labels=cells:" + lab
    configs = [("labels as image, mean", lab, base + ",algorithm=mean"),
               ("labels as image, mode", lab, base + ",algorithm=mode"),
               ("0.4 image", img, base),
               ("0.4 image + labels", img, base + L),
               ("precomputed image", img, base + ",format=precomputed"),
               ("precomputed image + labels", img, base + ",format=precomputed" + L)]
    times = {name: [] for name, _, _ in configs}
    cseg = []
    for _ in range(a.reps):
        for name, src, opts in configs:
            times[name].append(run(exe, src, work, opts, cseg if name == "precomputed image + labels" else None))
    med = {k: statistics.median(v) for k, v in times.items()}
    print("shape %s uint16, median of %d, load %.1f" % (shape, a.reps, os.getloadavg()[0]))
    for name, _, _ in configs:
        print("%-28s %7.2f s  (runs %s)" % (name, med[name], " ".join("%.2f" % t for t in times[name])))
    print("mode / mean on uint16 labels, full pyramid: %.2f" % (med["labels as image, mode"] /
                                                                med["labels as image, mean"]))
    print("0.4: (image + labels) / image: %.2f" % (med["0.4 image + labels"] / med["0.4 image"]))
    print("precomputed: (image + labels) / image: %.2f" % (med["precomputed image + labels"] /
                                                           med["precomputed image"]))
    raw32 = int(np.prod(shape)) * 4
    print("compressed_segmentation level 0: %d bytes = %.3f of raw uint32 (%d bytes)" % (
        cseg[0], cseg[0] / raw32, raw32))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
