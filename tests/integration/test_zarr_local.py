#!/usr/bin/python3
"""Local zarr v2 sources, written by Debian's zarr-python: every compressor (none, blosc with
several cnames/shuffles, zlib, gzip), both separators, uint8/uint16/>u2, order F, odd shapes and
non-cubic chunks, absent chunks with a fill value, OME-Zarr groups with source_level; every level
of the mount equals an independent numpy reference, also with window/shift/bytes=1/re-chunking;
the source's chunk and compressor are the defaults; hostile metadata is refused at mount naming
the field; a symlink out of the store is never followed; the disk cache serves a remount without
touching the source and is invalidated by changed metadata; materialize equals the mount."""

import errno
import functools
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oztest as oz  # noqa: E402
import numcodecs  # noqa: E402
import numpy as np  # noqa: E402
import zarr  # noqa: E402

S = oz.Suite(__file__)
SHAPE = (37, 50, 61)


@functools.lru_cache(None)
def volume(dtype="uint16", seed=61, shape=SHAPE):
    return oz.make_volume(shape, np.dtype(dtype), seed=seed)


def blosc_json(cname, clevel, shuffle):
    return {"id": "blosc", "cname": cname, "clevel": clevel, "shuffle": shuffle}


def served_case(dtype="uint16", store_dtype=None, chunks=(16, 16, 16), compressor=None,
                sep=".", order="C", levels=3, opts=None, chunk=None, served_compressor=None,
                window=None, shift=(0, 0, 0), bytes1=False, algo="mean", absent=(),
                fill_value=0, shape=SHAPE):
    """Mount a zarr array written with these settings and compare every level with the
    reference.  chunk: the served chunk edge expected (None = the source's cubic edge)."""
    def run():
        d = os.path.join(oz.tmpdir("zsrc"), "src.zarr")
        vol = volume(dtype, shape=shape)
        want0 = oz.make_zarr(d, vol, chunks, dtype=store_dtype, compressor=compressor,
                             dimension_separator=sep, order=order, fill_value=fill_value,
                             absent=absent)
        l0 = oz.reference_level0(want0, window, shift, bytes1)
        want = oz.reference_pyramid(l0, levels, algo)
        o = {"levels": levels, "algorithm": algo}
        o.update(opts or {})
        edge = chunk if chunk is not None else chunks[0]
        with oz.Mount(d, o) as m:
            oz.check_tree(m.path, want, algo, edge, compressor=served_compressor)
            st = oz.stats(m.path)
            oz.check(st.get("source_fetches", 0) > 0, "no source fetches counted: %r" % st)
            oz.check(st.get("source_chunks_missing", 0) >= (1 if absent else 0),
                     "absent chunks not counted: %r" % st)
    return run


# --- compressors, dtypes and separators; the served compressor defaults to the source's ------

S.add("none_u2_dot", served_case())
S.add("none_u1_slash", served_case(dtype="uint8", sep="/"))
S.add("big_endian_u2_slash", served_case(store_dtype=">u2", sep="/"))
S.add("blosc_lz4_shuffle", served_case(
    compressor=numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE),
    served_compressor=blosc_json("lz4", 5, 1)))
S.add("blosc_zstd_bitshuffle_u1_slash", served_case(
    dtype="uint8", sep="/", compressor=numcodecs.Blosc("zstd", 3, numcodecs.Blosc.BITSHUFFLE),
    served_compressor=blosc_json("zstd", 3, 2)))
S.add("blosc_blosclz_noshuffle_be", served_case(
    store_dtype=">u2", compressor=numcodecs.Blosc("blosclz", 9, numcodecs.Blosc.NOSHUFFLE),
    served_compressor=blosc_json("blosclz", 9, 0)))
S.add("blosc_lz4hc_autoshuffle", served_case(
    compressor=numcodecs.Blosc("lz4hc", 1, numcodecs.Blosc.AUTOSHUFFLE),
    served_compressor=blosc_json("lz4hc", 1, 1)))
S.add("blosc_zlib_u1_autoshuffle", served_case(
    dtype="uint8", compressor=numcodecs.Blosc("zlib", 4, numcodecs.Blosc.AUTOSHUFFLE),
    served_compressor=blosc_json("zlib", 4, 2)))
S.add("blosc_snappy", served_case(
    compressor=numcodecs.Blosc("snappy", 5, numcodecs.Blosc.SHUFFLE),
    served_compressor=blosc_json("snappy", 5, 1)))
S.add("zlib_u1_slash", served_case(
    dtype="uint8", sep="/", compressor=numcodecs.Zlib(1), served_compressor={"id": "zlib", "level": 1}))
