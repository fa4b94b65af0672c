#!/usr/bin/python3
"""Writes a small synthetic scroll-like z-slice TIFF stack (the README demo's sample).

usage: /usr/bin/python3 scripts/make-sample-stack.py OUTDIR [--shape Z Y X] [--dtype uint16|uint8]
                                                     [--compression none|zlib] [--seed N]

A cylinder of "papyrus" (sheets: a spiral of bright voxels on a textured background) inside a
zero mask, like a CT scan of a scroll. Slices are OUTDIR/00000.tif, 00001.tif, ...
"""
import argparse
import os

import numpy as np
import tifffile


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--shape", type=int, nargs=3, default=[64, 256, 256], metavar=("Z", "Y", "X"))
    ap.add_argument("--dtype", default="uint16", choices=["uint16", "uint8"])
    ap.add_argument("--compression", default="none", choices=["none", "zlib"])
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    nz, ny, nx = a.shape
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float32)
    cy, cx = (ny - 1) / 2, (nx - 1) / 2
    r = np.hypot(y - cy, x - cx)
    theta = np.arctan2(y - cy, x - cx)
    rmax = 0.45 * min(ny, nx)
    top = 65535 if a.dtype == "uint16" else 255
    for z in range(nz):
        # A spiral sheet whose phase drifts with z.
        phase = (r / 6.0 - theta / (2 * np.pi) + z / 40.0) % 1.0
        sheet = np.exp(-((phase - 0.5) ** 2) / 0.01)
        img = 0.25 + 0.6 * sheet + 0.1 * rng.random((ny, nx), dtype=np.float32)
        img[r > rmax] = 0.0
        data = np.clip(img * top, 0, top).astype(a.dtype)
        tifffile.imwrite(os.path.join(a.out, "%05d.tif" % z), data,
                         compression=None if a.compression == "none" else a.compression)
    print("wrote %d slices of %dx%d %s to %s" % (nz, nx, ny, a.dtype, a.out))


if __name__ == "__main__":
    main()
