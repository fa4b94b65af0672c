#!/usr/bin/python3
"""Every pyramid level of an odd-shaped stack equals the numpy reference, for mean, nearest and
max; metadata (.zgroup, .zattrs multiscales, .zarray) as in the contract."""

import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oztest as oz  # noqa: E402
import numpy as np  # noqa: E402
import zarr  # noqa: E402

S = oz.Suite(__file__)
SHAPE = (67, 130, 257)
LEVELS = 4
CHUNK = 32


@functools.lru_cache(None)
def stack16():
    d = oz.tmpdir("src16")
    return d, oz.make_stack(d, SHAPE, np.uint16, seed=0, rowsperstrip=16)


@functools.lru_cache(None)
def stack8():
    d = oz.tmpdir("src8")
    return d, oz.make_stack(d, (33, 70, 101), np.uint8, seed=4, compression="zlib")


def _algo_case(algo, src, chunk=CHUNK, levels=LEVELS):
    def run():
        d, vol = src()
        want = oz.reference_pyramid(vol, levels, algo)
        with oz.Mount(d, {"chunk": chunk, "levels": levels, "algorithm": algo}) as m:
            ck = oz.check_tree(m.path, want, algo, chunk, ck=oz.Checks())

            def group_view():
                g = zarr.open_group(zarr.storage.DirectoryStore(m.path), mode="r")
                names = sorted(g.array_keys())
                oz.check(names == [str(i) for i in range(levels)], "arrays %s" % names)
                oz.check(g.attrs["multiscales"][0]["type"] == algo, "attrs via zarr")
            ck.run("zarr group", group_view)
            ck.run("level 1 via NestedDirectoryStore",
                   lambda: oz.assert_array_equal(oz.read_level_nested(m.path, 1, levels),
                                                 want[1], "data"))
            ck.done()
    return run


for _a in ("mean", "nearest", "max"):
    S.add("uint16_" + _a, _algo_case(_a, stack16))
S.add("uint8_mean", _algo_case("mean", stack8))
S.add("uint8_max", _algo_case("max", stack8))
S.add("uint16_mean_chunk24_levels3", _algo_case("mean", stack16, chunk=24, levels=3))


@S.case
def default_algorithm_is_mean():
    d, vol = stack8()
    want = oz.reference_pyramid(vol, 3, "mean")
    with oz.Mount(d, {"chunk": 32, "levels": 3}) as m:
        oz.check_tree(m.path, want, "mean", 32, raw=False)


@S.case
def concurrent_readers_fresh_mount():
    """8 threads read every chunk file of every level in different orders on a fresh mount:
    same bytes as the reference; each chunk computed at most once (disk-cached, single-flight)."""
    import random
    import threading
    d, vol = stack16()
    want = oz.reference_pyramid(vol, LEVELS, "mean")
    expected = {}
    for lvl, a in enumerate(want):
        for ci in np.ndindex(*oz.chunk_grid(a.shape, [CHUNK] * 3)):
            block = np.zeros((CHUNK,) * 3, a.dtype)
            src = a[tuple(slice(i * CHUNK, (i + 1) * CHUNK) for i in ci)]
            block[tuple(slice(0, s) for s in src.shape)] = src
            expected["%d/%s" % (lvl, "/".join(map(str, ci)))] = block.tobytes() \
                if block.any() else None
    with oz.Mount(d, {"chunk": CHUNK, "levels": LEVELS}) as m:
        errors = []

        def worker(seed):
            keys = sorted(expected)
            random.Random(seed).shuffle(keys)
            if seed % 2:
                keys.sort(key=lambda k: -int(k[0]))  # coarse levels first
            for k in keys:
                try:
                    with open(os.path.join(m.path, k), "rb") as f:
                        got = f.read()
                except FileNotFoundError:
                    got = None
                except OSError as e:
                    errors.append("%s: %s" % (k, e))
                    continue
                if got != expected[k]:
                    errors.append("%s: %s" % (k, "absent" if got is None else
                                              "%d bytes, content differs" % len(got)
                                              if expected[k] else "present but expected absent"))
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        s = oz.stats(m.path)
    oz.check(not errors, "%d wrong reads, e.g. %s" % (len(errors), "; ".join(
        sorted(set(errors))[:4])))
    oz.check(s.get("chunks_computed", 0) <= len(expected),
             "chunks_computed %s > %d chunks in the tree (recomputation)" % (
                 s.get("chunks_computed"), len(expected)))


if __name__ == "__main__":
    S.main()