S.add("gzip_be_dot", served_case(
    store_dtype=">u2", compressor=numcodecs.GZip(5), served_compressor={"id": "gzip", "level": 5}))
S.add("order_f_zlib", served_case(
    order="F", compressor=numcodecs.Zlib(3), served_compressor={"id": "zlib", "level": 3}))

# --- chunk shapes: non-cubic source chunks serve 128 by default; re-chunking -----------------

S.add("noncubic_chunks_default_128", served_case(chunks=(10, 20, 30), chunk=128, levels=2))
S.add("noncubic_chunks_rechunk_16", served_case(chunks=(7, 13, 64), chunk=16, opts={"chunk": 16}))
S.add("cubic_16_rechunk_13_max", served_case(chunk=13, opts={"chunk": 13}, algo="max"))
S.add("chunks_larger_than_shape", served_case(
    chunks=(64, 64, 64), shape=(20, 21, 22), levels=2))

# --- absent chunks: the fill value (zarr semantics), also under the pyramid -------------------

S.add("absent_chunks_fill_value", served_case(
    compressor=numcodecs.Zlib(1), served_compressor={"id": "zlib", "level": 1},
    absent=[(0, 0, 0), (1, 2, 3), (2, 3, 1)], fill_value=777))
S.add("absent_chunks_fill_null", served_case(
    sep="/", absent=[(0, 1, 1), (2, 0, 3)], fill_value=None))

# --- view options on top, explicit encoding overriding the source's --------------------------

S.add("window_shift_bytes1_rechunk", served_case(
    compressor=numcodecs.Blosc("zstd", 1, numcodecs.Blosc.SHUFFLE),
    chunk=12, window=((3, 30), (5, -4), (None, 50)), shift=(2, -3, 4), bytes1=True,
    opts={"chunk": 12, "window": "0:50/5:-4/3:30", "shift": "4/-3/2", "bytes": 1},
    served_compressor=blosc_json("zstd", 1, 1)))
S.add("explicit_compression_none_over_blosc", served_case(
    compressor=numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE),
    opts={"compression": "none"}, served_compressor=None))
S.add("explicit_blosc_over_gzip", served_case(
    compressor=numcodecs.GZip(1), opts={"compression": "blosc", "blosc_cname": "zstd"},
    served_compressor=blosc_json("zstd", 5, 1)))
S.add("explicit_gzip_over_none", served_case(
    opts={"compression": "gzip", "zlib_level": 9}, served_compressor={"id": "gzip", "level": 9},
    levels=2))


# --- OME-Zarr groups ---------------------------------------------------------------------------


@functools.lru_cache(None)
def ome_group():
    d = os.path.join(oz.tmpdir("zgrp"), "scroll.zarr")
    l0 = volume("uint16", seed=5, shape=(30, 44, 52))
    pyr = oz.reference_pyramid(l0, 3, "mean")
    oz.make_ome_zarr(d, pyr, (16, 16, 16), compressor=numcodecs.Blosc("lz4", 5, 1),
                     paths=["0", "1", "2"])
    return d, pyr


@S.case
def ome_group_level0_default():
    d, pyr = ome_group()
    want = oz.reference_pyramid(pyr[0], 3, "mean")
    with oz.Mount(d, {"levels": 3}) as m:
        oz.check_tree(m.path, want, "mean", 16, compressor=blosc_json("lz4", 5, 1))


@S.case
def ome_group_source_level():
    d, pyr = ome_group()
    for lvl in (1, 2):
        want = oz.reference_pyramid(pyr[lvl], 2, "nearest")
        with oz.Mount(d, {"levels": 2, "algorithm": "nearest", "source_level": lvl}) as m:
            oz.check_tree(m.path, want, "nearest", 16, compressor=blosc_json("lz4", 5, 1))


@S.case
def ome_group_odd_paths_5d():
    """Dataset paths that are not level numbers, and 5-D (t, c, z, y, x) arrays."""
    d = os.path.join(oz.tmpdir("zgrp"), "g5.zarr")
    vol = volume("uint8", seed=9, shape=(11, 20, 27))
    g = zarr.open_group(d, mode="w")
    g.create_dataset("s0/data", data=vol[None, None], chunks=(1, 1, 8, 8, 8), compressor=None)
    g.attrs["multiscales"] = [{"version": "0.4", "datasets": [{"path": "s0/data"}]}]
    want = oz.reference_pyramid(vol, 2, "mean")
    with oz.Mount(d, {"levels": 2, "chunk": 8}) as m:
        oz.check_tree(m.path, want, "mean", 8)


# --- mount-time refusals -----------------------------------------------------------------------


