#!/usr/bin/python3
"""-o prebuild=K benchmark (issue 11 item 3). Side by side in one run, per rep:

- materialize: `omezarr-materialize SRC DEST -o chunk=C,levels=L --levels K-(L-1) --quiet` into
  a fresh DEST (wall time of the command; it fsyncs its units).
- prebuild: `omezarrfs SRC MNT -o cache=FRESH,chunk=C,levels=L,prebuild=K`, wall time from the
  mount command to prebuild_chunks_done == prebuild_chunks_total (stats xattr polled every 50 ms)
  plus the unmount (which drains the queued cache writes).
  ratio = materialize time / prebuild time; also against `--no-fsync` (the cache does not
  fsync its entries, so that is the like-for-like write path) (>= 0.8 is the target: the pass runs at >= 0.8x the
  speed of materializing the same levels).
- first image of a cold mount: a new daemon on that cache (no prebuild=) reads the root
  .zattrs, the top level's .zarray and all its chunks, then the same for the level below (what a
  viewer's first screen of the whole volume needs); baseline: the same reads on a mount with a
  fresh cache (computed from the source).

usage: prebuild_bench.py --build BUILD --work DIR [--depth 128 --size 1024] [--k 1] [--reps 1]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def stats(mnt):
    out = {}
    for line in os.getxattr(mnt, "user.omezarrfs.stats").decode().splitlines():
        n, v = line.split()
        out[n] = int(v)
    return out


def mount(exe, src, mnt, opts):
    os.makedirs(mnt, exist_ok=True)
    subprocess.run([exe, src, mnt, "-o", opts], check=True)


def unmount(mnt):
    subprocess.run(["fusermount3", "-u", mnt], check=True)
    # the daemon exits after the unmount (its cache lock goes with it)
    for _ in range(600):
        r = subprocess.run(["pgrep", "-f", "omezarrfs .* %s " % mnt], capture_output=True)
        if r.returncode != 0:
            return
        time.sleep(0.05)


def read_level(mnt, level):
    n = 0
    d = os.path.join(mnt, str(level))
    with open(os.path.join(d, ".zarray"), "rb") as f:
        n += len(f.read())
    for root, _, files in os.walk(d):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                n += len(f.read())
    return n


def first_image(exe, src, mnt, opts, levels):
    t0 = time.monotonic()
    mount(exe, src, mnt, opts)
    with open(os.path.join(mnt, ".zattrs"), "rb") as f:
        f.read()
    read_level(mnt, levels - 1)
    read_level(mnt, levels - 2)
    dt = time.monotonic() - t0
    s = stats(mnt)
    unmount(mnt)
    return dt, s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--depth", type=int, default=128)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--chunk", type=int, default=128)
    ap.add_argument("--levels", type=int, default=6)
    ap.add_argument("--k", type=int, default=1)
    ap.add_argument("--reps", type=int, default=1)
    a = ap.parse_args()
    exe = os.path.join(a.build, "fs", "omezarrfs")
    mat = os.path.join(a.build, "cli", "omezarr-materialize")
    src = os.path.join(a.work, "stack-%dx%d" % (a.depth, a.size))
    subprocess.run([sys.executable, os.path.join(HERE, "gen_stack.py"), src, "--depth", str(a.depth), "--size",
                    str(a.size), "--fill"], check=True)
    base = "chunk=%d,levels=%d" % (a.chunk, a.levels)
    rows = []
    for rep in range(a.reps):
        dest = os.path.join(a.work, "dest")
        cache = os.path.join(a.work, "cache")
        mnt = os.path.join(a.work, "mnt")
        for p in (dest, cache):
            shutil.rmtree(p, ignore_errors=True)
        subprocess.run(["sync"])
        t0 = time.monotonic()
        subprocess.run([mat, src, dest, "-o", base, "--levels", "%d-%d" % (a.k, a.levels - 1), "--quiet"], check=True)
        t_mat = time.monotonic() - t0
        shutil.rmtree(dest, ignore_errors=True)
        subprocess.run(["sync"])
        t0 = time.monotonic()
        subprocess.run([mat, src, dest, "-o", base, "--levels", "%d-%d" % (a.k, a.levels - 1), "--quiet", "--no-fsync"],
                       check=True)
        t_nofsync = time.monotonic() - t0
        shutil.rmtree(dest, ignore_errors=True)
        subprocess.run(["sync"])
        t0 = time.monotonic()
        mount(exe, src, mnt, "cache=%s,%s,prebuild=%d" % (cache, base, a.k))
        while True:
            s = stats(mnt)
            if s["prebuild_chunks_total"] and s["prebuild_chunks_done"] >= s["prebuild_chunks_total"]:
                break
            time.sleep(0.05)
        t_done = time.monotonic() - t0
        unmount(mnt)
        t_pre = time.monotonic() - t0
        subprocess.run(["sync"])
        cold, cs = first_image(exe, src, mnt, "cache=%s,%s" % (cache, base), a.levels)
        fresh = os.path.join(a.work, "cache-fresh")
        shutil.rmtree(fresh, ignore_errors=True)
        base_t, bs = first_image(exe, src, mnt, "cache=%s,%s" % (fresh, base), a.levels)
        shutil.rmtree(fresh, ignore_errors=True)
        rows.append((t_mat, t_pre, t_done, cold, base_t, t_nofsync, s["prebuild_chunks_total"],
                     cs["chunks_computed"], bs["chunks_computed"]))
        log("rep %d: materialize %.2f s (--no-fsync %.2f s), prebuild %.2f s (done at %.2f s), ratio %.3f; first image cold-after-prebuild "
            "%.3f s (computed %d) vs fresh cache %.3f s (computed %d)" % (rep, t_mat, t_nofsync, t_pre, t_done, t_mat / t_pre, cold,
                                                                          cs["chunks_computed"], base_t,
                                                                          bs["chunks_computed"]))
    med = [statistics.median(r[i] for r in rows) for i in range(6)]
    print("| %dx%dx%d uint16, chunk %d, levels %d | prebuild=%d (%d chunks) | %.2f | %.2f | %.2f | %.3f | %.3f | %.3f "
          "| %.3f |" % (a.depth, a.size, a.size, a.chunk, a.levels, a.k, rows[0][6], med[0], med[5], med[1],
                        med[0] / med[1], med[5] / med[1], med[3], med[4]))
    shutil.rmtree(os.path.join(a.work, "dest"), ignore_errors=True)
    shutil.rmtree(os.path.join(a.work, "cache"), ignore_errors=True)


if __name__ == "__main__":
    main()
