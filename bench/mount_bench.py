#!/usr/bin/python3
"""omezarrfs mount benchmark (issue item 13). Run it through bench/run_mount_bench.sh.

For each stack (uncompressed filled slices; deflate-compressed masked slices) it measures, in one
run and side by side, each repeated --reps times (median reported):
  cat      cat of all slices to /dev/null (slices already in the page cache: the read bound)
  decode   libtiff decode of every strip of every slice, 1 and 2 threads (oz_bench_tiff_decode)
  cold     fresh cache dir + fresh mount, read every level-0 chunk (walk z/y/x, 2 and 1 readers;
           also open-by-index without listing, as zarr clients do)
  warm-pc  the same chunks again on the same mount (kernel page cache may serve them)
  warm-rm  after unmount + remount with the same cache dir (the daemon serves its disk cache)
  plain    the same chunk files copied to a plain directory, same reader, same threads
  coarsest fresh cache + fresh mount, read every chunk of the coarsest level
  rss      VmHWM of the daemon at the end of every mount; memory=256M re-run of cold + coarsest
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

import vmwarm  # bench/vmwarm.py

MiB = 1 << 20
RSS_SLACK = 128 * MiB  # "memory + a small constant": the constant allowed over memory=


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def parse_size(s):
    s = s.strip().upper().rstrip("B").rstrip("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    if s and s[-1] in mult:
        return int(float(s[:-1]) * mult[s[-1]])
    return int(s)


class Bench:
    def __init__(self, a):
        self.a = a
        self.fs = os.path.join(a.build, "fs", "omezarrfs")
        self.reader = os.path.join(a.build, "bench", "oz_bench_read_tree")
        self.decoder = os.path.join(a.build, "bench", "oz_bench_tiff_decode")
        self.work = a.work
        self.counter = 0
        self.mounted = {}  # mnt -> pid

    # ---- mounts -------------------------------------------------------------------------------
    def new_dir(self, kind):
        self.counter += 1
        d = os.path.join(self.work, "%s-%d-%d" % (kind, os.getpid(), self.counter))
        os.makedirs(d)
        return d

    def mount(self, src, cache, extra=""):
        mnt = self.new_dir("mnt")
        opts = "cache=%s,log=%s" % (cache, os.path.join(self.work, "daemon.log"))
        if extra:
            opts += "," + extra
        with open(os.path.join(self.work, "mount.log"), "a") as out:
            r = subprocess.run([self.fs, src, mnt, "-o", opts], stdout=out, stderr=out)
        if r.returncode != 0:
            raise RuntimeError("mount failed (exit %d), see %s/mount.log" % (r.returncode, self.work))
        out = subprocess.run(["pgrep", "-f", "--", mnt], capture_output=True, text=True).stdout
        pids = [int(p) for p in out.split()]
        if len(pids) != 1:
            self.mounted[mnt] = None
            raise RuntimeError("expected one daemon for %s, found %s" % (mnt, pids))
        self.mounted[mnt] = pids[0]
        return mnt, pids[0]

    def umount(self, mnt):
        pid = self.mounted.pop(mnt, None)
        for attempt in range(20):
            r = subprocess.run(["fusermount3", "-u", mnt], capture_output=True, text=True)
            if r.returncode == 0:
                break
            time.sleep(0.5)
        else:
            subprocess.run(["fusermount3", "-uz", mnt])
        if pid:  # wait for the daemon to exit (the cache dir is locked while it runs)
            for _ in range(600):
                if not os.path.exists("/proc/%d" % pid):
                    break
                time.sleep(0.05)
            else:
                log("daemon %d did not exit; sending TERM" % pid)
                os.kill(pid, 15)
        try:
            os.rmdir(mnt)
        except OSError:
            pass

    def umount_all(self):
        for mnt in list(self.mounted):
            try:
                self.umount(mnt)
            except Exception as e:  # noqa: BLE001 - best effort cleanup
                log("cleanup of %s failed: %s" % (mnt, e))

    # ---- probes -------------------------------------------------------------------------------
    @staticmethod
    def proc(pid):
        st = {}
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmHWM", "VmRSS"):
                    st[k] = int(v.split()[0]) * 1024
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tck = os.sysconf("SC_CLK_TCK")
        st["minflt"] = int(fields[7])
        st["user"] = int(fields[11]) / tck
        st["sys"] = int(fields[12]) / tck
        return st

    @staticmethod
    def stats(mnt):
        out = subprocess.run(["getfattr", "--only-values", "-n", "user.omezarrfs.stats", mnt],
                             capture_output=True, text=True, check=True).stdout
        return {k: int(v) for k, v in (l.split() for l in out.splitlines() if l.strip())}

    def read(self, d, threads=2, grid=None):
        cmd = [self.reader, d, "--threads", str(threads)]
        if grid:
            cmd += ["--grid", ",".join(map(str, grid))]
        r = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
        return r

    def measured_read(self, mnt, pid, level, threads=2, grid=None):
        vmwarm.warm_memory(self.a.work)  # the same memory state before every timed read
        s0, p0 = self.stats(mnt), self.proc(pid)
        r = self.read(os.path.join(mnt, str(level)), threads, grid)
        p1, s1 = self.proc(pid), self.stats(mnt)
        r["daemon_user"] = p1["user"] - p0["user"]
        r["daemon_sys"] = p1["sys"] - p0["sys"]
        r["daemon_minflt"] = p1["minflt"] - p0["minflt"]
        r["hwm"] = p1["VmHWM"]
        r["stats"] = {k: v - s0.get(k, 0) for k, v in s1.items()}  # this phase only
        return r

    # ---- phases -------------------------------------------------------------------------------
    def cat(self, src):
        files = sorted(os.path.join(src, n) for n in os.listdir(src) if n.endswith(".tif"))
        nbytes = sum(os.path.getsize(f) for f in files)
        subprocess.run(["cat"] + files, stdout=subprocess.DEVNULL, check=True)  # into page cache
        times = []
        for _ in range(self.a.reps):
            t0 = time.monotonic()
            subprocess.run(["cat"] + files, stdout=subprocess.DEVNULL, check=True)
            times.append(time.monotonic() - t0)
        return dict(seconds=statistics.median(times), all=[round(t, 3) for t in sorted(times)],
                    bytes=nbytes)

    def decode(self, src, threads):
        runs = []
        for _ in range(self.a.reps):
            out = subprocess.run([self.decoder, src, "--threads", str(threads)],
                                 capture_output=True, text=True, check=True).stdout
            runs.append(json.loads(out))
        return med(runs)

    def cold_l0(self, src, threads, extra="", warm=True, grid=False, keep_plain=None):
        """Fresh cache + mount: cold read of level 0; then warm re-reads (same mount; remount)."""
        cold, warm_pc, warm_rm = [], [], []
        for rep in range(self.a.reps):
            cache = self.new_dir("cache")
            mnt = None
            try:
                mnt, pid = self.mount(src, cache, extra)
                idle = self.proc(pid)["VmRSS"]
                g = None
                if grid:
                    with open(os.path.join(mnt, "0", ".zarray")) as f:
                        za = json.load(f)
                    g = [-(-s // c) for s, c in zip(za["shape"], za["chunks"])]
                r = self.measured_read(mnt, pid, 0, threads, g)
                r["idle_rss"] = idle
                cold.append(r)
                if warm:
                    warm_pc.append(self.measured_read(mnt, pid, 0, threads))
                    self.umount(mnt)
                    mnt, pid = self.mount(src, cache, extra)
                    warm_rm.append(self.measured_read(mnt, pid, 0, threads))
                    if keep_plain and rep == self.a.reps - 1:
                        subprocess.run(["cp", "-r", os.path.join(mnt, "0"), keep_plain],
                                       check=True)
            finally:
                if mnt:
                    self.umount(mnt)
                shutil.rmtree(cache, ignore_errors=True)
        return med(cold), (med(warm_pc) if warm_pc else None), (med(warm_rm) if warm_rm else None)

    def coarsest(self, src, extra=""):
        runs = []
        for _ in range(self.a.reps):
            cache = self.new_dir("cache")
            mnt = None
            try:
                mnt, pid = self.mount(src, cache, extra)
                with open(os.path.join(mnt, ".zattrs")) as f:
                    level = json.load(f)["multiscales"][0]["datasets"][-1]["path"]
                r = self.measured_read(mnt, pid, level, 2)
                r["level"] = level
                runs.append(r)
            finally:
                if mnt:
                    self.umount(mnt)
                shutil.rmtree(cache, ignore_errors=True)
        return med(runs)

    def dd(self, nbytes):
        """Buffered write of the level-0 bytes in 4 MiB blocks into the cache file system."""
        runs = []
        for _ in range(self.a.reps):
            path = os.path.join(self.work, "dd.tmp")
            vmwarm.warm_memory(self.a.work)
            t0 = time.monotonic()
            subprocess.run(["dd", "if=/dev/zero", "of=" + path, "bs=4M",
                            "count=%d" % max(1, nbytes // (4 * MiB)), "status=none"], check=True)
            runs.append(dict(seconds=time.monotonic() - t0, bytes=os.path.getsize(path)))
            os.remove(path)
        return med(runs)

    def plain(self, d, threads):
        runs = []
        for _ in range(self.a.reps):
            vmwarm.warm_memory(self.a.work)
            runs.append(self.read(d, threads))
        return med(runs)

    def run_stack(self, name, src):
        log("== %s: %s" % (name, src))
        with open(os.path.join(src, "STACK.json")) as f:
            meta = json.load(f)
        R = dict(name=name, src=src, meta=meta)
        log("  cat"); R["cat"] = self.cat(src)
        log("  libtiff decode"); R["decode2"] = self.decode(src, 2); R["decode1"] = self.decode(src, 1)
        plain = self.new_dir("plain")
        os.rmdir(plain)
        try:
            log("  cold level 0, 2 readers (+ warm, remount)")
            R["cold2"], R["warm_pc2"], R["warm_rm2"] = self.cold_l0(src, 2, keep_plain=plain)
            log("  cold level 0, 1 reader")
            R["cold1"], R["warm_pc1"], R["warm_rm1"] = self.cold_l0(src, 1)
            log("  cold level 0, 2 readers, open by index (no listing)")
            R["cold2_grid"], _, _ = self.cold_l0(src, 2, warm=False, grid=True)
            log("  cold level 0, 2 readers, open by index, cache_size=0 (no disk-cache writes)")
            R["cold2_nocache"], _, _ = self.cold_l0(src, 2, extra="cache_size=0", warm=False,
                                                    grid=True)
            log("  write bound of the cache file system (dd)")
            R["dd"] = self.dd(R["cold2"]["bytes"])
            log("  plain directory")
            R["plain2"] = self.plain(plain, 2)
            R["plain1"] = self.plain(plain, 1)
        finally:
            shutil.rmtree(plain, ignore_errors=True)
        log("  coarsest level, cold")
        R["coarsest"] = self.coarsest(src)
        reps, self.a.reps = self.a.reps, 1
        try:
            log("  memory=256M: cold level 0 and coarsest (1 run each)")
            R["m256_cold2"], _, _ = self.cold_l0(src, 2, extra="memory=256M", warm=False)
            R["m256_coarsest"] = self.coarsest(src, extra="memory=256M")
        finally:
            self.a.reps = reps
        return R


def med(runs):
    """The run with the median wall time, plus all the times."""
    runs = sorted(runs, key=lambda r: r["seconds"])
    m = dict(runs[len(runs) // 2])
    m["all"] = [round(r["seconds"], 3) for r in runs]
    return m


# ---- report ---------------------------------------------------------------------------------
def mbs(nbytes, s):
    return nbytes / s / 1e6 if s > 0 else float("inf")


def verdict(ok):
    return "PASS" if ok else "MISS"


def report(R, memory):
    L = []
    m = R["meta"]
    vol = m["depth"] * m["size"] * m["size"] * 2
    L.append("### %s: %dx%dx%d uint16, %s, compression %s%s, rowsperstrip %d"
             % (R["name"], m["depth"], m["size"], m["size"],
                "masked (zeros outside r=0.45*width)" if m["masked"] else "filled",
                m["compression"], " level %d" % m["level"] if m["level"] else "", m["rowsperstrip"]))
    L.append("")
    c2 = R["cold2"]
    L.append("Source: %d slices, %.1f MiB on disk (%.1f MiB of voxels). Level 0: %d chunk files "
             "(%d absent = empty), %.1f MiB." % (m["depth"], R["cat"]["bytes"] / MiB, vol / MiB,
                                                 c2["files"], c2["absent"] if c2["absent"] else
                                                 R["cold2_grid"]["absent"], c2["bytes"] / MiB))
    L.append("")
    L.append("| measurement | median s | MB/s | runs (s) | daemon CPU s (user + sys) | notes |")
    L.append("|---|---:|---:|---|---:|---|")

    def row(label, r, nbytes=None, note=""):
        s = r["seconds"]
        nb = nbytes if nbytes is not None else r.get("bytes", r.get("decoded_bytes"))
        cpu = ("%.2f + %.2f" % (r["daemon_user"], r["daemon_sys"])) if "daemon_user" in r else ""
        L.append("| %s | %.3f | %.0f | %s | %s | %s |" % (label, s, mbs(nb, s), r["all"], cpu, note))

    row("cat slices (read bound)", R["cat"], R["cat"]["bytes"], "page cache, 1 process")
    row("libtiff decode, 2 threads", R["decode2"], None, "decoded bytes")
    row("libtiff decode, 1 thread", R["decode1"], None, "decoded bytes")

    def statnote(r):
        st = r["stats"]
        return ("computed %d, disk-cache hits %d, source read %.0f MiB, strips decoded %d, "
                "daemon page faults %.1fk (%.0f MiB)"
                % (st.get("chunks_computed", 0), st.get("cache_hits", 0),
                   st.get("source_bytes_read", 0) / MiB, st.get("strips_decoded", 0),
                   r.get("daemon_minflt", 0) / 1e3, r.get("daemon_minflt", 0) * 4096 / MiB))
    row("cold level 0, 2 readers (walk)", c2, None, statnote(c2))
    row("cold level 0, 1 reader (walk)", R["cold1"], None, statnote(R["cold1"]))
    row("cold level 0, 2 readers (open by index)", R["cold2_grid"], None, statnote(R["cold2_grid"]))
    if "cold2_nocache" in R:
        row("cold level 0, 2 readers (open by index), cache_size=0", R["cold2_nocache"], None,
            "no disk-cache writes; " + statnote(R["cold2_nocache"]))
        row("dd of the level-0 bytes into the cache file system", R["dd"], None,
            "write bound of the disk cache (bs=4M, buffered, no fsync)")
    row("warm same mount, 2 readers", R["warm_pc2"], None, "kernel page cache; " + statnote(R["warm_pc2"]))
    row("warm same mount, 1 reader", R["warm_pc1"], None, "kernel page cache; " + statnote(R["warm_pc1"]))
    row("warm after remount, 2 readers", R["warm_rm2"], None, "daemon disk cache; " + statnote(R["warm_rm2"]))
    row("warm after remount, 1 reader", R["warm_rm1"], None, "daemon disk cache; " + statnote(R["warm_rm1"]))
    row("plain directory, 2 readers", R["plain2"])
    row("plain directory, 1 reader", R["plain1"])
    co = R["coarsest"]
    row("coarsest level %s, cold, 2 readers" % co["level"], co, vol,
        "MB/s of level-0 voxels; %d file(s); %s" % (co["files"], statnote(co)))
    row("memory=256M: cold level 0, 2 readers (1 run)", R["m256_cold2"], None, statnote(R["m256_cold2"]))
    row("memory=256M: coarsest, cold (1 run)", R["m256_coarsest"], vol,
        "MB/s of level-0 voxels; " + statnote(R["m256_coarsest"]))
    L.append("")

    # targets
    T = []
    for label, w in (("same mount", R["warm_pc2"]), ("after remount", R["warm_rm2"])):
        ratio = R["plain2"]["seconds"] / w["seconds"]
        T.append(("warm re-read (%s) vs plain dir, 2 readers: speed ratio" % label, ratio,
                  ">= 0.8", verdict(ratio >= 0.8)))
    for label, w in (("same mount", R["warm_pc1"]), ("after remount", R["warm_rm1"])):
        ratio = R["plain1"]["seconds"] / w["seconds"]
        T.append(("warm re-read (%s) vs plain dir, 1 reader: speed ratio" % label, ratio,
                  ">= 0.8 (info)", verdict(ratio >= 0.8)))
    cat = R["cat"]["seconds"]
    if m["compression"] == "none":
        for label, w in (("after remount", R["warm_rm2"]), ("same mount", R["warm_pc2"])):
            ratio = c2["seconds"] / (cat + w["seconds"])
            T.append(("cold level 0 / (cat + warm %s), 2 readers" % label, ratio, "<= 3",
                      verdict(ratio <= 3)))
        ratio = c2["seconds"] / cat
        T.append(("cold level 0 / cat (info)", ratio, "", ""))
    else:
        ratio = c2["seconds"] / R["decode2"]["seconds"]
        T.append(("cold level 0 (2 readers) / libtiff decode (2 threads)", ratio, "<= 1.5",
                  verdict(ratio <= 1.5)))
        ratio = c2["seconds"] / (cat + R["warm_rm2"]["seconds"])
        T.append(("cold level 0 / (cat + warm after remount) (info)", ratio, "", ""))
    if "cold2_nocache" in R:
        ref = R["decode2"]["seconds"] if m["compression"] != "none" else cat + R["warm_rm2"]["seconds"]
        T.append(("cold level 0 with cache_size=0 (open by index) / the same reference (info)",
                  R["cold2_nocache"]["seconds"] / ref, "", ""))
    ratio = R["coarsest"]["seconds"] / c2["seconds"]
    T.append(("coarsest cold / level-0 cold (info)", ratio, "", ""))
    hwm = max(R[k]["hwm"] for k in ("cold2", "cold1", "cold2_grid", "warm_rm2", "warm_rm1",
                                    "warm_pc2", "warm_pc1", "coarsest"))
    T.append(("peak RSS (VmHWM, max over all mounts), memory=%s (default): %.0f MiB"
              % (fmt_size(memory), hwm / MiB), hwm / memory,
              "<= memory + %d MiB" % (RSS_SLACK // MiB), verdict(hwm <= memory + RSS_SLACK)))
    m256 = 256 * MiB
    hwm = max(R["m256_cold2"]["hwm"], R["m256_coarsest"]["hwm"])
    T.append(("peak RSS (VmHWM), memory=256M: %.0f MiB" % (hwm / MiB),
              hwm / m256, "<= memory + %d MiB" % (RSS_SLACK // MiB), verdict(hwm <= m256 + RSS_SLACK)))
    T.append(("idle daemon RSS after mount (info): %.0f MiB" % (R["cold2"]["idle_rss"] / MiB), 0, "", ""))
    L.append("| check | value | target | result |")
    L.append("|---|---:|---|---|")
    for t in T:
        L.append("| %s | %s | %s | %s |" % (t[0], "%.2f" % t[1] if t[1] else "", t[2], t[3]))
    L.append("")
    return "\n".join(L)


def fmt_size(n):
    return "%gG" % (n / (1 << 30)) if n >= 1 << 30 else "%gM" % (n / MiB)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--results", help="append the report to this markdown file")
    p.add_argument("--json", help="write all raw numbers here")
    p.add_argument("--command", default="")
    p.add_argument("stacks", nargs="+", help="NAME=DIR")
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    b = Bench(a)
    results = []
    load0 = open("/proc/loadavg").read().split()[:3]
    try:
        for s in a.stacks:
            name, _, d = s.partition("=")
            results.append(b.run_stack(name, d))
    finally:
        b.umount_all()
    memory = parse_size("1G")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    with open("/proc/meminfo") as f:
        memtotal = int(f.readline().split()[1]) * 1024
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    head = ["## %s, commit %s" % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), commit), "",
            "Machine: %s, nproc %d, %.1f GiB RAM, kernel %s. Command: `%s`. Each measurement "
            "is the median of %d runs (all runs listed); ratios use the medians. Default mount "
            "options (chunk=128, levels=6, mean, memory=1G, threads=nproc, empty=omit) + "
            "cache=<fresh dir>. Load average before/after: %s / %s (other jobs share the "
            "machine)." % (cpu, os.cpu_count(), memtotal / (1 << 30), platform.release(),
                           a.command, a.reps, " ".join(load0),
                           " ".join(open("/proc/loadavg").read().split()[:3])), ""]
    text = "\n".join(head) + "\n" + "\n".join(report(R, memory) for R in results)
    print(text)
    if a.results:
        with open(a.results, "a") as f:
            f.write("\n" + text)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