def expect_mount_error(source, options=None, mention=()):
    rc, err, mounted = oz.try_mount(source, options)
    problems = []
    if rc == 0 or not isinstance(rc, int):
        problems.append("exit status %r (expected non-zero)" % (rc,))
    if mounted:
        problems.append("mountpoint was mounted")
    for s in mention:
        if s not in err:
            problems.append("stderr does not mention %r" % s)
    if problems:
        raise oz.CheckFailed("%s; stderr: %r" % ("; ".join(problems), err.strip()[:500]))


def good_array():
    d = os.path.join(oz.tmpdir("zbad"), "a.zarr")
    oz.make_zarr(d, volume("uint16", shape=(8, 9, 10)), (4, 4, 4))
    return d


def edit_zarray(path, **changes):
    meta = oz.read_json(os.path.join(path, ".zarray"))
    meta.update(changes)
    with open(os.path.join(path, ".zarray"), "w") as f:
        json.dump(meta, f)


HOSTILE = [
    ("chunks_zero", {"chunks": [0, 4, 4]}, '"chunks"'),
    ("chunks_negative", {"chunks": [4, -4, 4]}, '"chunks"'),
    ("chunk_over_1gib", {"chunks": [2048, 2048, 2048]}, '"chunks"'),
    ("shape_huge", {"shape": [2 ** 50, 9, 10]}, '"shape"'),
    ("shape_overflowing", {"shape": [2 ** 40, 2 ** 40, 2 ** 40]}, '"shape"'),
    ("shape_negative", {"shape": [-8, 9, 10]}, '"shape"'),
    ("rank_mismatch", {"chunks": [4, 4]}, '"chunks"'),
    ("rank_4_real_t", {"shape": [2, 8, 9, 10], "chunks": [1, 4, 4, 4]}, '"shape"'),
    ("dtype_float64", {"dtype": "<f8"}, "<f8"),
    ("dtype_int32", {"dtype": "<i4"}, "<i4"),
    ("unknown_codec", {"compressor": {"id": "lzma", "preset": 1}}, "lzma"),
    ("blosc_cname_unknown", {"compressor": {"id": "blosc", "cname": "brotli", "clevel": 5,
                                            "shuffle": 1}}, '"compressor.cname"'),
    ("filter_delta", {"filters": [{"id": "delta", "dtype": "<u2"}]}, "delta"),
    ("order_k", {"order": "K"}, '"order"'),
    ("fill_out_of_range", {"fill_value": 70000}, '"fill_value"'),
    ("separator_backslash", {"dimension_separator": "\\"}, '"dimension_separator"'),
    ("zarr_v3_format", {"zarr_format": 3}, '"zarr_format"'),
]


def _hostile_case(changes, field):
    def run():
        d = good_array()
        edit_zarray(d, **changes)
        expect_mount_error(d, {"levels": 2}, mention=[field, os.path.join(d, ".zarray")])
    return run


for _name, _changes, _field in HOSTILE:
    S.add("refused_" + _name, _hostile_case(_changes, _field))


@S.case
def refused_bad_json_and_huge_metadata():
    d = good_array()
    with open(os.path.join(d, ".zarray"), "w") as f:
        f.write('{"zarr_format": 2, "shape": [8, 9')
    expect_mount_error(d, None, mention=["not valid JSON", ".zarray"])
    with open(os.path.join(d, ".zarray"), "w") as f:
        f.write(" " * (16 * 1024 * 1024 + 1))
    expect_mount_error(d, None, mention=[".zarray", "limit"])


@S.case
def refused_group_paths_and_levels():
    d, _ = ome_group()
    expect_mount_error(d, {"source_level": 3}, mention=["source_level=3", "3 datasets"])
    g = os.path.join(oz.tmpdir("zgrp"), "evil.zarr")
    shutil.copytree(d, g)
    attrs = oz.read_json(os.path.join(g, ".zattrs"))
    attrs["multiscales"][0]["datasets"][0]["path"] = "../outside"
    with open(os.path.join(g, ".zattrs"), "w") as f:
        json.dump(attrs, f)
    expect_mount_error(g, None, mention=["multiscales[0].datasets[0].path", ".."])
    os.remove(os.path.join(g, ".zattrs"))
    expect_mount_error(g, None, mention=[".zattrs"])
    arr = good_array()
    expect_mount_error(arr, {"source_level": 1}, mention=["not an OME-Zarr group"])
    tiff = oz.tmpdir("ztiff")
    oz.make_stack(tiff, (3, 8, 8), np.uint8)
    expect_mount_error(tiff, {"source_level": 1}, mention=["source_level=1", "not a zarr store"])


