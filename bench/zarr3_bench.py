#!/usr/bin/python3
"""OME-Zarr 0.5 (zarr v3, sharding) benchmark, side by side with 0.4 in one run (medians of
--reps). Run it through bench/run_zarr3_bench.sh.

For the 0.4 tree and for 0.5 with each shard= value, on one generated stack:
  materialize  wall time of omezarr-materialize (no fsync, fresh DEST), files written
  cold L0      fresh cache + fresh mount: every level-0 data file read by oz_bench_read_tree
               (2 threads); 0.4 reads DIR/0/z/y/x, 0.5 DIR/0/c/z/y/x
  cold file    fresh cache + fresh mount: the level-0 data covering one shard's box near the
               middle of the volume: one shard file (0.5), or its shard^3 chunk files (0.4)
  warm inner   on the mount of "cold L0", after dropping the kernel's page cache: pread of one
               inner chunk's byte range (offsets from the shard index) against the read of the
               same 0.4 chunk file on the 0.4 mount; median over --samples chunks
  rss          VmHWM of the daemon after "cold L0" with memory=512M
Also the old binaries (--old-bin DIR: omezarrfs and omezarr-materialize built before the format
seam) against the new ones on the 0.4 tree: materialize and cold L0, same run.
"""
import argparse
import json
import os
import random
import shutil
import statistics
import struct
import subprocess
import sys
import time

MiB = 1 << 20


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def drop_caches():
    subprocess.run(["sync"])
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


