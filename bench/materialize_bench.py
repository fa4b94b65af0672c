#!/usr/bin/python3
"""omezarr-materialize benchmark (issue item 8); run through bench/run_materialize_bench.sh.

Per stack NAME=DIR (all in one run, repeated --reps times, medians reported):
- materialize: `omezarr-materialize DIR DEST --quiet` (defaults) into a fresh DEST under --work,
  run under GNU `/usr/bin/time -v` (wall, user, sys, max RSS), then a timed `sync`.
- read bound: `cat` of the slices (after one untimed warm-up cat), or for a compressed stack
  (--decode NAME) `oz_bench_tiff_decode DIR --threads 2` (libtiff, 2 threads; its own seconds).
- write bound: `oz_bench_write_tree` (bench/write_tree.cc) writing files of the same sizes and
  names as the materialized DEST with 2 threads (one cache-hot buffer, as materialize writes each
  chunk just cut; plain writes, no temp + rename) into a fresh dir under --work, then a timed `sync`.
bound = read bound + write bound (incl. sync); ratio = (materialize + sync) / bound.
An untimed `sync` precedes each timed phase; DEST and the write copy are deleted after each rep.
- baseline (--scroll PATH): KhartesViewer/scroll2zarr's `scroll_to_ome.py DIR OUT.zarr
  --chunk_size 128 --nlevels 6 --algorithm mean --num_threads 2` (the same tree shape, no
  compression) with /usr/bin/python3, then a timed `sync`; speed-up = its time / materialize's.
--rss NAME=DIR: one materialize with -o memory=1G for peak RSS and time only (large stack).
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


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sync():
    t0 = time.monotonic()
    subprocess.run(["sync"], check=True)
    return time.monotonic() - t0


WARM_DIR = None  # set in main(): under --work


def warm_memory():
    vmwarm.warm_memory(WARM_DIR)


def tree_files(d):
    out = []
    for root, dirs, files in os.walk(d):
        dirs[:] = [x for x in dirs if x != ".omezarr-materialize"]
        for n in files:
            p = os.path.join(root, n)
            out.append((os.path.relpath(p, d), os.path.getsize(p)))
    out.sort()
    return out


def materialize(exe, src, dest, opts=None, extra=()):
    cmd = ["/usr/bin/time", "-v", exe, src, dest, "--quiet"] + list(extra)
    if opts:
        cmd += ["-o", opts]
    warm_memory()
    sync()
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError("materialize failed (%d): %s" % (p.returncode, p.stderr[-2000:]))
    r = dict(wall=wall)
    for line in p.stderr.splitlines():
        line = line.strip()
        if line.startswith("User time (seconds):"):
            r["user"] = float(line.split(":")[1])
        elif line.startswith("System time (seconds):"):
            r["sys"] = float(line.split(":")[1])
        elif line.startswith("Maximum resident set size (kbytes):"):
            r["rss_kib"] = int(line.split(":")[1])
    r["sync"] = sync()
    r["total"] = r["wall"] + r["sync"]
    return r


def write_copy(writer, files, dest, work):
    lst = os.path.join(work, "write-list.txt")
    with open(lst, "w") as f:
        for rel, size in files:
            f.write("%d %s\n" % (size, rel))
    os.makedirs(dest, exist_ok=True)
    warm_memory()
    sync()
    t0 = time.monotonic()
    out = subprocess.run([writer, lst, dest, "--threads", "2"], capture_output=True, text=True,
                         check=True).stdout
    wall = time.monotonic() - t0
    w = json.loads(out)["seconds"]
    s = sync()
    os.unlink(lst)
    return dict(write=w, wall=wall, sync=s, total=w + s)


def scroll_to_ome(script, src, out):
    cmd = ["/usr/bin/python3", script, src, out, "--chunk_size", "128", "--nlevels", "6",
           "--algorithm", "mean", "--num_threads", "2"]
    warm_memory()
    sync()
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError("scroll_to_ome.py failed (%d): %s" % (p.returncode, p.stderr[-2000:]))
    s = sync()
    return dict(wall=wall, sync=s, total=wall + s)


def cat_time(files):
    t0 = time.monotonic()
    subprocess.run(["cat"] + files, stdout=subprocess.DEVNULL, check=True)
    return time.monotonic() - t0


def decode_time(decoder, src):
    out = subprocess.run([decoder, src, "--threads", "2"], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)["seconds"]


def run_stack(a, name, src, decode):
    slices = sorted(os.path.join(src, n) for n in os.listdir(src) if n.endswith(".tif"))
    src_bytes = sum(os.path.getsize(f) for f in slices)
    subprocess.run(["cat"] + slices, stdout=subprocess.DEVNULL, check=True)  # warm-up
    mats, reads, writes, nofs, scrolls = [], [], [], [], []
    files = None
    for rep in range(a.reps):
        dest = os.path.join(a.work, "%s-dest" % name)
        copy = os.path.join(a.work, "%s-copy" % name)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.rmtree(copy, ignore_errors=True)
        log("%s rep %d: materialize" % (name, rep + 1))
        mats.append(materialize(a.exe, src, dest))
        if files is None:
            files = tree_files(dest)
        log("%s rep %d: read bound" % (name, rep + 1))
        reads.append(decode_time(a.decoder, src) if decode else cat_time(slices))
        log("%s rep %d: write bound" % (name, rep + 1))
        writes.append(write_copy(a.writer, files, copy, a.work))
        shutil.rmtree(dest, ignore_errors=True)
        shutil.rmtree(copy, ignore_errors=True)
        log("%s rep %d: materialize --no-fsync (info)" % (name, rep + 1))
        nofs.append(materialize(a.exe, src, dest, extra=["--no-fsync"]))
        shutil.rmtree(dest, ignore_errors=True)
        if a.scroll:
            out = os.path.join(a.work, "%s-scroll.zarr" % name)
            shutil.rmtree(out, ignore_errors=True)
            log("%s rep %d: scroll_to_ome.py (baseline)" % (name, rep + 1))
            scrolls.append(scroll_to_ome(a.scroll, src, out))
            shutil.rmtree(out, ignore_errors=True)
            log("  scroll_to_ome.py %.2f s (+sync %.2f): speed-up %.2fx" % (
                scrolls[-1]["wall"], scrolls[-1]["sync"], scrolls[-1]["total"] / mats[-1]["total"]))
        bound = reads[-1] + writes[-1]["total"]
        log("  mat %.2f s (+sync %.2f), read %.2f s, write %.2f s (+sync %.2f): "
            "materialize / bound = %.2f" % (
                mats[-1]["wall"], mats[-1]["sync"], reads[-1], writes[-1]["write"],
                writes[-1]["sync"], mats[-1]["total"] / bound))
    out_bytes = sum(s for _, s in files)
    return dict(name=name, src=src, decode=decode, slices=len(slices), src_bytes=src_bytes,
                out_files=len(files), out_bytes=out_bytes, mats=mats, reads=reads,
                writes=writes, nofsync=nofs, scrolls=scrolls)


def run_rss(a, name, src):
    slices = sorted(os.path.join(src, n) for n in os.listdir(src) if n.endswith(".tif"))
    src_bytes = sum(os.path.getsize(f) for f in slices)
    subprocess.run(["cat"] + slices, stdout=subprocess.DEVNULL, check=True)  # warm-up
    dest = os.path.join(a.work, "%s-dest" % name)
    shutil.rmtree(dest, ignore_errors=True)
    log("%s: materialize -o memory=1G" % name)
    m = materialize(a.exe, src, dest, "memory=1G")
    files = tree_files(dest)
    shutil.rmtree(dest, ignore_errors=True)
    return dict(name=name, src=src, slices=len(slices), src_bytes=src_bytes, mat=m,
                out_files=len(files), out_bytes=sum(s for _, s in files))


def med(xs):
    return statistics.median(xs)


def fmt_all(xs):
    return ", ".join("%.2f" % x for x in sorted(xs))


def report(a, R, B, head):
    L = head + [
        "| stack | materialize + sync (s) | read bound (s) | write bound + sync (s) | bound (s) "
        "| materialize / bound (≤ 1.2) | materialize user+sys (s) | peak RSS (MiB, ≤ 1152) "
        "| scroll_to_ome.py + sync (s) | speed-up (≥ 10 raw, ≥ 8 deflate) |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for r in R:
        mt = med([m["total"] for m in r["mats"]])
        rd = med(r["reads"])
        wr = med([w["total"] for w in r["writes"]])
        bound = rd + wr
        ratio = mt / bound
        cpu = med([m["user"] + m["sys"] for m in r["mats"]])
        rss = max(m["rss_kib"] for m in r["mats"]) / 1024
        rkind = "libtiff decode 2 thr" if r["decode"] else "cat"
        log("%s: materialize / bound = %.2f (medians: %.2f s / (%.2f + %.2f) s)" % (
            r["name"], ratio, mt, rd, wr))
        if r["scrolls"]:
            st = med([x["total"] for x in r["scrolls"]])
            target = 8 if r["decode"] else 10
            up = st / mt
            log("%s: scroll_to_ome.py / materialize = %.2f (medians %.2f s / %.2f s)" % (
                r["name"], up, st, mt))
            scol = "%.2f | **%.1fx %s**" % (st, up, "PASS" if up >= target else "MISS")
        else:
            scol = "- | -"
        L.append("| %s | %.2f | %.2f (%s) | %.2f | %.2f | **%.2f %s** | %.1f | %.0f %s | %s |" % (
            r["name"], mt, rd, rkind, wr, bound, ratio, "PASS" if ratio <= 1.2 else "MISS",
            cpu, rss, "PASS" if rss <= 1152 else "MISS", scol))
        notes.append(
            "- %s: %d slices, %.0f MiB source, %d output files / %.0f MiB. All runs: "
            "materialize wall %s s (sync after it %s s); read bound %s s; write %s s (sync %s s). "
            "Ratio without the syncs (materialize wall / (read + write)): %.2f. Info, "
            "`--no-fsync` + sync: %s s (median %.2f, ratio %.2f), user+sys %.1f s." % (
                r["name"], r["slices"], r["src_bytes"] / 2**20, r["out_files"],
                r["out_bytes"] / 2**20, fmt_all([m["wall"] for m in r["mats"]]),
                fmt_all([m["sync"] for m in r["mats"]]), fmt_all(r["reads"]),
                fmt_all([w["write"] for w in r["writes"]]),
                fmt_all([w["sync"] for w in r["writes"]]),
                med([m["wall"] for m in r["mats"]]) /
                (rd + med([w["write"] for w in r["writes"]])),
                fmt_all([m["total"] for m in r["nofsync"]]),
                med([m["total"] for m in r["nofsync"]]),
                med([m["total"] for m in r["nofsync"]]) / bound,
                med([m["user"] + m["sys"] for m in r["nofsync"]])) +
            (" scroll_to_ome.py (wall + sync): %s s." % fmt_all([x["total"] for x in r["scrolls"]])
             if r["scrolls"] else ""))
    # The same comparison without the disk: nobody waits for the sync (materialize --no-fsync,
    # scroll_to_ome.py and the write bound each without their sync; the page cache takes it all).
    L += ["", "Without the disk (page cache only: `--no-fsync` materialize, scroll_to_ome.py and the "
          "write bound each timed without their `sync`):", "",
          "| stack | materialize --no-fsync (s) | read bound (s) | write bound (s) | bound (s) "
          "| materialize / bound | user+sys (s) | scroll_to_ome.py (s) | speed-up |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in R:
        mt = med([m["wall"] for m in r["nofsync"]])
        rd = med(r["reads"])
        wr = med([w["write"] for w in r["writes"]])
        cpu = med([m["user"] + m["sys"] for m in r["nofsync"]])
        st = med([x["wall"] for x in r["scrolls"]]) if r["scrolls"] else None
        log("%s without the disk: materialize / bound = %.2f%s" % (
            r["name"], mt / (rd + wr), ", speed-up %.2fx" % (st / mt) if st else ""))
        L.append("| %s | %.2f | %.2f | %.2f | %.2f | **%.2f** | %.1f | %s | %s |" % (
            r["name"], mt, rd, wr, rd + wr, mt / (rd + wr), cpu, "%.2f" % st if st else "-",
            "**%.1fx**" % (st / mt) if st else "-"))
    L += [""] + notes
    if B:
        m = B["mat"]
        rss = m["rss_kib"] / 1024
        L += ["", "| large stack, -o memory=1G (1 run) | materialize wall (s) | + sync (s) "
              "| user+sys (s) | peak RSS (MiB, target < 1229 = 1.2 GiB) |", "|---|---|---|---|---|",
              "| %s: %d x 8192x8192 uint16, %.0f MiB source, %d files / %.0f MiB out | %.1f | %.1f "
              "| %.1f | **%.0f %s** |" % (
                  B["name"], B["slices"], B["src_bytes"] / 2**20, B["out_files"],
                  B["out_bytes"] / 2**20, m["wall"], m["sync"], m["user"] + m["sys"], rss,
                  "PASS" if rss < 1.2 * 1024 else "MISS")]
    return "\n".join(L) + "\n"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--results")
    p.add_argument("--json")
    p.add_argument("--command", default="")
    p.add_argument("--decode", action="append", default=[],
                   help="stack NAME whose read bound is libtiff's 2-thread decode")
    p.add_argument("--scroll", help="path of scroll_to_ome.py (baseline run per rep)")
    p.add_argument("--rss", help="NAME=DIR: large stack, one memory=1G run for peak RSS")
    p.add_argument("stacks", nargs="*", help="NAME=DIR")
    a = p.parse_args()
    a.exe = os.path.join(a.build, "cli", "omezarr-materialize")
    a.decoder = os.path.join(a.build, "bench", "oz_bench_tiff_decode")
    a.writer = os.path.join(a.build, "bench", "oz_bench_write_tree")
    os.makedirs(a.work, exist_ok=True)
    global WARM_DIR
    WARM_DIR = a.work
    load0 = " ".join(open("/proc/loadavg").read().split()[:3])
    R = []
    for s in a.stacks:
        name, _, d = s.partition("=")
        R.append(run_stack(a, name, d, name in a.decode))
    B = None
    if a.rss:
        name, _, d = a.rss.partition("=")
        B = run_rss(a, name, d)
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
    head = ["## materialize, %s, commit %s" % (
        datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), commit), "",
        "Machine: %s, nproc %d, %.1f GiB RAM, kernel %s. Command: `%s`. "
        "`omezarr-materialize SRC DEST --quiet` with defaults (chunk=128, levels=6, mean, no "
        "compression, memory=1G, fsync per unit) into a fresh DEST on the source's file system. "
        "Medians of %d runs, all in this run (ratios use the medians). Read bound: `cat` of the "
        "slices after one warm-up cat (uncompressed) or `oz_bench_tiff_decode --threads 2` "
        "(deflate); write bound: `oz_bench_write_tree --threads 2` (bench/write_tree.cc) writing "
        "files with the same names and sizes as the materialized tree (plain writes from one "
        "cache-hot buffer, as materialize writes each chunk just cut), then `sync`. Ratio = (materialize + sync) / "
        "(read bound + write bound). Baseline: `scroll_to_ome.py` (KhartesViewer/scroll2zarr, "
        "exported from its repository at run time) with chunk 128, 6 levels, mean, 2 threads, "
        "then `sync`; speed-up = its median / materialize's median. Peak RSS: GNU time max RSS. "
        "Every timed writer starts right after 4 GiB was written to and deleted from the page "
        "cache (the VM returns freed memory to its host within seconds; see bench/vmwarm.py). "
        "Load average before/after: "
        "%s / %s (shared machine)." % (
            cpu, os.cpu_count(), memtotal / (1 << 30), platform.release(), a.command, a.reps,
            load0, " ".join(open("/proc/loadavg").read().split()[:3])), ""]
    text = report(a, R, B, head)
    print(text)
    if a.results:
        with open(a.results, "a") as f:
            f.write("\n" + text)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(stacks=R, rss=B), f, indent=1)


if __name__ == "__main__":
    main()
