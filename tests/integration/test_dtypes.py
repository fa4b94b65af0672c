#!/usr/bin/python3
"""int16, float32, uint32 and uint64 sources end to end, and the kernels mean, nearest, max, min
and mode: TIFF slices written by tifffile (SampleFormat 2 and 3, 32- and 64-bit samples) and zarr
v2 arrays written by zarr-python (both byte orders) are mounted as OME-Zarr 0.4 (read with
zarr-python), 0.5 (zarr3_ref.py) and precomputed (precomputed_ref.py; int16 is refused there), and
every level equals a numpy reference pyramid written here (exact integer mean with Python ints,
float mean in float64, NaN-propagating max/min, counting mode with ties to the smallest value);
dtype=uint8|uint16,range=LO:HI and range=auto equal the numpy mapping of the same rule (auto:
the README's sample and percentiles), and omero.window holds the range; materialize equals the
mount; float64 and bytes=1 on float32 are refused with the fix."""
import os

import numpy as np
import tifffile

import oztest as oz
import precomputed_ref
import zarr3_ref

S = oz.Suite("dtypes", case_timeout=600)
SHAPE = (9, 21, 26)  # odd on every axis: edge blocks of 1, 2 and 4 voxels at every level
LEVELS = 4


# --- fixtures ------------------------------------------------------------------------------------

def volume(dtype, seed=5, shape=SHAPE):
    """Values with many ties (mode), the type's extremes (overflow), zeros; floats add NaN, +-inf
    and -0.0."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    if dt.kind == "f":
        v = rng.integers(-40, 40, size=shape).astype(np.float32) * np.float32(0.5)
        v[rng.random(shape) < 0.3] = 0.0
        v[rng.random(shape) < 0.01] = np.nan
        v[rng.random(shape) < 0.005] = np.inf
        v[rng.random(shape) < 0.005] = -np.inf
        v[rng.random(shape) < 0.02] = -0.0
        v[rng.random(shape) < 0.05] *= np.float32(1e6)
        return v.astype(dt)
    info = np.iinfo(dt)
    v = rng.integers(0, 4, size=shape).astype(object)
    big = rng.integers(0, 1 << 62, size=shape).astype(object) * 4 % (int(info.max) - int(info.min) + 1) + int(info.min)
    pick = rng.random(shape)
    v = np.where(pick < 0.4, v + max(int(info.min), -3), big)
    v = np.where(pick > 0.93, int(info.max), v)
    v = np.where((pick > 0.9) & (pick <= 0.93), int(info.min), v)
    return np.array(v.tolist(), dtype=dt)


def tiff_source(vol):
    d = oz.tmpdir("tif")
    for z in range(vol.shape[0]):
        tifffile.imwrite(os.path.join(d, "%03d.tif" % z), vol[z], photometric="minisblack", metadata=None)
    return d


def zarr_source(vol, stored):
    d = oz.tmpdir("zarr")
    return d, oz.make_zarr(d, vol, chunks=(4, 8, 8), dtype=stored, compressor=None)


# --- numpy reference -----------------------------------------------------------------------------

def half(n):
    return (n + 1) // 2


def blocks(a):
    """(out shape, list of the 8 sub-arrays with a mask of which exist) for 2x2x2 blocks."""
    out = tuple(half(n) for n in a.shape)
    subs = []
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                s = a[dz::2, dy::2, dx::2]
                full = np.zeros(out, a.dtype)
                mask = np.zeros(out, bool)
                full[:s.shape[0], :s.shape[1], :s.shape[2]] = s
                mask[:s.shape[0], :s.shape[1], :s.shape[2]] = True
                subs.append((full, mask))
    return out, subs


def order_key(a):
    """Values as integers in the kernels' value order (floats: IEEE total order of the bits)."""
    if a.dtype.kind == "f":
        i = a.view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7fffffff) - 1, i)
    return a.astype(object)


