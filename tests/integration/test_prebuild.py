#!/usr/bin/python3
"""-o prebuild=K: the background pass over levels K..top on real mounts.

- progress: prebuild_chunks_done reaches prebuild_chunks_total (= the chunk count of levels K..top,
  computed here from the shapes); the levels read through zarr equal a numpy reference pyramid;
  after the pass, reading levels K..top computes nothing (cache hits only); a cold remount serves
  them without reading the source; `omezarrfs status` prints the progress.
- preemption: with the builder slowed (fault delay per unit), a foreground read of a chunk the
  pass does not build is served while the pass is still far from done, and the builder paused for
  it (prebuild_yields).
- resume: unmounted mid-way, a remount on the same cache starts with the cached chunks counted as
  done (prebuild_chunks_reused) and computes only the others.
- cancel: an unmount during the pass returns and the daemon exits (bounded wait).
- bad input: K outside the levels, cache_size=0, a non-number, materialize -o prebuild=."""

import functools
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oztest as oz  # noqa: E402
import robust_util as ru  # noqa: E402
import numpy as np  # noqa: E402

S = oz.Suite(__file__)
SHAPE = (64, 96, 128)
CHUNK = 16
LEVELS = 4
SLOW = {"OMEZARRFS_FAULT": "prebuild.unit:delay=60"}


@functools.lru_cache(None)
def stack():
    d = oz.tmpdir("src")
    return d, oz.make_stack(d, SHAPE, np.uint16, seed=17, rowsperstrip=16)


