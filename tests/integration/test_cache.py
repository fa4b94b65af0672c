#!/usr/bin/python3
"""Disk cache: a remount with the same source + options serves every chunk from the cache (stats:
no chunk computed, no source byte read); different options or a different source use a different
cache key (recomputed, correct data)."""

import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oztest as oz  # noqa: E402
import numpy as np  # noqa: E402

S = oz.Suite(__file__)
SHAPE = (24, 80, 100)
CHUNK = 16
LEVELS = 3
OPTS = {"chunk": CHUNK, "levels": LEVELS}
NAMES = ("chunks_computed", "cache_hits", "cache_misses", "source_bytes_read",
         "source_files_opened")


@functools.lru_cache(None)
def stack():
    d = oz.tmpdir("src")
    return d, oz.make_stack(d, SHAPE, np.uint16, seed=41, compression="zlib")


def full_read(mnt, levels):
    """Everything a client can touch: readdir + stat + read of every listed file, then every
    level through zarr (which also opens the absent, empty chunks)."""
    files, _ = oz.walk_files(mnt)
    for rel in files:
        p = os.path.join(mnt, rel)
        size = os.stat(p).st_size
        with open(p, "rb") as f:
            oz.check(len(f.read()) == size, "%s: size mismatch" % rel)
    return [oz.read_level(mnt, lvl, levels) for lvl in range(levels)]


def _stats_text(s):
    return " ".join("%s=%s" % (k, s.get(k)) for k in NAMES)


def _compare(ck, got, want, label):
    for lvl, (g, w) in enumerate(zip(got, want)):
        ck.run("%s level %d" % (label, lvl), oz.assert_array_equal, g, w, "data")


@S.case
def stats_xattr_has_counters_and_is_lazy():
    d, _ = stack()
    with oz.Mount(d, OPTS) as m:
        s = oz.stats(m.path)
        missing = [n for n in NAMES if not isinstance(s.get(n), int)]
        oz.check(not missing, "stats lacks integer counters %s; got %r" % (missing, s))
        oz.check(s["chunks_computed"] == 0, "chunks computed at mount, before any read: %s"
                 % _stats_text(s))


@S.case
def remount_serves_from_cache():
    d, vol = stack()
    want = oz.reference_pyramid(vol, LEVELS, "mean")
    cache = oz.tmpdir("cache")
    ck = oz.Checks()
    with oz.Mount(d, OPTS, cache=cache) as m:
        got = full_read(m.path, LEVELS)
        s1 = oz.stats(m.path)
    _compare(ck, got, want, "first mount")
    ck.expect(s1.get("chunks_computed", 0) > 0 and s1.get("source_bytes_read", 0) > 0,
              "first mount did not compute/read: %s" % _stats_text(s1))
    n_cache = sum(len(f) for _, _, f in os.walk(cache))
    ck.expect(n_cache > 0, "cache dir %s is empty after the first mount" % cache)
    with oz.Mount(d, OPTS, cache=cache) as m:
        s0 = oz.stats(m.path)
        got = full_read(m.path, LEVELS)
        got_again = full_read(m.path, LEVELS)  # and the kernel/page cache path once more
        s2 = oz.stats(m.path)
    _compare(ck, got, want, "remount")
    _compare(ck, got_again, want, "remount second read")
    delta = {k: s2.get(k, 0) - s0.get(k, 0) for k in NAMES}
    ck.expect(s2.get("chunks_computed") == 0,
              "remount: chunks_computed = %s (expected 0); %s" % (
                  s2.get("chunks_computed"), _stats_text(s2)))
    ck.expect(delta["source_bytes_read"] == 0,
              "remount: full re-read read %d source bytes (expected 0)" %
              delta["source_bytes_read"])
    ck.expect(s2.get("source_bytes_read") == 0,
              "remount: source_bytes_read = %s after mount + full re-read (contract: 0; "
              "value right after mount was %s)" % (s2.get("source_bytes_read"),
                                                   s0.get("source_bytes_read")))
    ck.expect(s2.get("cache_hits", 0) > 0, "remount: no cache hits; %s" % _stats_text(s2))
    ck.done()


def _rekey_case(new_opts, algo="mean", window=None, bytes1=False, chunk=CHUNK, levels=LEVELS):
    """Fill the cache with the default options, then mount with `new_opts` on the same cache:
    must recompute and serve data for the new options."""
    def run():
        d, vol = stack()
        cache = oz.tmpdir("cache")
        with oz.Mount(d, OPTS, cache=cache) as m:
            full_read(m.path, LEVELS)
        want = oz.reference_pyramid(oz.reference_level0(vol, window, (0, 0, 0), bytes1),
                                    levels, algo)
        opts = dict(OPTS)
        opts.update(new_opts)
        ck = oz.Checks()
        with oz.Mount(d, opts, cache=cache) as m:
            got = full_read(m.path, levels)
            s = oz.stats(m.path)
        _compare(ck, got, want, "after option change")
        ck.expect(s.get("chunks_computed", 0) > 0,
                  "nothing recomputed after option change %s: %s" % (new_opts, _stats_text(s)))
        ck.done()
    return run


S.add("algorithm_change_recomputes", _rekey_case({"algorithm": "max"}, algo="max"))
S.add("window_change_recomputes", _rekey_case({"window": "10:90/5:/:20"},
                                              window=((None, 20), (5, None), (10, 90))))
S.add("bytes_change_recomputes", _rekey_case({"bytes": 1}, bytes1=True))
S.add("chunk_change_recomputes", _rekey_case({"chunk": 32}, chunk=32))
S.add("compression_change_recomputes", _rekey_case({"compression": "blosc"}))


