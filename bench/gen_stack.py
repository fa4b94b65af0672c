#!/usr/bin/python3
"""Writes a deterministic scroll-like z-slice TIFF stack for the mount benchmark.

Content: a rolled-up "papyrus" (an Archimedean spiral of bright layers with z wobble) inside a
disc of radius 0.45*width, plus Gaussian noise; outside the disc either low "air" noise
(--fill, every chunk non-empty) or exact zeros (--masked, the corner chunks are empty).
Slice z uses numpy.random.default_rng(seed + z), so any slice can be regenerated alone and the
stack is the same on every machine. Files are written to NAME.tmp and renamed; a STACK.json
with the parameters is written last and marks the stack complete (reused when it matches).

usage: gen_stack.py OUT_DIR --depth 256 --size 2048 (--masked|--fill) [--compression none|zlib]
       [--level 6] [--rowsperstrip 32] [--seed 1] [--jobs 2]
"""
import argparse
import json
import multiprocessing
import os
import sys

import numpy as np
import tifffile

_GRID = {}


def _grid(size):
    if size not in _GRID:
        c = (size - 1) / 2.0
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        dy, dx = yy - c, xx - c
        r = np.sqrt(dx * dx + dy * dy)
        th = np.arctan2(dy, dx)
        _GRID[size] = (r, th)
    return _GRID[size]


def make_slice(z, a):
    size = a.size
    r, th = _grid(size)
    rng = np.random.default_rng(a.seed + z)
    radius = 0.45 * size
    period = max(size / 80.0, 4.0)  # spacing of the papyrus layers in voxels
    # spiral phase: radius + one layer per turn, slowly wobbling with z
    phase = (r + period * th / (2 * np.pi) + 3.0 * np.sin(z / 17.0 + th * 3)) / period
    layer = np.cos(2 * np.pi * phase) ** 8  # thin bright sheets
    img = 18000.0 + 22000.0 * layer + rng.normal(0.0, 900.0, (size, size)).astype(np.float32)
    inside = r <= radius
    if a.masked:
        img = np.where(inside, img, 0.0)
    else:
        air = 5000.0 + rng.normal(0.0, 600.0, (size, size)).astype(np.float32)
        img = np.where(inside, img, air)
    return np.clip(img, 1 if a.masked else 0, 65535).astype(np.uint16) * (inside | (not a.masked))


def write_one(args):
    z, a = args
    img = make_slice(z, a)
    path = os.path.join(a.out, "%05d.tif" % z)
    tmp = path + ".tmp"
    kw = dict(rowsperstrip=a.rowsperstrip, photometric="minisblack", metadata=None)
    if a.compression == "zlib":
        kw.update(compression="zlib", compressionargs={"level": a.level})
    tifffile.imwrite(tmp, img, **kw)
    os.replace(tmp, path)
    return z


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--depth", type=int, default=256)
    p.add_argument("--size", type=int, default=2048)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--masked", action="store_true")
    g.add_argument("--fill", action="store_true")
    p.add_argument("--compression", choices=["none", "zlib"], default="none")
    p.add_argument("--level", type=int, default=6)
    p.add_argument("--rowsperstrip", type=int, default=32)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    a = p.parse_args()
    params = dict(depth=a.depth, size=a.size, masked=a.masked, compression=a.compression,
                  level=a.level if a.compression == "zlib" else None,
                  rowsperstrip=a.rowsperstrip, seed=a.seed, dtype="uint16", generator=1,
                  tifffile=tifffile.__version__, numpy=np.__version__)
    marker = os.path.join(a.out, "STACK.json")
    if os.path.exists(marker):
        with open(marker) as f:
            old = json.load(f)
        if {k: old.get(k) for k in params if k not in ("tifffile", "numpy")} == \
           {k: v for k, v in params.items() if k not in ("tifffile", "numpy")}:
            print("reusing", a.out, file=sys.stderr)
            return
        os.remove(marker)
    os.makedirs(a.out, exist_ok=True)
    for n in os.listdir(a.out):
        if n.endswith(".tif") or n.endswith(".tmp"):
            os.remove(os.path.join(a.out, n))
    jobs = [(z, a) for z in range(a.depth)]
    with multiprocessing.Pool(a.jobs) as pool:
        for i, _ in enumerate(pool.imap_unordered(write_one, jobs)):
            if (i + 1) % 32 == 0:
                print("  %s: %d/%d slices" % (a.out, i + 1, a.depth), file=sys.stderr)
    with open(marker + ".tmp", "w") as f:
        json.dump(params, f, indent=1)
    os.replace(marker + ".tmp", marker)


if __name__ == "__main__":
    main()