def chunks_of_levels(shape, k, levels, chunk):
    n, s = 0, list(shape)
    for lvl in range(levels):
        if lvl >= k:
            n += int(np.prod([-(-x // chunk) for x in s]))
        s = [-(-x // 2) for x in s]
    return n


def opts(k, **extra):
    o = {"chunk": CHUNK, "levels": LEVELS, "prebuild": k}
    o.update(extra)
    return o


def wait_done(m, seconds=60):
    ru.wait_for(lambda: oz.stats(m.path)["prebuild_chunks_done"] >= oz.stats(m.path)["prebuild_chunks_total"],
                seconds, "prebuild_chunks_done to reach prebuild_chunks_total")
    return oz.stats(m.path)


def status(path):
    return subprocess.run([oz.binary(), "status", path], capture_output=True, text=True, timeout=30)


@S.case
def progress_reaches_total_and_levels_come_from_the_cache():
    d, vol = stack()
    want = oz.reference_pyramid(vol, LEVELS)
    total = chunks_of_levels(SHAPE, 1, LEVELS, CHUNK)
    cache = oz.tmpdir("cache")
    with ru.LoggedMount(d, opts(1), cache=cache) as m:
        s = wait_done(m)
        oz.check(s["prebuild_chunks_total"] == total, "total %d, expected %d" % (s["prebuild_chunks_total"], total))
        oz.check(s["prebuild_chunks_done"] == total and s["prebuild_failed"] == 0, "stats: %r" % s)
        oz.check(s["chunks_computed"] == total, "computed %d chunks, expected %d" % (s["chunks_computed"], total))
        st = status(m.path)
        oz.check(st.returncode == 0 and "%d / %d chunks (100.0 %%), complete" % (total, total) in st.stdout,
                 "status: %r %r" % (st.stdout, st.stderr))
        before = oz.stats(m.path)
        for lvl in range(1, LEVELS):
            oz.assert_array_equal(oz.read_level(m.path, lvl, LEVELS), want[lvl], "level %d" % lvl)
        after = oz.stats(m.path)
        oz.check(after["chunks_computed"] == before["chunks_computed"],
                 "reading levels 1..3 after the pass computed %d chunks"
                 % (after["chunks_computed"] - before["chunks_computed"]))
        oz.check(after["source_bytes_read"] == before["source_bytes_read"], "the source was read again")
        oz.check(after["cache_hits"] > before["cache_hits"], "no cache hits: %r" % after)
        oz.check(m.log_lines(containing="are in the cache"), "no completion line in the log: %s" % m.log()[-5:])
    # A cold mount without prebuild= serves the coarse levels from that cache alone.
    with oz.Mount(d, {"chunk": CHUNK, "levels": LEVELS}, cache=cache) as m:
        oz.assert_array_equal(oz.read_level(m.path, LEVELS - 1, LEVELS), want[LEVELS - 1], "top level, cold")
        oz.assert_array_equal(oz.read_level(m.path, 2, LEVELS), want[2], "level 2, cold")
        s = oz.stats(m.path)
        oz.check(s["chunks_computed"] == 0 and s["source_bytes_read"] == 0, "cold mount computed: %r" % s)
        st = status(m.path)
        oz.check(st.returncode == 0 and "prebuild: off" in st.stdout, "status: %r" % st.stdout)


@S.case
def foreground_read_goes_first():
    d, vol = stack()
    want = oz.reference_pyramid(vol, LEVELS)
    # The foreground read (64 strips) lasts several builder units (16 strips each): the builder
    # checks for foreground requests between units, so it sees this one.
    env = {"OMEZARRFS_FAULT": "prebuild.unit:delay=20;source.read:delay=30"}
    with ru.LoggedMount(d, opts(2), env=env) as m:
        ru.wait_for(lambda: oz.stats(m.path)["prebuild_chunks_total"] > 0, 30, "the pass to start")
        # Level 1 is not built by prebuild=2: this read is computed now, from the far end of the
        # volume that the pass (z order) reaches last.
        z, y, x = 1, 2, 3
        with open(os.path.join(m.path, "1", str(z), str(y), str(x)), "rb") as f:
            got = f.read()
        s = oz.stats(m.path)
        oz.check(s["prebuild_chunks_done"] < s["prebuild_chunks_total"],
                 "the pass finished before the foreground read was served: %r" % s)
        ref = want[1][z * CHUNK:(z + 1) * CHUNK, y * CHUNK:(y + 1) * CHUNK, x * CHUNK:(x + 1) * CHUNK]
        oz.check(got == np.ascontiguousarray(ref).astype("<u2").tobytes(), "foreground chunk bytes differ")
        oz.check(s["prebuild_yields"] >= 1, "the builder never paused for the foreground read: %r" % s)
        t0 = time.monotonic()
    # cancel: the unmount above happened with the pass running; the daemon is gone.
    oz.check(not m.daemon_lingered, "the daemon did not exit after the unmount (killed)")
    oz.check(time.monotonic() - t0 < 15, "unmount took more than 15 s")
    oz.check(m.log_lines(containing="prebuild=2: stopped at"), "no stop line in the log: %s" % m.log()[-5:])


@S.case
def remount_resumes_without_recomputing():
    d, vol = stack()
    want = oz.reference_pyramid(vol, LEVELS)
    total = chunks_of_levels(SHAPE, 1, LEVELS, CHUNK)
    cache = oz.tmpdir("cache")
    with ru.LoggedMount(d, opts(1), cache=cache, env=SLOW) as m:
        ru.wait_for(lambda: oz.stats(m.path)["prebuild_chunks_done"] >= 6, 60, "6 chunks done")
        first = oz.stats(m.path)["prebuild_chunks_done"]
        oz.check(first < total, "finished before the unmount: %d" % first)
    oz.check(not m.daemon_lingered, "the daemon did not exit after the unmount (killed)")
    with ru.LoggedMount(d, opts(1), cache=cache) as m:
        s = wait_done(m)
        oz.check(s["prebuild_chunks_reused"] >= first,
                 "remount found %d cached, the first mount had done %d" % (s["prebuild_chunks_reused"], first))
        oz.check(s["prebuild_chunks_reused"] < total, "nothing was left to compute: %r" % s)
        oz.check(s["chunks_computed"] == total - s["prebuild_chunks_reused"],
                 "computed %d, expected %d (total %d - cached %d)" % (
                     s["chunks_computed"], total - s["prebuild_chunks_reused"], total, s["prebuild_chunks_reused"]))
        for lvl in range(1, LEVELS):
            oz.assert_array_equal(oz.read_level(m.path, lvl, LEVELS), want[lvl], "level %d after resume" % lvl)


@S.case
def bad_prebuild_values_are_refused():
    d, _ = stack()
    rc, err, mounted = oz.try_mount(d, opts(LEVELS))
    oz.check(rc != 0 and not mounted and "prebuild=%d" % LEVELS in err and "prebuild=0..%d" % (LEVELS - 1) in err,
             "prebuild=%d: rc %r, %s" % (LEVELS, rc, err))
    rc, err, mounted = oz.try_mount(d, opts(1, cache_size=0))
    oz.check(rc != 0 and not mounted and "cache_size=0" in err, "cache_size=0: rc %r, %s" % (rc, err))
    rc, err, mounted = oz.try_mount(d, opts("x"))
    oz.check(rc != 0 and not mounted and "prebuild" in err, "prebuild=x: rc %r, %s" % (rc, err))
    r = subprocess.run([oz.materialize_tool(), d, oz.tmpdir("dest"), "-o", "prebuild=1"], capture_output=True,
                       text=True, timeout=60)
    oz.check(r.returncode == 2 and "--levels 1-" in r.stderr, "materialize -o prebuild: %r" % r.stderr)
    st = status(oz.tmpdir("plain"))
    oz.check(st.returncode == 1 and "is not an omezarrfs mount" in st.stderr, "status of a plain dir: %r" % st.stderr)


if __name__ == "__main__":
    S.main()
