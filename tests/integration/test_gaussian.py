#!/usr/bin/python3
"""algorithm=gaussian on real mounts: every level of odd-shaped stacks (chunks smaller than the
volume, so chunk borders and halos matter) equals an independent numpy pyramid computed level by
level from level 0 (np.pad mode='symmetric', explicit weighted sums in the README's order), and
agrees with scipy.ndimage.correlate1d (mode='reflect') to within rounding; zarr v3 and every
dtype; a coarsest-first cold read equals a finest-first one; materialize writes the mount's bytes."""

import functools
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oztest as oz  # noqa: E402
import numpy as np  # noqa: E402
import scipy.ndimage  # noqa: E402
import tifffile  # noqa: E402
import zarr3_ref  # noqa: E402

S = oz.Suite(__file__)

# Weights: sigma 1, taps at offsets -2.5 .. 2.5 from the block centre, exp(-d^2/2) over their
# sum taken left to right (numpy's pairwise g.sum() differs in the last bit of the middle tap).
_G = [math.exp(-(t - 2.5) ** 2 / 2.0) for t in range(6)]
_S = 0.0
for _g in _G:
    _S += _g
W = np.array([g / _S for g in _G])
# The README's literals.
assert [float(x).hex() for x in W[:3]] == ["0x1.1fb1f0083f219p-6", "0x1.09b970aa64d06p-3",
                                           "0x1.692828aa49a5bp-2"], [float(x).hex() for x in W]


def _axis_pass(a, axis):
    """One axis: out[i] = sum_t W[t] * a[mirror(2i - 2 + t)], t ascending, in float64."""
    n = a.shape[axis]
    m = (n + 1) // 2
    pad = [(0, 0)] * 3
    pad[axis] = (2, 2 + (n % 2))
    p = np.pad(a, pad, mode="symmetric")
    acc = np.zeros(tuple(m if ax == axis else s for ax, s in enumerate(a.shape)), np.float64)
    for t in range(6):
        sl = [slice(None)] * 3
        sl[axis] = slice(t, t + 2 * m, 2)
        acc = acc + W[t] * p[tuple(sl)]
    return acc


def _finish(acc, dtype):
    if np.issubdtype(dtype, np.floating):
        return acc.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.rint(acc), info.min, info.max).astype(dtype)  # rint: half to even


def gaussian_down(a):
    acc = _axis_pass(_axis_pass(_axis_pass(a.astype(np.float64), 2), 1), 0)
    return _finish(acc, a.dtype)


def scipy_down(a):
    """The same filter through scipy (another summation order): within rounding of ours."""
    acc = a.astype(np.float64)
    for ax in (2, 1, 0):
        n = acc.shape[ax]
        m = (n + 1) // 2
        pad = [(0, 0)] * 3
        pad[ax] = (2, 3 + (n % 2))
        p = np.pad(acc, pad, mode="symmetric")
        # correlate1d centres a kernel of 6 at index 3: result k = sum_t W[t] * p[k - 3 + t],
        # so k = 2i + 3 gives p[2i + t] = a[mirror(2i - 2 + t)].
        c = scipy.ndimage.correlate1d(p, W, axis=ax, mode="constant")
        sl = [slice(None)] * 3
        sl[ax] = slice(3, 3 + 2 * m, 2)
        acc = c[tuple(sl)]
    return acc


def gaussian_pyramid(vol, levels):
    out = [vol]
    for _ in range(levels - 1):
        out.append(gaussian_down(out[-1]))
    return out


def check_scipy(vol):
    """Our reference against scipy on a shape with odd axes (>= 2: scipy's reflect of a 1-voxel
    axis is the same constant)."""
    ours = _axis_pass(_axis_pass(_axis_pass(vol.astype(np.float64), 2), 1), 0)
    theirs = scipy_down(vol)
    oz.check(ours.shape == theirs.shape, "scipy shape %s vs %s" % (theirs.shape, ours.shape))
    oz.check(np.allclose(ours, theirs, rtol=1e-12, atol=1e-9), "reference differs from scipy")
    # Even lengths: scipy's own mode='reflect' edges, no padding of ours involved.
    ev = vol[tuple(slice(0, s - s % 2 if s > 1 else 1) for s in vol.shape)].astype(np.float64)
    if min(ev.shape) >= 2:
        acc = ev
        for ax in (2, 1, 0):
            c = scipy.ndimage.correlate1d(acc, W, axis=ax, mode="reflect")
            sl = [slice(None)] * 3
            sl[ax] = slice(1, None, 2)
            acc = c[tuple(sl)]
        mine = _axis_pass(_axis_pass(_axis_pass(ev, 2), 1), 0)
        oz.check(np.allclose(mine, acc, rtol=1e-12, atol=1e-9), "differs from scipy mode=reflect")