@S.case
def symlink_out_of_store_not_followed():
    """A chunk that is a symlink to a file outside the store reads as an I/O error (EIO), never
    as the outside file's bytes; the rest of the array is served."""
    d = os.path.join(oz.tmpdir("zlink"), "a.zarr")
    vol = (np.arange(8 * 8 * 16) % 250 + 1).astype(np.uint8).reshape(8, 8, 16)
    oz.make_zarr(d, vol, (8, 8, 8))
    outside = os.path.join(os.path.dirname(d), "secret")
    with open(outside, "wb") as f:
        f.write(bytes(range(256)) * 2)  # exactly one 8x8x8 uint8 chunk
    os.remove(os.path.join(d, "0.0.1"))
    os.symlink(outside, os.path.join(d, "0.0.1"))
    with oz.Mount(d, {"levels": 1, "chunk": 8}) as m:
        with open(os.path.join(m.path, "0", "0", "0"), "rb") as f:
            oz.check(f.read() == vol[:, :, :8].tobytes(), "chunk 0/0/0 wrong")
        try:
            with open(os.path.join(m.path, "0", "0", "1"), "rb") as f:
                f.read()
            raise oz.CheckFailed("chunk behind an escaping symlink was served")
        except OSError as e:
            oz.check(e.errno == errno.EIO, "expected EIO, got %r" % e)


# --- cache: a remount reads nothing from the source; changed metadata invalidates -------------


@S.case
def remount_served_from_disk_cache_and_metadata_change_invalidates():
    d = os.path.join(oz.tmpdir("zcache"), "a.zarr")
    vol = volume("uint16", seed=3, shape=(20, 24, 28))
    oz.make_zarr(d, vol, (8, 8, 8), compressor=numcodecs.Zlib(1))
    cache = oz.tmpdir("zcache-dir")
    want = oz.reference_pyramid(vol, 2, "mean")
    # Source chunks 8^3: the served chunk edge is clamped to 16 (tiny chunks would flood the
    # tree with files).
    with oz.Mount(d, {"levels": 2}, cache=cache) as m:
        oz.check_tree(m.path, want, "mean", 16, compressor={"id": "zlib", "level": 1}, raw=False)
    with oz.Mount(d, {"levels": 2}, cache=cache) as m:
        oz.check_tree(m.path, want, "mean", 16, compressor={"id": "zlib", "level": 1}, raw=False)
        st = oz.stats(m.path)
        oz.check(st["source_fetches"] == 0 and st["cache_hits"] > 0,
                 "remount touched the source: %r" % st)
    # Rewrite the array with other data and another fill value: new .zarray bytes.
    vol2 = (vol // 2).astype(np.uint16)
    want2 = oz.make_zarr(d, vol2, (8, 8, 8), compressor=numcodecs.Zlib(1), fill_value=5,
                         absent=[(1, 1, 1)])
    with oz.Mount(d, {"levels": 2}, cache=cache) as m:
        oz.check_tree(m.path, oz.reference_pyramid(want2, 2, "mean"), "mean", 16,
                      compressor={"id": "zlib", "level": 1}, raw=False)
        oz.check(oz.stats(m.path)["source_fetches"] > 0, "stale cache served after a change")


# --- materialize accepts the same SOURCE ------------------------------------------------------


def materialize_tool():
    return os.path.join(os.path.dirname(oz.binary()), "..", "cli", "omezarr-materialize")


def _materialize_case(make, options):
    def run():
        src = make()
        dest = os.path.join(oz.tmpdir("zmat"), "out.zarr")
        res = subprocess.run([materialize_tool(), src, dest, "--quiet", "-o", oz.format_options(options)],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
        oz.check(res.returncode == 0, "materialize failed (%d): %s" % (res.returncode, res.stderr[-800:]))
        with oz.Mount(src, options) as m:
            diff = oz.tree_diff(m.path, dest)
            oz.check(not diff, "DEST differs from the mount: %s" % diff[:5])
    return run


def _blosc_array():
    d = os.path.join(oz.tmpdir("zmat-src"), "a.zarr")
    oz.make_zarr(d, volume("uint16"), (16, 16, 16),
                 compressor=numcodecs.Blosc("zstd", 5, numcodecs.Blosc.BITSHUFFLE),
                 dimension_separator="/", absent=[(1, 1, 1)], fill_value=3)
    return d


S.add("materialize_equals_mount_blosc_source", _materialize_case(_blosc_array, {"levels": 3}))
S.add("materialize_equals_mount_group_level1_rechunk", _materialize_case(
    lambda: ome_group()[0], {"levels": 2, "source_level": 1, "chunk": 8, "bytes": 1}))


if __name__ == "__main__":
    S.main()