@S.case
def other_source_same_cache():
    d, vol = stack()
    cache = oz.tmpdir("cache")
    with oz.Mount(d, OPTS, cache=cache) as m:
        full_read(m.path, LEVELS)
    d2 = oz.tmpdir("src2")
    vol2 = oz.make_stack(d2, SHAPE, np.uint16, seed=42, compression="zlib")
    want = oz.reference_pyramid(vol2, LEVELS, "mean")
    ck = oz.Checks()
    with oz.Mount(d2, OPTS, cache=cache) as m:
        _compare(ck, full_read(m.path, LEVELS), want, "second source")
    ck.done()


@S.case
def modified_slice_not_served_stale():
    """Beyond the letter of the contract, but a correctness issue for users: a slice rewritten
    with other data (same name, new size/mtime) must not be served from the old cache."""
    src = oz.tmpdir("src-mod")
    vol = oz.make_stack(src, SHAPE, np.uint16, seed=43)
    cache = oz.tmpdir("cache")
    with oz.Mount(src, OPTS, cache=cache) as m:
        full_read(m.path, LEVELS)
    vol[5] = oz.make_volume(SHAPE, np.uint16, seed=44)[5]
    oz.write_slice(os.path.join(src, "5.tif"), vol[5], compression="zlib")
    st = os.stat(os.path.join(src, "5.tif"))
    os.utime(os.path.join(src, "5.tif"), ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    want = oz.reference_pyramid(vol, LEVELS, "mean")
    ck = oz.Checks()
    with oz.Mount(src, OPTS, cache=cache) as m:
        _compare(ck, full_read(m.path, LEVELS), want, "after rewriting 5.tif")
    ck.done()


@S.case
def corrupted_cache_entries_not_served():
    """Every file in the cache dir damaged between mounts (bytes flipped, truncated, emptied):
    the remount must still serve correct data (recompute what it cannot trust)."""
    d, vol = stack()
    want = oz.reference_pyramid(vol, LEVELS, "mean")
    cache = oz.tmpdir("cache")
    with oz.Mount(d, OPTS, cache=cache) as m:
        full_read(m.path, LEVELS)
    damaged = 0
    for root, _, files in os.walk(cache):
        for i, n in enumerate(sorted(files)):
            p = os.path.join(root, n)
            size = os.path.getsize(p)
            if size == 0:
                continue
            with open(p, "r+b") as f:
                if i % 3 == 0:
                    f.seek(size // 2)
                    b = f.read(1)
                    f.seek(size // 2)
                    f.write(bytes([b[0] ^ 0x5A]))
                elif i % 3 == 1:
                    f.truncate(size // 2)
                else:
                    f.truncate(0)
            damaged += 1
    oz.check(damaged > 0, "no cache files to damage in %s" % cache)
    ck = oz.Checks()
    with oz.Mount(d, OPTS, cache=cache) as m:
        _compare(ck, full_read(m.path, LEVELS), want, "after damaging %d cache files" % damaged)
        _compare(ck, full_read(m.path, LEVELS), want, "second read")
    ck.done()


@S.case
def tiny_cache_size_still_correct():
    """cache_size far below the tree size: evictions, but every read correct, also after a
    remount."""
    d, vol = stack()
    want = oz.reference_pyramid(vol, LEVELS, "max")
    cache = oz.tmpdir("cache")
    opts = dict(OPTS, algorithm="max", cache_size="64K")
    ck = oz.Checks()
    for rnd in range(2):
        with oz.Mount(d, opts, cache=cache) as m:
            _compare(ck, full_read(m.path, LEVELS), want, "round %d" % rnd)
            _compare(ck, full_read(m.path, LEVELS), want, "round %d again" % rnd)
    ck.done()


@S.case
def second_live_mount_on_same_cache():
    """A second mount on a cache dir that a live mount uses: either refused before mounting
    with a message naming the cache dir (the first mount unaffected), or both serve correct
    data under concurrent reads."""
    import threading
    d, vol = stack()
    want = oz.reference_pyramid(vol, LEVELS, "mean")
    cache = oz.tmpdir("cache")
    ck = oz.Checks()
    with oz.Mount(d, OPTS, cache=cache) as a:
        rc, err, mounted = oz.try_mount(d, OPTS, cache=cache)
        if rc != 0:
            ck.expect(not mounted, "refused second mount (exit %s) but it was mounted" % rc)
            ck.expect(os.path.basename(cache) in err, "refusal does not name the cache dir: %r"
                      % err.strip()[:300])
            _compare(ck, full_read(a.path, LEVELS), want, "first mount after the refusal")
            ck.done()
            return
        ck.expect(mounted, "second mount exited 0 but was not mounted")
        with oz.Mount(d, OPTS, cache=cache) as b:
            results, errors = {}, []

            def reader(key, mnt):
                try:
                    results[key] = full_read(mnt, LEVELS)
                except Exception as e:  # noqa: BLE001
                    errors.append("%s: %s: %s" % (key, type(e).__name__, e))
            ts = [threading.Thread(target=reader, args=(k, mp)) for k, mp in
                  (("a1", a.path), ("b1", b.path), ("a2", a.path), ("b2", b.path))]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
    ck.expect(not errors, "; ".join(errors))
    for k in sorted(results):
        _compare(ck, results[k], want, k)
    ck.done()


@S.case
def cache_dir_created_if_missing():
    d, vol = stack()
    cache = os.path.join(oz.tmpdir("cache"), "not", "yet")
    want = oz.reference_pyramid(vol, LEVELS, "mean")
    with oz.Mount(d, OPTS, cache=cache) as m:
        oz.assert_array_equal(oz.read_level(m.path, 2, LEVELS), want[2], "level 2")
    oz.check(os.path.isdir(cache), "cache dir not created")


if __name__ == "__main__":
    S.main()
