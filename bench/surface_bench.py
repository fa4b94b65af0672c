#!/usr/bin/python3
"""omezarr-surface-to-obj vs scroll2zarr's surface_to_obj.py (the baseline, run side by side in the
same run) on a generated 1000 x 1000 .ppm (a smooth curved surface), at --zstep 0 (no decimation)
and at the defaults. Prints wall time and peak RSS (from /usr/bin/time -v) and the ratios.

usage: bench/surface_bench.py BUILD_DIR [--size N] [--repeat R]"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

MIRROR = "/work/.mirror/KhartesViewer+scroll2zarr/repo"


def make_ppm(path, n):
    r, c = np.mgrid[0:n, 0:n].astype(np.float64)
    x = 500 + 0.8 * c + 0.1 * r
    y = 800 + 40 * np.sin(c / 120.0) + 0.05 * r
    z = 100 + 1.0 * r + 10 * np.cos(c / 90.0)
    d = np.stack([x, y, z, np.ones_like(x), np.zeros_like(x), np.zeros_like(x)], axis=-1)
    d[(r - n / 2) ** 2 + (c - n / 3) ** 2 < (n / 10) ** 2] = 0  # a hole
    with open(path, "wb") as f:
        f.write(("width: %d\nheight: %d\ndim: 6\nordered: true\ntype: double\nversion: 1\n<>\n" % (n, n)).encode())
        f.write(d.astype("<f8").tobytes())


def timed(cmd, cwd):
    r = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True, cwd=cwd)
    if r.returncode != 0:
        sys.exit("failed: %s\n%s" % (cmd, r.stderr[-2000:]))
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", r.stderr)
    h, m, s = wall.groups()
    secs = (int(h) * 3600 if h else 0) + int(m) * 60 + float(s)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1)) / 1024.0
    return secs, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    tool = os.path.abspath(os.path.join(a.build, "cli", "omezarr-surface-to-obj"))
    d = tempfile.mkdtemp(prefix="surface-bench-")
    for f in ("surface_to_obj.py", "ppm.py"):
        src = subprocess.run(["git", "--git-dir=" + MIRROR, "show", "HEAD:" + f], capture_output=True, check=True).stdout
        open(os.path.join(d, f), "wb").write(src)
    ppm = os.path.join(d, "seg.ppm")
    make_ppm(ppm, a.size)
    print("surface %d x %d, load %.1f" % (a.size, a.size, os.getloadavg()[0]))
    for label, args in (("--zstep 0", ["--zstep", "0"]), ("defaults", [])):
        for k in range(a.repeat):
            ot, orss = timed([sys.executable, "surface_to_obj.py", ppm, os.path.join(d, "orig.obj")] + args, d)
            mt, mrss = timed([tool, ppm, os.path.join(d, "ours.obj"), "-q"] + args, d)
            nv = sum(1 for line in open(os.path.join(d, "ours.obj")) if line.startswith("v "))
            nf = sum(1 for line in open(os.path.join(d, "ours.obj")) if line.startswith("f "))
            print("%-10s %8d v %8d f | original %7.2f s %7.0f MB | ours %6.2f s %6.0f MB | %5.1fx faster, %4.1fx less memory"
                  % (label, nv, nf, ot, orss, mt, mrss, ot / mt, orss / mrss), flush=True)
    subprocess.run(["rm", "-rf", d])


if __name__ == "__main__":
    main()
