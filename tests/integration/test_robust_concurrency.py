#!/usr/bin/python3
"""Robustness, concurrency and memory (docs/ROBUSTNESS.md, items 3 and 8).

  - 16 readers of one cold chunk (held in flight by a slow source) cause the computations of one
    reader: counted with the stats xattr (user.omezarrfs.stats, outside the zarr tree);
  - a chunk and its 8 children read at once: each computed exactly once;
  - an 8-reader seeded random-read soak (whole chunks, byte ranges, stat, readdir, metadata)
    against the numpy reference, under small memory and cache budgets: 0 mismatches, and the
    daemon's peak RSS within -o memory= plus a fixed overhead. ROBUST_SOAK_SECONDS (default 30)
    x $OZ_SOAK sets its length.
"""

import os
import random
import threading
import time

import numpy as np

import oztest as oz
import robust_util as ru

S = oz.Suite("robust_concurrency", case_timeout=900 + 2 * int(float(os.environ.get("ROBUST_SOAK_SECONDS", "30")) * ru.soak_scale()))
SLOW = {"OMEZARRFS_FAULT": "source.read:delay=40"}
# Fixed part of the daemon's memory beyond -o memory=: code, libraries, thread stacks, allocator
# slack. Measured idle RSS is ~5 MiB; the bound is generous on purpose (a bound, not a timing).
OVERHEAD = 48 << 20

_STACK = {}


def stack():
    if "d" not in _STACK:
        d = oz.tmpdir("src")
        _STACK["d"] = d
        _STACK["vol"] = oz.make_stack(d, (48, 96, 112), np.uint16, seed=81, compression="zlib", rowsperstrip=16)
    return _STACK["d"], _STACK["vol"]


def _together(fns):
    """Runs fns in threads released at once; returns their results (or exceptions)."""
    barrier = threading.Barrier(len(fns))
    out = [None] * len(fns)

    def run(i):
        barrier.wait()
        try:
            out[i] = fns[i]()
        except Exception as e:  # noqa: BLE001
            out[i] = e
    ts = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return out


def _computed(d, opts, rels, readers_each, rows=()):
    """chunks_computed, source_bytes_read and singleflight_waits on a fresh mount after reading
    `rels`, each by `readers_each` readers at once, and listing `rows` at the same time."""
    levels = oz.reference_pyramid(stack()[1], opts["levels"])
    with ru.LoggedMount(d, opts, env=SLOW) as m:
        fns = [lambda rel=rel: ru.read_file(os.path.join(m.path, rel)) for rel in rels for _ in range(readers_each)]
        fns += [lambda row=row: sorted(os.listdir(os.path.join(m.path, row))) for row in rows]
        got = _together(fns)
        s = oz.stats(m.path)
    for rel, g in zip([r for r in rels for _ in range(readers_each)], got):
        lvl, *idx = (int(v) for v in rel.split("/"))
        oz.check(g == ru.padded_chunk(levels, lvl, tuple(idx), opts["chunk"]), "%s: wrong bytes or %r" % (rel, g))
    for row, g in zip(rows, got[len(got) - len(rows):]):
        oz.check(isinstance(g, list) and g, "listing %s: %r" % (row, g))
    return s["chunks_computed"], s["source_bytes_read"], s["singleflight_waits"]


@S.case
def sixteen_readers_of_one_cold_chunk_compute_once():
    d, _ = stack()
    opts = {"chunk": 16, "levels": 3}
    rows = []
    for rel in ("0/1/3/4", "1/0/1/2", "2/0/0/1"):
        one = _computed(d, opts, [rel], 1)
        many = _computed(d, opts, [rel], 16)
        rows.append("%s: 1 reader %d computed, 16 readers %d computed (%d joined in flight)" %
                    (rel, one[0], many[0], many[2]))
        oz.check(many[0] == one[0] and many[1] == one[1],
                 "%s: 16 readers computed %d chunks reading %d source bytes; one reader %d and %d" %
                 (rel, many[0], many[1], one[0], one[1]))
    for r in rows:
        print("  " + r)
    ru.figure("computations_per_chunk_16_readers", 1)


