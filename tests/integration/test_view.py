#!/usr/bin/python3
"""View options: window + shift (positive/negative, open ends, negative indices, clipping, both
separator spellings), bytes=1, levels=1 (root is a plain array), blosc (lz4/zstd, shuffle
variants), voxel_size + unit in .zattrs."""

import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oztest as oz  # noqa: E402
import numpy as np  # noqa: E402
import zarr  # noqa: E402

S = oz.Suite(__file__)
SHAPE = (20, 45, 60)
CHUNK = 16
LEVELS = 3


@functools.lru_cache(None)
def stack():
    d = oz.tmpdir("src")
    return d, oz.make_stack(d, SHAPE, np.uint16, seed=21, compression="zlib")


def _view_case(window=None, shift=(0, 0, 0), opts=None, bytes1=False, algo="mean",
               levels=LEVELS, compressor=None, voxel=(1.0, 1.0, 1.0), unit=None):
    """window/shift in z,y,x order (reference); `opts` holds the option strings as a user would
    type them (x,y,z order)."""
    def run():
        d, vol = stack()
        l0 = oz.reference_level0(vol, window, shift, bytes1)
        want = oz.reference_pyramid(l0, levels, algo)
        o = {"chunk": CHUNK, "levels": levels, "algorithm": algo}
        o.update(opts or {})
        with oz.Mount(d, o) as m:
            oz.check_tree(m.path, want, algo, CHUNK, compressor=compressor, voxel_zyx=voxel,
                          unit=unit)
    return run


# window x 5:50, y 3:-4, z 2: ; shift dx=7, dy=3, dz=2
S.add("window_shift_positive", _view_case(
    window=((2, None), (3, -4), (5, 50)), shift=(2, 3, 7),
    opts={"window": "5:50\\,3:-4\\,2:", "shift": "7\\,3\\,2"}))
# slash separators, open start, negative start, negative shift
S.add("window_shift_negative_slashes", _view_case(
    window=((1, 15), (-30, None), (None, -10)), shift=(-1, -2, -3),
    opts={"window": ":-10/-30:/1:15", "shift": "-3/-2/-1"}))
# negative shift larger than the window start: the view starts inside the window
S.add("negative_shift_past_window_start", _view_case(
    window=((3, 12), (10, 40), (20, 55)), shift=(-5, -15, -25),
    opts={"window": "20:55/10:40/3:12", "shift": "-25/-15/-5"}))
S.add("window_open_everywhere_is_identity", _view_case(
    window=None, opts={"window": ":/:/:"}))
# fewer axes than three: the missing axes (y, z) are whole
S.add("window_x_only", _view_case(
    window=(None, None, (5, 40)), opts={"window": "5:40"}))
S.add("window_clipped_to_source", _view_case(
    window=((-100, 100), (None, 1000), (10, 1000)),
    opts={"window": "10:1000\\,:1000\\,-100:100"}))
S.add("shift_only", _view_case(
    shift=(-2, 0, 4), opts={"shift": "4\\,0\\,-2"}))
S.add("bytes1", _view_case(bytes1=True, opts={"bytes": 1}))
S.add("bytes1_window_shift_max", _view_case(
    window=((None, 17), (5, None), (-40, -3)), shift=(1, 0, -2), bytes1=True, algo="max",
    opts={"window": "-40:-3/5:/:17", "shift": "-2/0/1", "bytes": 1}))
S.add("window_shift_nearest", _view_case(
    window=((4, 19), (0, 33), (7, 59)), shift=(3, 5, 0), algo="nearest",
    opts={"window": "7:59/0:33/4:19", "shift": "0/5/3"}))


@S.case
def levels1_root_is_plain_array():
    d, vol = stack()
    with oz.Mount(d, {"chunk": CHUNK, "levels": 1}) as m:
        ck = oz.Checks()
        ck.expect(not os.path.exists(os.path.join(m.path, ".zgroup")), "/.zgroup exists")
        ck.expect(not os.path.exists(os.path.join(m.path, "0", ".zarray")),
                  "/0/.zarray exists (levels=1 must be a plain array at the root)")
        ck.expect(os.path.isdir(os.path.join(m.path, "0")),
                  "/0 (chunk row z=0) missing")  # chunk dirs z/y/x at the root
        ck.run("root tree", oz.check_tree, m.path, [vol], "mean", CHUNK)

        def via_zarr_open():
            a = zarr.open(m.path, mode="r")
            oz.check(isinstance(a, zarr.Array), "zarr.open(root) gave %s" % type(a).__name__)
            oz.assert_array_equal(a[...], vol, "zarr.open(root)")
        ck.run("zarr.open", via_zarr_open)
        ck.done()


@S.case
def levels1_with_window_and_bytes1():
    d, vol = stack()
    want = oz.reference_level0(vol, ((None, None), (4, 30), (1, -1)), (0, 2, 0), True)
    with oz.Mount(d, {"chunk": CHUNK, "levels": 1, "window": "1:-1/4:30/:",
                      "shift": "0/2/0", "bytes": 1}) as m:
        oz.check_tree(m.path, [want], "mean", CHUNK)


def _blosc(cname, shuffle, clevel):
    comp = {"id": "blosc", "cname": cname, "clevel": clevel, "shuffle": shuffle}
    return _view_case(opts={"compression": "blosc", "blosc_cname": cname,
                            "blosc_clevel": clevel, "blosc_shuffle": shuffle},
                      compressor=comp)


for _cname, _shuffle, _clevel in (("lz4", 0, 5), ("lz4", 1, 5), ("lz4", 2, 1),
                                  ("zstd", 1, 5), ("zstd", 2, 9), ("zstd", 0, 3)):
    S.add("blosc_%s_shuffle%d_clevel%d" % (_cname, _shuffle, _clevel),
          _blosc(_cname, _shuffle, _clevel))


@S.case
def blosc_defaults():
    """compression=blosc alone: lz4, clevel 5, byte shuffle (documented defaults)."""
    _view_case(opts={"compression": "blosc"},
               compressor={"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1})()


@S.case
def blosc_bytes1_window():
    comp = {"id": "blosc", "cname": "zstd", "clevel": 5, "shuffle": 2}
    _view_case(window=((2, 18), None, (None, 40)), bytes1=True, compressor=comp,
               opts={"window": ":40/:/2:18", "bytes": 1, "compression": "blosc",
                     "blosc_cname": "zstd", "blosc_shuffle": 2})()


S.add("voxel_size_unit_mean", _view_case(
    voxel=(2.0, 0.25, 0.5), unit="micrometer",
    opts={"voxel_size": "0.5\\,0.25\\,2", "unit": "micrometer"}))
S.add("voxel_size_unit_nearest_slashes", _view_case(
    voxel=(4.0, 0.3, 0.3), unit="nanometer", algo="nearest",
    opts={"voxel_size": "0.3/0.3/4", "unit": "nanometer"}))
S.add("voxel_size_single_value_max", _view_case(
    voxel=(3.0, 3.0, 3.0), algo="max", opts={"voxel_size": "3"}))


if __name__ == "__main__":
    S.main()
