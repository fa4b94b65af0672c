#!/usr/bin/python3
"""Self-checks of the harness itself (no binary needed): the numpy reference against slower,
independent definitions, the view reference against hand-computed cases, the codec encoders,
and the TIFF fixtures read back with libtiff and tifffile."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oztest as oz  # noqa: E402
import numpy as np  # noqa: E402

S = oz.Suite(__file__)


def _random_arrays(seed=1):
    rng = np.random.default_rng(seed)
    shapes = [(1, 1, 1), (1, 1, 5), (3, 5, 7), (2, 4, 6), (5, 1, 3), (7, 9, 11), (4, 3, 1)]
    for shp in shapes:
        for dt in (np.uint8, np.uint16):
            hi = np.iinfo(dt).max
            yield rng.integers(0, hi + 1, size=shp).astype(dt)
            # many exact .5 cases: values in {0, 1}
            yield rng.integers(0, 2, size=shp).astype(dt)
            yield np.full(shp, hi, dt)


@S.case
def mean_int_equals_float_equals_loop():
    for a in _random_arrays():
        i = oz.down_mean_int(a)
        f = oz.down_mean_float(a)
        loop = oz.down_loop(a, "mean")
        oz.assert_array_equal(i, f, "mean int vs float %s %s" % (a.shape, a.dtype))
        oz.assert_array_equal(i, loop, "mean int vs loop %s %s" % (a.shape, a.dtype))


@S.case
def mean_rounds_half_to_even():
    a = np.array([[[1, 2], [0, 0]], [[0, 0], [0, 0]]], np.uint8)  # 3/8 -> 0
    oz.check(oz.down_mean_int(a)[0, 0, 0] == 0, "3/8")
    a = np.array([[[1, 0]]], np.uint8)  # 1/2 -> 0 (even)
    oz.check(oz.down_mean_int(a)[0, 0, 0] == 0, "1/2")
    a = np.array([[[3, 0]]], np.uint8)  # 3/2 -> 2 (even)
    oz.check(oz.down_mean_int(a)[0, 0, 0] == 2, "3/2")
    a = np.array([[[5, 0], [0, 0]]], np.uint8)  # 5/4 -> 1
    oz.check(oz.down_mean_int(a)[0, 0, 0] == 1, "5/4")
    a = np.array([[[255, 255], [255, 254]], [[255, 255], [255, 255]]], np.uint8)  # 2039/8
    oz.check(oz.down_mean_int(a)[0, 0, 0] == 255, "2039/8")
    a = np.full((2, 2, 2), 65535, np.uint16)
    oz.check(oz.down_mean_int(a)[0, 0, 0] == 65535, "no overflow")
    # odd edge: the 1-voxel-wide last block uses only existing voxels (count 1, not 2)
    a = np.array([[[10, 20, 7]]], np.uint16)
    oz.assert_array_equal(oz.down_mean_int(a), np.array([[[15, 7]]], np.uint16), "odd edge")


@S.case
def max_and_nearest_equal_loop():
    for a in _random_arrays(2):
        oz.assert_array_equal(oz.down_max(a), oz.down_loop(a, "max"), "max %s" % (a.shape,))
        oz.assert_array_equal(oz.down_max_strided(a), oz.down_loop(a, "max"), "max strided")
        oz.assert_array_equal(oz.down_nearest(a), oz.down_loop(a, "nearest"), "nearest")


@S.case
def pyramid_chains_rounded_levels():
    a = oz.make_volume((13, 22, 31), np.uint16, seed=3)
    for algo in ("mean", "nearest", "max"):
        p = oz.reference_pyramid(a, 5, algo)
        q = oz.reference_pyramid(a, 5, algo, alt=True)
        shapes = [x.shape for x in p]
        oz.check(shapes == [(13, 22, 31), (7, 11, 16), (4, 6, 8), (2, 3, 4), (1, 2, 2)],
                 "shapes %s" % shapes)
        for lvl, (x, y) in enumerate(zip(p, q)):
            oz.assert_array_equal(x, y, "%s level %d" % (algo, lvl))
    # mean is computed from the previous ROUNDED level, not from level 0 directly
    a = np.zeros((4, 1, 1), np.uint8)
    a[:, 0, 0] = [1, 0, 1, 1]  # level1 = [round(.5)=0, round(1)=1]; level2 = round(.5) = 0
    p = oz.reference_pyramid(a, 3, "mean")
    oz.check(p[1].ravel().tolist() == [0, 1] and p[2].ravel().tolist() == [0],
             "chained rounding %s %s" % (p[1].ravel(), p[2].ravel()))


@S.case
def view_reference_by_hand():
    vol = np.arange(1, 11, dtype=np.uint16).reshape(1, 1, 10)  # x = 1..10
    # window x 2:5, shift 0: extent 5, [0,0,3,4,5]
    r = oz.reference_level0(vol, window=(None, None, (2, 5)))
    oz.check(r.ravel().tolist() == [0, 0, 3, 4, 5], "win 2:5 %s" % r.ravel())
    # shift +3 after window 2:5: extent 8, voxels 5..7 = source 2..4
    r = oz.reference_level0(vol, window=(None, None, (2, 5)), shift=(0, 0, 3))
    oz.check(r.ravel().tolist() == [0, 0, 0, 0, 0, 3, 4, 5], "shift +3 %s" % r.ravel())
    # shift -3 after window 2:5: extent 2, o in [0,2): source o+3 in [2,5) -> 4, 5
    r = oz.reference_level0(vol, window=(None, None, (2, 5)), shift=(0, 0, -3))
    oz.check(r.ravel().tolist() == [4, 5], "shift -3 %s" % r.ravel())
    # negative indices, open ends: -4: -> [6,10)
    r = oz.reference_level0(vol, window=(None, None, (-4, None)))
    oz.check(r.ravel().tolist() == [0] * 6 + [7, 8, 9, 10], "-4: %s" % r.ravel())
    # :-7 -> [0,3), clipping of out-of-range stop
    r = oz.reference_level0(vol, window=(None, None, (None, -7)))
    oz.check(r.ravel().tolist() == [1, 2, 3], ":-7 %s" % r.ravel())
    r = oz.reference_level0(vol, window=(None, None, (8, 100)))
    oz.check(r.ravel().tolist() == [0] * 8 + [9, 10], "8:100 %s" % r.ravel())
    # shift without window
    r = oz.reference_level0(vol, shift=(0, 0, 2))
    oz.check(r.ravel().tolist() == [0, 0] + list(range(1, 11)), "shift 2 %s" % r.ravel())
    # bytes1
    v16 = np.array([[[0, 255, 256, 511, 65535]]], np.uint16)
    r = oz.reference_level0(v16, bytes1=True)
    oz.check(r.dtype == np.uint8 and r.ravel().tolist() == [0, 0, 1, 1, 255], "bytes1 %s" % r)
    # 3-D: per-axis independence
    vol = oz.make_volume((6, 7, 8), np.uint16, seed=5, mask=False)
    r = oz.reference_level0(vol, window=((1, 4), (-3, None), None), shift=(2, -1, 1))
    oz.check(r.shape == (6, 6, 9), "3d shape %s" % (r.shape,))
    for z, y, x in np.ndindex(*r.shape):
        sz, sy, sx = z - 2, y + 1, x - 1
        inside = 1 <= sz < 4 and 4 <= sy < 7 and 0 <= sx < 8
        want = vol[sz, sy, sx] if inside else 0
        oz.check(r[z, y, x] == want, "3d at %s" % ((z, y, x),))


@S.case
def option_formatting():
    oz.check(oz.window_opt(((1, 4), (-3, None), None)) == ":\\,-3:\\,1:4", "window_opt")
    oz.check(oz.window_opt(((1, 4), None, (None, 5)), sep="/") == ":5/:/1:4", "window_opt /")
    oz.check(oz.xyz((3, 2, 1)) == "1\\,2\\,3", "xyz")


@S.case
def lzw_and_packbits_roundtrip():
    rng = np.random.default_rng(7)
    samples = [b"", b"a", b"ab" * 3000, bytes(rng.integers(0, 256, 20000, dtype=np.uint8)),
               bytes(rng.integers(0, 4, 50000, dtype=np.uint8)), b"\0" * 70000]
    for s in samples:
        enc = oz.lzw_encode(s)
        oz.check(oz.lzw_decode(enc) == s, "lzw roundtrip len %d" % len(s))
    from tifffile import _imagecodecs
    for s in samples:
        arr = np.frombuffer(s, np.uint8).reshape(1, -1) if s else np.zeros((1, 0), np.uint8)
        enc = oz.packbits_encode(arr)
        oz.check(_imagecodecs.packbits_decode(enc) == s, "packbits roundtrip len %d" % len(s))


FIXTURES = [
    ("none", dict()),
    ("strips_rps1", dict(rowsperstrip=1)),
    ("strips_rps7", dict(rowsperstrip=7)),
    ("tiles_32x32", dict(tile=(32, 32))),
    ("tiles_16x48_zlib", dict(tile=(16, 48), compression="zlib")),
    ("deflate_predictor", dict(compression="zlib", predictor=True)),
    ("adobe_deflate", dict(compression="adobe_deflate")),
    ("lzw", dict(compression="lzw")),
    ("lzw_predictor", dict(compression="lzw", predictor=True)),
    ("lzw_tiles", dict(compression="lzw", tile=(32, 32))),
    ("packbits", dict(compression="packbits")),
    ("packbits_tiles", dict(compression="packbits", tile=(16, 48))),
    ("zstd", dict(compression="zstd")),
    ("zstd_predictor", dict(compression="zstd", predictor=True)),
    ("bigtiff", dict(bigtiff=True)),
    ("bigendian", dict(byteorder=">")),
    ("bigendian_deflate_predictor", dict(byteorder=">", compression="zlib", predictor=True)),
    ("bigendian_lzw_tiles", dict(byteorder=">", compression="lzw", tile=(32, 32))),
]


def _fixture_case(name, kw):
    def run():
        for dt in (np.uint16, np.uint8):
            d = oz.tmpdir("fx")
            vol = oz.make_stack(d, (3, 70, 90), dt, seed=11, **kw)
            oz.verify_stack(d, vol)
    return run


for _n, _kw in FIXTURES:
    S.add("fixture_" + _n, _fixture_case(_n, _kw))


@S.case
def fixture_gaps_and_names():
    d = oz.tmpdir("fx")
    names = "{z:03d}.TIFF"
    vol = oz.make_stack(d, (5, 20, 30), np.uint16, seed=1, gaps=(1, 3), names=names)
    oz.check(not vol[1].any() and not vol[3].any(), "gaps zeroed")
    oz.check(sorted(os.listdir(d)) == ["000.TIFF", "002.TIFF", "004.TIFF"], os.listdir(d))
    oz.verify_stack(d, vol, names=names, gaps=(1, 3))


@S.case
def volume_has_empty_chunks_and_texture():
    vol = oz.make_volume((67, 130, 257), np.uint16, seed=0)
    ch = 32
    grid = oz.chunk_grid(vol.shape, [ch] * 3)
    p = oz.reference_pyramid(vol, 4, "mean")
    for lvl in (0, 1):
        a = p[lvl]
        g = oz.chunk_grid(a.shape, [ch] * 3)
        empty = sum(oz.chunk_is_empty(a, ci, ch) for ci in np.ndindex(*g))
        oz.check(0 < empty < np.prod(g), "level %d: %d of %d chunks empty" % (lvl, empty,
                                                                            np.prod(g)))
    oz.check(len(np.unique(vol)) > 1000, "texture")
    oz.check(vol.max() == 65535 and (vol == 0).mean() > 0.2, "extremes")
    # mean rounding actually matters on this data (ties occur)
    s = oz._blocks(vol).sum(axis=(1, 3, 5))
    oz.check(((s % 8) == 4).any(), "ties present")
    del grid


@S.case
def encoder_notes():
    # Not a check: records which codecs needed oztest's own encoders.
    for n in oz._ENCODER_NOTES:
        print("# " + n)


if __name__ == "__main__":
    S.main()
