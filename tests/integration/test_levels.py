#!/usr/bin/python3
"""Every pyramid level of an odd-shaped stack equals the numpy reference, for mean, nearest and
max; metadata (.zgroup, .zattrs multiscales, .zarray) as in the contract. With nearest, a coarse
chunk reads only what it samples (the source_bytes_read counter), for each TIFF layout."""

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
def defaults_chunk128_levels6():
    """No chunk/levels options: chunk 128, 6 levels (shapes shrink to a few voxels)."""
    d, vol = stack8()
    want = oz.reference_pyramid(vol, 6, "mean")
    with oz.Mount(d, {}) as m:
        oz.check_tree(m.path, want, "mean", 128)


@S.case
def more_levels_than_halvings():
    """levels=9 on 33x70x101: the last levels are 1x1x1 (ceil(1/2) = 1)."""
    d, vol = stack8()
    want = oz.reference_pyramid(vol, 9, "max")
    oz.check(want[-1].shape == (1, 1, 1), "reference shapes %s" % [w.shape for w in want])
    with oz.Mount(d, {"chunk": 16, "levels": 9, "algorithm": "max"}) as m:
        oz.check_tree(m.path, want, "max", 16)


def _tiny_case(chunk, shape, levels, algo):
    def run():
        d = oz.tmpdir("tiny")
        vol = oz.make_stack(d, shape, np.uint16, seed=chunk)
        want = oz.reference_pyramid(vol, levels, algo)
        with oz.Mount(d, {"chunk": chunk, "levels": levels, "algorithm": algo}) as m:
            oz.check_tree(m.path, want, algo, chunk)
    return run


S.add("chunk1_tiny", _tiny_case(1, (3, 5, 7), 3, "mean"))
S.add("chunk7_odd", _tiny_case(7, (11, 23, 30), 3, "mean"))
S.add("chunk_larger_than_volume", _tiny_case(64, (5, 9, 17), 3, "max"))


@S.case
def big_directory_listing():
    """2500 chunk files in one directory (readdir continues over several getdents calls)."""
    d = oz.tmpdir("wide")
    vol = oz.make_stack(d, (2, 2, 2500), np.uint8,
                        volume=oz.make_volume((2, 2, 2500), np.uint8, seed=3, mask=False) | 1)
    want = oz.reference_pyramid(vol, 2, "mean")
    with oz.Mount(d, {"chunk": 1, "levels": 2, "empty": "keep"}) as m:
        for z, y in ((0, 0), (1, 1)):
            names = os.listdir(os.path.join(m.path, "0", str(z), str(y)))
            oz.check(sorted(names, key=int) == [str(i) for i in range(2500)],
                     "0/%d/%d: %d names listed, expected 0..2499" % (z, y, len(names)))
        oz.assert_array_equal(oz.read_level(m.path, 0, 2), want[0], "level 0")
        oz.assert_array_equal(oz.read_level(m.path, 1, 2), want[1], "level 1")


NEAR_SHAPE = (128, 256, 256)  # 16 MiB of uint16
NEAR_OPTS = {"chunk": 16, "levels": 5, "algorithm": "nearest"}  # level 4 = one chunk, step 16


def _nearest_reads_case(layout, kw, limit):
    """Level 4 chunk 0 covers the whole stack and keeps every 16th slice, row and column."""
    def run():
        d = oz.tmpdir("near-" + layout)
        vol = oz.make_stack(d, NEAR_SHAPE, np.uint16, seed=8, **kw)
        total = vol.nbytes
        want = oz.reference_pyramid(vol, 5, "nearest")
        with oz.Mount(d, NEAR_OPTS) as m:
            for rel in ("4/0/0/0", "2/1/3/2", "1/3/2/7", "3/0/1/1"):
                lvl, *idx = (int(v) for v in rel.split("/"))
                block = np.zeros((16,) * 3, np.uint16)
                src = want[lvl][tuple(slice(i * 16, (i + 1) * 16) for i in idx)]
                block[tuple(slice(0, s) for s in src.shape)] = src
                oz.check(block.any(), "test bug: %s is an empty chunk" % rel)
                before = oz.stats(m.path)["source_bytes_read"]
                with open(os.path.join(m.path, rel), "rb") as f:
                    got = f.read()
                read = oz.stats(m.path)["source_bytes_read"] - before
                oz.check(got == block.astype("<u2").tobytes(), "%s: bytes differ from vol[::2**L] (%s)" % (rel, layout))
                # the chunk's level-0 box is 16 * 2**L voxels on a side: a strided read stays far below it
                box = min(16 * 2 ** lvl, NEAR_SHAPE[0]) * min(16 * 2 ** lvl, NEAR_SHAPE[1]) * \
                    min(16 * 2 ** lvl, NEAR_SHAPE[2]) * 2
                print("  %s %s: source_bytes_read %d = %.3f%% of the stack, %.2f%% of the chunk's box"
                      % (layout, rel, read, 100.0 * read / total, 100.0 * read / box), flush=True)
                if rel == "4/0/0/0":
                    oz.check(read <= limit * total, "%s: read %d bytes, %.2f%% of the %d-byte stack (limit %.1f%%)"
                             % (rel, read, 100.0 * read / total, total, 100 * limit))
    return run


S.add("nearest_coarse_chunk_reads_what_it_samples_uncompressed",
      _nearest_reads_case("uncompressed", {}, 0.01))  # kept rows only: 1/16 x 1/16
S.add("nearest_coarse_chunk_reads_what_it_samples_deflate_strips",
      _nearest_reads_case("deflate-rps4", {"compression": "zlib", "rowsperstrip": 4}, 0.03))  # 1/16 x 1/4
S.add("nearest_coarse_chunk_reads_what_it_samples_tiles",
      _nearest_reads_case("tiles-32", {"tile": (32, 32)}, 0.07))  # 1/16 of the slices, every tile


@S.case
def mean_coarse_chunk_reads_its_whole_box():
    d = oz.tmpdir("mean-box")
    vol = oz.make_stack(d, (64, 64, 64), np.uint16, seed=9)
    with oz.Mount(d, {"chunk": 16, "levels": 3}) as m:
        with open(os.path.join(m.path, "2/0/0/0"), "rb") as f:
            f.read()
        read = oz.stats(m.path)["source_bytes_read"]
    oz.check(read >= vol.nbytes, "mean read %d bytes of a %d-byte box" % (read, vol.nbytes))


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