@functools.lru_cache(None)
def stack16():
    d = oz.tmpdir("g16")
    return d, oz.make_stack(d, (37, 50, 61), np.uint16, seed=3, rowsperstrip=8)


def _mount_case(src, chunk, levels, fmt=None, coarsest_first=False):
    def run():
        d, vol = src()
        check_scipy(vol)
        want = gaussian_pyramid(vol, levels)
        opts = {"chunk": chunk, "levels": levels, "algorithm": "gaussian"}
        if fmt:
            opts["format"] = fmt
        with oz.Mount(d, opts) as m:
            if fmt is None:
                order = range(levels - 1, -1, -1) if coarsest_first else range(levels)
                for lvl in order:
                    oz.assert_array_equal(oz.read_level(m.path, lvl, levels), want[lvl],
                                          "level %d" % lvl)
                oz.check_tree(m.path, want, "gaussian", chunk)
            else:
                for lvl in range(levels):
                    got = zarr3_ref.read_array(os.path.join(m.path, str(lvl)))
                    oz.assert_array_equal(got, want[lvl], "level %d" % lvl)
    return run


S.add("uint16_chunk16_levels4", _mount_case(stack16, 16, 4))
S.add("uint16_chunk13_levels5_coarsest_first", _mount_case(stack16, 13, 5, coarsest_first=True))


@S.case
def every_dtype_odd_and_thin():
    """All six dtypes, a 1-voxel axis, odd lengths, chunk 8 (halos cross chunk borders)."""
    rng = np.random.default_rng(8)
    shape = (19, 1, 27)
    for dt, hi in ((np.uint8, 256), (np.uint16, 65536), (np.uint32, 2 ** 32), (np.int16, None),
                   (np.float32, None), (np.uint64, 2 ** 53)):
        if dt == np.int16:
            vol = rng.integers(-32768, 32768, shape).astype(dt)
        elif dt == np.float32:
            vol = (rng.standard_normal(shape) * 1000).astype(dt)
        else:
            vol = rng.integers(0, hi, shape, dtype=np.uint64).astype(dt)
        d = oz.tmpdir("gdt")
        for z in range(shape[0]):
            tifffile.imwrite(os.path.join(d, "%03d.tif" % z), vol[z], photometric="minisblack",
                             metadata=None)
        want = gaussian_pyramid(vol, 4)
        with oz.Mount(d, {"chunk": 8, "levels": 4, "algorithm": "gaussian"}) as m:
            for lvl in range(4):
                got = oz.read_level(m.path, lvl, 4)
                oz.check(got.dtype == want[lvl].dtype, "%s dtype %s" % (dt.__name__, got.dtype))
                oz.assert_array_equal(got, want[lvl], "%s level %d" % (dt.__name__, lvl))


S.add("zarr3_sharded_chunk8", _mount_case(stack16, 8, 4, fmt="ome-zarr-0.5"))


@S.case
def materialize_equals_mount():
    d, vol = stack16()
    opts = {"chunk": 16, "levels": 4, "algorithm": "gaussian"}
    dest = oz.tmpdir("gmat")
    oz.materialize(d, dest, opts)
    want = gaussian_pyramid(vol, 4)
    with oz.Mount(d, opts) as m:
        mounted = oz.tree_files(m.path)
    got = oz.tree_files(dest)
    oz.check(sorted(got) == sorted(mounted), "file lists differ: %s" %
             sorted(set(got) ^ set(mounted))[:5])
    for k in mounted:
        oz.check(got[k] == mounted[k], "%s differs" % k)
    for lvl in range(4):
        oz.assert_array_equal(oz.read_level(dest, lvl, 4), want[lvl], "materialized level %d" % lvl)


@S.case
def zero_region_halo_is_not_empty():
    """Chunks whose own children are all zero but whose halo reaches data are served (not
    omitted as empty)."""
    vol = np.zeros((16, 16, 40), np.uint16)
    vol[:, :, 17:] = 40000  # level-1 chunk x=1 (chunk 8) sees x 14..16 of level 0 as halo
    d = oz.tmpdir("gzero")
    oz.make_stack(d, volume=vol)
    want = gaussian_pyramid(vol, 3)
    with oz.Mount(d, {"chunk": 8, "levels": 3, "algorithm": "gaussian"}) as m:
        for lvl in (2, 1, 0):
            oz.assert_array_equal(oz.read_level(m.path, lvl, 3), want[lvl], "level %d" % lvl)
    oz.check(want[1][:, :, 8:].any(), "fixture: the halo reaches level-1 chunk x=1")


if __name__ == "__main__":
    S.main()