class Bench:
    def __init__(self, a):
        self.a = a
        self.work = a.work
        self.n = 0
        self.live = {}  # mnt -> pid, unmounted at exit even after an error

    def new_dir(self, kind):
        self.n += 1
        d = os.path.join(self.work, "%s-%d" % (kind, self.n))
        os.makedirs(d)
        return d

    def mount(self, fs, src, opts):
        mnt = self.new_dir("mnt")
        cache = self.new_dir("cache")
        r = subprocess.run([fs, src, mnt, "-o", opts + ",cache=" + cache], capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError("mount failed: " + r.stderr)
        pid = int(subprocess.run(["pgrep", "-f", "--", mnt], capture_output=True, text=True).stdout.split()[0])
        self.live[mnt] = pid
        return mnt, pid

    def umount(self, mnt, pid):
        self.live.pop(mnt, None)
        for _ in range(40):
            if subprocess.run(["fusermount3", "-u", mnt], capture_output=True).returncode == 0:
                break
            time.sleep(0.25)
        for _ in range(400):
            if not os.path.exists("/proc/%d" % pid):
                break
            time.sleep(0.05)

    @staticmethod
    def hwm(pid):
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return 0

    def materialize(self, tool, src, opts):
        dest = os.path.join(self.new_dir("dest"), "out.zarr")
        t0 = time.perf_counter()
        r = subprocess.run([tool, src, dest, "-o", opts + ",cache_size=0", "--no-fsync", "--quiet"],
                           capture_output=True, text=True)
        dt = time.perf_counter() - t0
        if r.returncode:
            raise RuntimeError("materialize failed: " + r.stderr)
        files = sum(len(f) for _, _, f in os.walk(dest))
        nbytes = sum(os.path.getsize(os.path.join(d, x)) for d, _, fs in os.walk(dest) for x in fs)
        shutil.rmtree(os.path.dirname(dest))
        return dt, files, nbytes

    def read_tree(self, d):
        r = subprocess.run([self.a.reader, d, "--threads", "2"], capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError("reader failed: " + r.stderr)
        return json.loads(r.stdout.strip().splitlines()[-1])


def shard_index(path, n_inner):
    with open(path, "rb") as f:
        f.seek(-(16 * n_inner + 4), os.SEEK_END)
        raw = f.read(16 * n_inner)
    v = struct.unpack("<%dQ" % (2 * n_inner), raw)
    return [(v[2 * i], v[2 * i + 1]) for i in range(n_inner)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--shape", required=True, help="z,y,x of the stack")
    ap.add_argument("--build", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--old-bin", default="")
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--shards", default="1,2,4,8")
    ap.add_argument("--compression", default="blosc")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--samples", type=int, default=40)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    a.fs = os.path.join(a.build, "fs", "omezarrfs")
    a.mat = os.path.join(a.build, "cli", "omezarr-materialize")
    a.reader = os.path.join(a.build, "bench", "oz_bench_read_tree")
    b = Bench(a)
    try:
        run(a, b)
    finally:
        for mnt, pid in list(b.live.items()):
            b.umount(mnt, pid)


def run(a, b):
    shape = [int(v) for v in a.shape.split(",")]
    c = a.chunk
    base = "chunk=%d,levels=5,compression=%s" % (c, a.compression)
    rows = []
    configs = [("0.4", base)] + [("0.5 shard=%s" % s, base + ",format=ome-zarr-0.5,shard=%s" % s)
                                 for s in a.shards.split(",")]
    med = statistics.median
    rnd = random.Random(7)
    b.materialize(a.mat, a.src, base)  # warm-up: the source in the page cache for every config
    for name, opts in configs:
        shard = int(opts.rsplit("shard=", 1)[1]) if "shard=" in opts else 1
        v3 = "format=ome-zarr-0.5" in opts
        row = {"config": name, "shard": shard}
        mats = [b.materialize(a.mat, a.src, opts) for _ in range(a.reps)]
        row["materialize_s"] = med(m[0] for m in mats)
        row["files"], row["bytes"] = mats[0][1], mats[0][2]
        colds, hwms = [], []
        for _ in range(a.reps):
            drop_caches()
            mnt, pid = b.mount(a.fs, a.src, opts + ",memory=512M")
            t = b.read_tree(os.path.join(mnt, "0", "c") if v3 else os.path.join(mnt, "0"))
            colds.append(t["seconds"])
            hwms.append(b.hwm(pid))
            b.umount(mnt, pid)
        row["cold_l0_s"] = med(colds)
        row["rss_mib"] = max(hwms) / MiB
        # The level-0 data around a box of 4^3 chunks near the middle (aligned to 8 chunks), cold:
        # 0.4 reads its 64 chunk files, 0.5 the shards covering it (one shard of 8^3 for shard=8).
        start = [(s0 // 2) // (c * 8) * 8 for s0 in shape]
        lats = []
        for _ in range(a.reps):
            drop_caches()
            mnt, pid = b.mount(a.fs, a.src, opts)
            t0 = time.perf_counter()
            ranges = [range(s0 // shard, (s0 + 3) // shard + 1) for s0 in start]
            for z in ranges[0]:
                for y in ranges[1]:
                    for x in ranges[2]:
                        p = os.path.join(mnt, "0", *(["c"] if v3 else []), str(z), str(y), str(x))
                        if os.path.exists(p):
                            with open(p, "rb") as f:
                                f.read()
            lats.append(time.perf_counter() - t0)
            b.umount(mnt, pid)
        row["cold_box_s"] = med(lats)
        row["box_chunks"] = max(shard, 4) ** 3
        rows.append(row)
        log(json.dumps(row))

    # Warm inner-chunk range reads: 0.5 shard mounts against the 0.4 mount, same chunks.
    mnt4, pid4 = b.mount(a.fs, a.src, base)
    b.read_tree(os.path.join(mnt4, "0"))
    for row in rows[1:]:
        shard = row["shard"]
        opts = base + ",format=ome-zarr-0.5,shard=%d" % shard
        mnt5, pid5 = b.mount(a.fs, a.src, opts)
        b.read_tree(os.path.join(mnt5, "0", "c"))
        cand = []
        for dp, _, fs in os.walk(os.path.join(mnt5, "0", "c")):
            for f in fs:
                p = os.path.join(dp, f)
                s = [int(x) for x in os.path.relpath(p, os.path.join(mnt5, "0", "c")).split("/")]
                entries = shard_index(p, shard ** 3) if shard > 1 else [(0, os.path.getsize(p))]
                for i, (off, nb) in enumerate(entries):
                    if nb != 2 ** 64 - 1:
                        ci = [s[0] * shard + i // (shard * shard), s[1] * shard + (i // shard) % shard,
                              s[2] * shard + i % shard]
                        cand.append((p, off, nb, os.path.join(mnt4, "0", *map(str, ci))))
        pick = rnd.sample(cand, min(a.samples, len(cand)))
        drop_caches()
        t5, t4 = [], []
        for p, off, nb, p4 in pick:
            t0 = time.perf_counter()
            fd = os.open(p, os.O_RDONLY)
            got = os.pread(fd, nb, off)
            os.close(fd)
            t5.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            with open(p4, "rb") as f:
                want = f.read()
            t4.append(time.perf_counter() - t0)
            if got != want:
                raise RuntimeError("inner chunk of %s at %d differs from %s" % (p, off, p4))
        row["warm_inner_ms"] = med(t5) * 1e3
        row["warm_v2_ms"] = med(t4) * 1e3
        b.umount(mnt5, pid5)
    b.umount(mnt4, pid4)

    old = {}
    if a.old_bin:
        for label, fs, mat in (("old", os.path.join(a.old_bin, "omezarrfs"),
                                os.path.join(a.old_bin, "omezarr-materialize")), ("new", a.fs, a.mat)):
            ms, cs = [], []
            for _ in range(a.reps):
                ms.append(b.materialize(mat, a.src, base)[0])
                drop_caches()
                mnt, pid = b.mount(fs, a.src, base)
                cs.append(b.read_tree(os.path.join(mnt, "0"))["seconds"])
                b.umount(mnt, pid)
            old[label] = {"materialize_s": med(ms), "cold_l0_s": med(cs)}
    out = {"shape": shape, "chunk": c, "compression": a.compression, "rows": rows, "old_vs_new": old}
    print(json.dumps(out))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)

    v2 = rows[0]
    print("\n| format | files | materialize s | / 0.4 | cold L0 s | / 0.4 | cold box s | warm inner chunk ms "
          "| / 0.4 chunk | peak RSS MiB (memory=512M) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        w = ("%.2f | %.2f" % (r["warm_inner_ms"], r["warm_inner_ms"] / r["warm_v2_ms"])) if "warm_inner_ms" in r \
            else "- | -"
        print("| %s | %d | %.2f | %.2f | %.2f | %.2f | %.3f | %s | %.0f |" % (
            r["config"], r["files"], r["materialize_s"], r["materialize_s"] / v2["materialize_s"], r["cold_l0_s"],
            r["cold_l0_s"] / v2["cold_l0_s"], r["cold_box_s"], w, r["rss_mib"]))
    if old:
        print("\n| 0.4 tree | old binary | new binary | new / old |\n|---|---|---|---|")
        for k in ("materialize_s", "cold_l0_s"):
            print("| %s | %.2f | %.2f | %.3f |" % (k, old["old"][k], old["new"][k], old["new"][k] / old["old"][k]))


if __name__ == "__main__":
    main()
