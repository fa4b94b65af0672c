#!/usr/bin/python3
"""Layer TIFFs benchmark (issue 15, Speed): read every file of MNT/layers/ of a generated .ppm
through the mount (fresh cache, cold page cache not forced) against the original scroll2zarr
ppm_to_layers.py (exported from the mirror) on the same zarr volume, side by side in one run.

  bench/layers_bench.py [--shape Z,Y,X] [--ppm H,W] [--layers N] [--data DIR] [--record]

Prints wall time, peak RSS (mount: the daemon's VmHWM; original: ru_maxrss of the child) and the
ratio mount / original. Needs /usr/bin/python3 with numpy, zarr 2, tifffile, scipy; FUSE."""
import argparse
import os
import resource
import shutil
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIRROR = "/work/.mirror/KhartesViewer+scroll2zarr/repo"


def log(*a):
    print(*a, flush=True)


def gen(data, shape, hw):
    import zarr
    zdir = os.path.join(data, "vol_%dx%dx%d.zarr" % shape)
    if not os.path.exists(os.path.join(zdir, ".zarray")):
        log("generating", zdir)
        z = zarr.open(zdir + ".tmp", mode="w", shape=shape, chunks=(128, 128, 128), dtype=np.uint16,
                      compressor=None)
        yy, xx = np.mgrid[0:shape[1], 0:shape[2]]
        for z0 in range(0, shape[0], 128):
            zz = np.arange(z0, min(shape[0], z0 + 128))[:, None, None]
            z[z0:z0 + len(zz)] = (20000 + 10000 * np.sin(xx / 37.0 + zz / 11.0) * np.cos(yy / 23.0)
                                  + (xx * 7 + yy * 3) % 2000).astype(np.uint16)
        os.rename(zdir + ".tmp", zdir)
    h, w = hw
    ppm = os.path.join(data, "seg_%dx%d_%d.ppm" % (h, w, shape[0]))
    if not os.path.exists(ppm):
        r, c = np.mgrid[0:h, 0:w].astype(np.float64)
        x = 8 + c * (shape[2] - 16) / w
        y = 8 + r * (shape[1] - 16) / h
        amp = (shape[0] - 80) / 4.0
        z = shape[0] / 2 + amp * np.sin(c / 150.0) * np.cos(r / 190.0)
        dzdx = amp / 150.0 * np.cos(c / 150.0) * np.cos(r / 190.0) * w / (shape[2] - 16)
        dzdy = -amp / 190.0 * np.sin(c / 150.0) * np.sin(r / 190.0) * h / (shape[1] - 16)
        n = np.stack([-dzdx, -dzdy, np.ones_like(z)], axis=-1)
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        d = np.concatenate([np.stack([x, y, z], axis=-1), n], axis=-1)
        with open(ppm, "wb") as f:
            f.write(b"width: %d\nheight: %d\ndim: 6\nordered: true\ntype: double\nversion: 1\n<>\n" % (w, h))
            f.write(d.astype("<f8").tobytes())
    return zdir, ppm


def run_original(data, zdir, ppm, layers):
    code = os.path.join(data, "orig")
    os.makedirs(code, exist_ok=True)
    for f in ("ppm_to_layers.py", "ppm.py"):
        with open(os.path.join(code, f), "wb") as fh:
            fh.write(subprocess.run(["git", "--git-dir=" + MIRROR, "show", "HEAD:" + f], check=True,
                                    capture_output=True).stdout)
    out = os.path.join(data, "orig_out")
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.monotonic()
    subprocess.run([sys.executable, os.path.join(code, "ppm_to_layers.py"), ppm, zdir, out,
                    os.path.join(data, "orig_stack.tif"), "--number_of_layers", str(layers)],
                   check=True, stdout=subprocess.DEVNULL, cwd=code)
    t = time.monotonic() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return t, rss


def run_mount(data, zdir, ppm, layers, memory):
    exe = os.environ.get("OMEZARRFS_BIN", os.path.join(ROOT, "build", "fs", "omezarrfs"))
    mnt = os.path.join(data, "mnt")
    cache = os.path.join(data, "cache")
    shutil.rmtree(cache, ignore_errors=True)
    os.makedirs(mnt, exist_ok=True)
    t0 = time.monotonic()
    subprocess.run([exe, zdir, mnt, "-o", "layers=%s,layers_count=%d,cache=%s,memory=%s" %
                    (ppm, layers, cache, memory)], check=True)
    try:
        names = sorted(os.listdir(os.path.join(mnt, "layers")))
        total = 0
        for n in names:
            with open(os.path.join(mnt, "layers", n), "rb") as f:
                while True:
                    b = f.read(1 << 20)
                    if not b:
                        break
                    total += len(b)
        t = time.monotonic() - t0
        pid = subprocess.run(["pgrep", "-f", "-n", "^%s %s %s" % (exe, zdir, mnt)], capture_output=True,
                             text=True).stdout.split()
        hwm = 0
        if pid:
            with open("/proc/%s/status" % pid[0]) as f:
                for line in f:
                    if line.startswith("VmHWM"):
                        hwm = int(line.split()[1]) * 1024
    finally:
        subprocess.run(["fusermount3", "-u", mnt])
    return t, hwm, len(names), total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="256,1024,1024")
    ap.add_argument("--ppm", default="1000,1000")
    ap.add_argument("--layers", type=int, default=65)
    ap.add_argument("--memory", default="1G")
    ap.add_argument("--data", default="/tmp/omezarrfs-layers-bench")
    a = ap.parse_args()
    shape = tuple(int(v) for v in a.shape.split(","))
    hw = tuple(int(v) for v in a.ppm.split(","))
    os.makedirs(a.data, exist_ok=True)
    zdir, ppm = gen(a.data, shape, hw)
    tm, hwm, nfiles, nbytes = run_mount(a.data, zdir, ppm, a.layers, a.memory)
    to, rss = run_original(a.data, zdir, ppm, a.layers)
    gib = np.prod(shape) * 2 / 2 ** 30
    log("| volume | ppm | layers | mount s | original s | mount/original | mount VmHWM MiB | original maxrss MiB |")
    log("|---|---|---|---|---|---|---|---|")
    log("| %s uint16 (%.2f GiB, zarr raw 128^3) | %dx%d | %d (+stack, %d files, %.0f MB) | %.2f | %.2f | %.3f | %.0f | %.0f |"
        % ("x".join(map(str, shape)), gib, hw[0], hw[1], a.layers, nfiles, nbytes / 1e6, tm, to, tm / to,
           hwm / 2 ** 20, rss / 2 ** 20))


if __name__ == "__main__":
    main()