@S.case
def chunk_its_children_and_their_rows_at_once_compute_each_once():
    """The kernel already merges concurrent lookups of one name, so the daemon's single-flight is
    met by different names that need one computation: 1/0/1/1 claims its 8 level-0 children
    while it computes them, and listings of their rows claim the rows' chunks; readers of the
    children wait for whichever claimed them instead of computing them again."""
    d, vol = stack()
    opts = {"chunk": 16, "levels": 3}
    rels = ["1/0/1/1"] + ["0/%d/%d/%d" % (z, y, x) for z in (0, 1) for y in (2, 3) for x in (2, 3)]
    rows = ["0/%d/%d" % (z, y) for z in (0, 1) for y in (2, 3)]
    computed, _, waits = _computed(d, opts, rels, 2, rows)
    row_chunks = 4 * -(-vol.shape[2] // 16)
    oz.check(computed <= 1 + row_chunks, "%d chunks computed; at most %d exist below these names" %
             (computed, 1 + row_chunks))
    base, _, _ = _computed(d, opts, ["1/0/1/1"], 1, rows)
    oz.check(computed == base, "with 16 extra readers %d chunks computed, without %d" % (computed, base))
    ru.figure("chunk_children_rows_computed", "%d (same as one reader of each)" % computed)
    ru.figure("chunk_children_rows_singleflight_waits", waits)


def _soak(seconds, readers, opts, label):
    d, vol = stack()
    levels = oz.reference_pyramid(oz.reference_level0(vol), opts["levels"], opts.get("algorithm", "mean"))
    chunk = opts["chunk"]
    paths = ru.chunk_paths(levels, chunk)
    rows = sorted({rel.rsplit("/", 1)[0] for _, _, rel in paths})
    want = {rel: ru.padded_chunk(levels, lvl, idx, chunk) for lvl, idx, rel in paths}
    counts = {"ops": 0, "bytes": 0}
    problems = []
    lock = threading.Lock()
    with ru.LoggedMount(d, opts) as m:
        deadline = time.monotonic() + seconds
        rss = []

        def reader(seed):
            r = random.Random(seed)
            n = nbytes = 0
            while time.monotonic() < deadline:
                rel = r.choice(list(want))
                w = want[rel]
                p = os.path.join(m.path, rel)
                op = r.random()
                try:
                    if op < 0.45:
                        got = ru.read_file(p)
                    elif op < 0.8:
                        off = r.randrange(len(w))
                        ln = r.randrange(1, len(w) - off + 1)
                        with open(p, "rb") as f:
                            got = os.pread(f.fileno(), ln, off)
                        w = w[off:off + ln]
                    elif op < 0.9:
                        got = os.stat(p).st_size
                        w = len(w)
                    elif op < 0.97:
                        row = r.choice(rows)
                        got = sorted(os.listdir(os.path.join(m.path, row)), key=int)
                        w = [x for x in range(-(-levels[int(row[0])].shape[2] // chunk))
                             if any(want["%s/%d" % (row, x)])]
                        got = [int(x) for x in got]
                    else:
                        lvl = r.randrange(opts["levels"])
                        got = oz.read_json(os.path.join(m.path, str(lvl), ".zarray"))["shape"]
                        w = list(levels[lvl].shape)
                except FileNotFoundError:
                    got = None
                    if isinstance(w, bytes) and not any(w):
                        got = w  # absent: an empty chunk
                except OSError as e:
                    got = e
                n += 1
                nbytes += len(got) if isinstance(got, bytes) else 0
                if got != w:
                    with lock:
                        problems.append("%s op %.2f: %s" % (rel, op, got if isinstance(got, OSError) else "wrong"))
            with lock:
                counts["ops"] += n
                counts["bytes"] += nbytes

        def sampler():
            while time.monotonic() < deadline:
                v = m.status("VmRSS")
                if v:
                    rss.append(v)
                time.sleep(0.05)
        ts = [threading.Thread(target=reader, args=(1000 + j,)) for j in range(readers)]
        ts.append(threading.Thread(target=sampler))
        t0 = time.monotonic()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        elapsed = time.monotonic() - t0
        peak = m.status("VmHWM")
        s = oz.stats(m.path)
    mem = ru.parse_size(opts["memory"])
    ru.figure("%s_readers" % label, readers)
    ru.figure("%s_minutes" % label, "%.2f" % (elapsed / 60))
    ru.figure("%s_reader_minutes" % label, "%.1f" % (readers * elapsed / 60))
    ru.figure("%s_operations" % label, counts["ops"])
    ru.figure("%s_mismatches" % label, len(problems))
    ru.figure("%s_chunks_computed" % label, s["chunks_computed"])
    ru.figure("%s_cache_evictions" % label, s["cache_evictions"])
    ru.figure("%s_peak_rss_mib" % label, "%.1f" % (peak / 2 ** 20))
    ru.figure("%s_memory_option_mib" % label, mem >> 20)
    oz.check(not problems, "%d mismatches, e.g. %s" % (len(problems), problems[:5]))
    oz.check(s["chunks_computed"] > 0 and s["cache_evictions"] > 0, "the soak did not churn: %s" % s)
    oz.check(peak <= mem + OVERHEAD, "peak RSS %.1f MiB > memory %d MiB + %d MiB" %
             (peak / 2 ** 20, mem >> 20, OVERHEAD >> 20))


@S.case
def eight_reader_random_soak():
    seconds = float(os.environ.get("ROBUST_SOAK_SECONDS", "30")) * ru.soak_scale()
    _soak(seconds, 8, {"chunk": 16, "levels": 4, "memory": "16M", "cache_size": "1M", "threads": 4}, "soak")


if __name__ == "__main__":
    S.main()