def down(a, alg):
    out, subs = blocks(a)
    if alg == "nearest":
        return a[::2, ::2, ::2].copy()
    if alg == "mean":
        if a.dtype.kind == "f":
            acc = np.zeros(out, np.float64)
            cnt = np.zeros(out, np.int64)
            with np.errstate(invalid="ignore"):
                for s, m in subs:  # in block order (z, y, x), as the README states
                    acc = np.where(m, acc + s.astype(np.float64), acc)
                    cnt += m
                return (acc / cnt).astype(np.float32)
        acc = np.zeros(out, object)
        cnt = np.zeros(out, object)
        for s, m in subs:
            acc = acc + np.where(m, s.astype(object), 0)
            cnt = cnt + m.astype(np.int64)
        res = np.empty(out, object)
        for idx in np.ndindex(*out):
            q, r = divmod(acc[idx], cnt[idx])
            res[idx] = q + (1 if 2 * r > cnt[idx] or (2 * r == cnt[idx] and q % 2 == 1) else 0)
        return np.array(res.tolist(), dtype=a.dtype)
    if alg in ("max", "min"):
        res = np.empty(out, a.dtype)
        for idx in np.ndindex(*out):
            vals = np.array([s[idx] for s, m in subs if m[idx]], a.dtype)
            if a.dtype.kind == "f" and np.isnan(vals).any():
                res[idx] = np.nan
                continue
            k = order_key(vals)  # floats: total order, -0.0 < +0.0
            i = int(np.argmax(k) if alg == "max" else np.argmin(k))
            res[idx] = vals[i]
        return res
    assert alg == "mode"
    keys = [(order_key(s), m) for s, m in subs]
    res = np.empty(out, a.dtype)
    flat = [s for s, _ in subs]
    for idx in np.ndindex(*out):
        counts = {}
        first = {}
        for (k, m), s in zip(keys, flat):
            if m[idx]:
                kk = int(k[idx])
                counts[kk] = counts.get(kk, 0) + 1
                first.setdefault(kk, s[idx])
        best = min(counts, key=lambda kk: (-counts[kk], kk))
        res[idx] = first[best]
    return res


def pyramid(level0, alg, levels=LEVELS):
    out = [level0]
    for _ in range(1, levels):
        out.append(down(out[-1], alg))
    return out


def same(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    oz.check(got.shape == want.shape, "%s: shape %s != %s" % (what, got.shape, want.shape))
    oz.check(got.dtype == want.dtype, "%s: dtype %s != %s" % (what, got.dtype, want.dtype))
    if got.dtype.kind == "f":
        nan = np.isnan(got) & np.isnan(want)
        eq = (got.view(np.uint32) == want.view(np.uint32)) | nan
    else:
        eq = got == want
    if not eq.all():
        first = tuple(int(i) for i in np.argwhere(~eq)[0])
        raise oz.CheckFailed("%s: %d of %d voxels differ; first at %s: got %r, expected %r" % (
            what, int((~eq).sum()), eq.size, first, got[first], want[first]))


# --- reading every format ------------------------------------------------------------------------

def read_levels(mnt, fmt, levels=LEVELS):
    if fmt == "ome-zarr-0.4":
        return [oz.read_level(mnt, lv, levels) for lv in range(levels)]
    if fmt == "ome-zarr-0.5":
        return [zarr3_ref.read_array(os.path.join(mnt, str(lv))) for lv in range(levels)]
    info = precomputed_ref.read_info(mnt)
    return [precomputed_ref.read_scale(mnt, info, lv)[0] for lv in range(levels)]


def check_mount(src, want, fmt, opts):
    o = dict({"chunk": 8, "levels": LEVELS, "format": fmt}, **opts)
    with oz.Mount(src, o) as m:
        got = read_levels(m.path, fmt)
        for lv in range(LEVELS):
            same(got[lv], want[lv], "%s %s level %d" % (fmt, opts, lv))
        return oz.tree_files(m.path)


FORMATS = ("ome-zarr-0.4", "ome-zarr-0.5", "precomputed")
ALGS = ("mean", "nearest", "max", "min", "mode")


def all_formats_and_kernels(src, vol, formats=FORMATS):
    for alg in ALGS:
        want = pyramid(vol, alg)
        for fmt in formats:
            check_mount(src, want, fmt, {"algorithm": alg})


# --- cases ---------------------------------------------------------------------------------------

@S.case
def int16_tiff_every_kernel_and_format():
    vol = volume(np.int16)
    src = tiff_source(vol)
    with tifffile.TiffFile(os.path.join(src, "000.tif")) as t:
        oz.check(t.pages[0].sampleformat == 2, "fixture is not SampleFormat=2")
    all_formats_and_kernels(src, vol, formats=("ome-zarr-0.4", "ome-zarr-0.5"))
    rc, err, mounted = oz.try_mount(src, "format=precomputed")
    oz.check(rc != 0 and not mounted, "precomputed int16 was not refused")
    oz.check("int16" in err and "dtype=uint16,range=" in err, "refusal lacks the fix: %r" % err[-400:])


@S.case
def float32_tiff_every_kernel_and_format():
    vol = volume(np.float32)
    src = tiff_source(vol)
    with tifffile.TiffFile(os.path.join(src, "000.tif")) as t:
        oz.check(t.pages[0].sampleformat == 3 and t.pages[0].bitspersample == 32, "fixture is not float32")
    all_formats_and_kernels(src, vol)


@S.case
def uint32_tiff_every_kernel_and_format():
    vol = volume(np.uint32)
    all_formats_and_kernels(tiff_source(vol), vol)


@S.case
def uint64_tiff_and_zarr_big_endian():
    vol = volume(np.uint64)
    all_formats_and_kernels(tiff_source(vol), vol, formats=("ome-zarr-0.4",))
    src, want0 = zarr_source(vol, ">u8")
    all_formats_and_kernels(src, want0)


@S.case
def zarr_i2_f4_u4_both_byte_orders():
    for dt, stored in ((np.int16, "<i2"), (np.int16, ">i2"), (np.float32, ">f4"), (np.float32, "<f4"),
                       (np.uint32, ">u4"), (np.uint32, "<u4")):
        vol = volume(dt, seed=11)
        src, want0 = zarr_source(vol, stored)
        fmts = ("ome-zarr-0.4", "ome-zarr-0.5") if dt == np.int16 else FORMATS
        for alg in ("mean", "mode"):
            want = pyramid(want0, alg)
            for fmt in fmts:
                check_mount(src, want, fmt, {"algorithm": alg})


@S.case
def zarr3_sharded_sources_of_every_new_dtype():
    """zarr v3 sources (the tests' spec-based writer: sharded, big-endian bytes, crc32c) of int16,
    float32, uint32 and uint64 mount in every format that takes the type and equal numpy."""
    be = {"name": "bytes", "configuration": {"endian": "big"}}
    codecs = [{"name": "sharding_indexed", "configuration": {
        "chunk_shape": [4, 4, 8], "codecs": [be, {"name": "crc32c"}],
        "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
        "index_location": "end"}}]
    for dt in (np.int16, np.float32, np.uint32, np.uint64):
        vol = volume(dt, seed=13)
        d = oz.tmpdir("z3")
        zarr3_ref.write_array(d, vol, (8, 8, 16), codecs)
        fmts = ("ome-zarr-0.4", "ome-zarr-0.5") if dt == np.int16 else FORMATS
        for alg in ("mean", "max", "mode"):
            want = pyramid(vol, alg)
            for fmt in fmts:
                check_mount(d, want, fmt, {"algorithm": alg})


def linear_map(v, lo, hi, out_dtype):
    m = float(np.iinfo(out_dtype).max)
    x = v.astype(np.float64)
    with np.errstate(invalid="ignore"):
        y = np.rint((x - lo) * (m / (hi - lo)))
        y = np.where(np.isnan(x) | (x <= lo), 0, np.where(x >= hi, m, y))
    return y.astype(out_dtype)


def omero_window(mnt, fmt):
    if fmt == "ome-zarr-0.4":
        doc = oz.read_json(os.path.join(mnt, ".zattrs"))
    else:
        doc = oz.read_json(os.path.join(mnt, "zarr.json"))["attributes"]["ome"]
    return doc["omero"]["channels"][0]["window"]


@S.case
def dtype_uint8_range_on_float32_and_int16():
    for dt, lo, hi in ((np.float32, -7.5, 12.25), (np.int16, -1000, 20000)):
        vol = volume(dt, seed=3)
        src = tiff_source(vol)
        for out in (np.uint8, np.uint16):
            level0 = linear_map(vol, lo, hi, out)
            opts = {"dtype": np.dtype(out).name, "range": "%r:%r" % (lo, hi)}
            for fmt in ("ome-zarr-0.4", "ome-zarr-0.5"):
                check_mount(src, pyramid(level0, "mean"), fmt, dict(opts, algorithm="mean"))
            with oz.Mount(src, dict(opts, chunk=8, levels=LEVELS)) as m:
                w = omero_window(m.path, "ome-zarr-0.4")
                top = float(np.iinfo(out).max)
                oz.check(w == {"start": 0.0, "end": top, "min": 0.0, "max": top}, "omero.window %r" % (w,))
                ms = oz.read_json(os.path.join(m.path, ".zattrs"))["multiscales"][0]
                oz.check(ms["metadata"]["options"]["range"] == [lo, hi], "options.range %r" % ms["metadata"])


def auto_range(vol):
    """The README's range=auto sample: 8 z-slices at floor((2i+1) Z / 16), the centred box of at
    most 256 x 256 in each; 0.5th (lower) and 99.5th (higher) percentiles of the non-NaN values."""
    Z, Y, X = vol.shape
    zs = sorted(set((2 * i + 1) * Z // 16 for i in range(8)))
    ny, nx = min(Y, 256), min(X, 256)
    y0, x0 = (Y - ny) // 2, (X - nx) // 2
    v = np.concatenate([vol[z, y0:y0 + ny, x0:x0 + nx].ravel().astype(np.float64) for z in zs])
    v = v[~np.isnan(v)]
    lo = float(np.percentile(v, 0.5, method="lower"))
    hi = float(np.percentile(v, 99.5, method="higher"))
    return lo, (hi if hi > lo else lo + 1)


@S.case
def range_auto_maps_and_writes_omero_window():
    rng = np.random.default_rng(9)
    shape = (20, 300, 40)  # y larger than the 256 sample edge
    vol = (rng.normal(100.0, 30.0, size=shape)).astype(np.float32)
    vol[rng.random(shape) < 0.02] = np.nan
    vol[rng.random(shape) < 0.002] = 1e9  # outliers the percentiles cut off
    src = tiff_source(vol)
    lo, hi = auto_range(vol)
    oz.check(lo < 50 and hi > 150 and hi < 1e9, "fixture: auto range %r %r" % (lo, hi))
    level0 = linear_map(vol, lo, hi, np.uint8)
    want = pyramid(level0, "mean", levels=3)
    with oz.Mount(src, {"chunk": 16, "levels": 3, "dtype": "uint8", "range": "auto"}) as m:
        for lv in range(3):
            same(oz.read_level(m.path, lv, 3), want[lv], "range=auto level %d" % lv)
        ms = oz.read_json(os.path.join(m.path, ".zattrs"))["multiscales"][0]
        got = ms["metadata"]["options"]["range"]
        oz.check(got == [lo, hi], "range=auto gave %r, numpy %r" % (got, [lo, hi]))
    # range=auto alone: data as stored (float32), the window = the percentiles.
    for fmt in ("ome-zarr-0.4", "ome-zarr-0.5"):
        with oz.Mount(src, {"chunk": 16, "levels": 2, "range": "auto", "format": fmt}) as m:
            w = omero_window(m.path, fmt)
            fmax = float(np.finfo(np.float32).max)
            oz.check(w == {"start": lo, "end": hi, "min": -fmax, "max": fmax}, "%s omero.window %r" % (fmt, w))
            got = read_levels(m.path, fmt, 2)[0]
            same(got, vol, "%s range=auto alone: level 0 as stored" % fmt)


@S.case
def ranges_share_a_cache_without_mixing():
    # The linear map is part of the chunk cache key: a second mount with another range (or
    # none) on the same cache dir must not serve the first one's chunks.
    vol = volume(np.int16, seed=4)
    src = tiff_source(vol)
    cache = oz.tmpdir("cache")
    for opts, level0 in (({"dtype": "uint8", "range": "-100:100"}, linear_map(vol, -100, 100, np.uint8)),
                         ({"dtype": "uint8", "range": "-5:5"}, linear_map(vol, -5, 5, np.uint8)),
                         ({"dtype": "uint8"}, linear_map(vol, -32768, 32767, np.uint8)),
                         ({}, vol)):
        want = pyramid(level0, "mean")
        with oz.Mount(src, dict(opts, chunk=8, levels=LEVELS), cache=cache) as m:
            for lv in range(LEVELS):
                same(oz.read_level(m.path, lv, LEVELS), want[lv], "%s level %d (shared cache)" % (opts, lv))


@S.case
def multipage_float32_and_fortran_order_uint64_zarr():
    vol = volume(np.float32, seed=12)
    d = oz.tmpdir("mp")
    path = os.path.join(d, "stack.tif")
    tifffile.imwrite(path, vol, photometric="minisblack")  # one multi-page file, pages = z
    for alg in ("mean", "max"):
        check_mount(path, pyramid(vol, alg), "ome-zarr-0.4", {"algorithm": alg})
    vol = volume(np.uint64, seed=13)
    zd = oz.tmpdir("zf")
    want0 = oz.make_zarr(zd, vol, chunks=(4, 8, 8), dtype=">u8", compressor=None, order="F")
    check_mount(zd, pyramid(want0, "mode"), "ome-zarr-0.5", {"algorithm": "mode"})


@S.case
def materialize_equals_mount():
    vol = volume(np.float32, seed=8)
    src = tiff_source(vol)
    for fmt, alg in (("ome-zarr-0.4", "mode"), ("ome-zarr-0.5", "mean"), ("precomputed", "min")):
        opts = {"chunk": 8, "levels": LEVELS, "format": fmt, "algorithm": alg}
        mounted = check_mount(src, pyramid(vol, alg), fmt, {"algorithm": alg})
        dest = os.path.join(oz.tmpdir("mat"), "out")
        oz.materialize(src, dest, opts)
        written = oz.tree_files(dest)
        oz.check(set(written) == set(mounted), "%s: materialize files differ from the mount's" % fmt)
        for k in mounted:
            oz.check(written[k] == mounted[k], "%s: %s differs between materialize and mount" % (fmt, k))


@S.case
def refusals_name_the_fix():
    d = oz.tmpdir("f64")
    for z in range(2):
        tifffile.imwrite(os.path.join(d, "%d.tif" % z), np.zeros((4, 5), np.float64), photometric="minisblack",
                         metadata=None)
    rc, err, mounted = oz.try_mount(d, "")
    oz.check(rc != 0 and not mounted, "float64 mounted")
    oz.check("0.tif" in err and "gdal_translate -ot Float32" in err, "float64 refusal: %r" % err[-400:])
    src = tiff_source(volume(np.float32))
    for opts, words in (("bytes=1", ["bytes=1", "dtype=uint8"]),
                        ("dtype=uint8", ["range=LO:HI"]),
                        ("range=5:1", ["LO < HI"]),
                        ("algorithm=median", ["mean, nearest, max, min, mode"]),
                        ("format=precomputed,compression=jpeg", ["float32", "dtype=uint8"])):
        rc, err, mounted = oz.try_mount(src, opts)
        oz.check(rc != 0 and not mounted, "%s was not refused" % opts)
        for w in words:
            oz.check(w in err, "%s: stderr lacks %r: %r" % (opts, w, err[-400:]))


if __name__ == "__main__":
    S.main()
