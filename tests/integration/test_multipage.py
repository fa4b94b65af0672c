#!/usr/bin/python3
"""Multi-page TIFF sources: one file (or a directory holding only it) whose full-resolution
pages are the z slices; ImageJ hyperstacks, OME-TIFF and tifffile shaped files with -o channel=
and -o t=; ImageJ's one-IFD layout of big stacks; -o page= for slice files with several pages;
files written by tifffile, tiffcp and ImageMagick. Every level is compared with numpy."""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oztest as oz  # noqa: E402
import numpy as np  # noqa: E402
import tifffile  # noqa: E402

S = oz.Suite(__file__)
SHAPE = (9, 40, 50)
CHUNK = 16
LEVELS = 3


def mount_and_compare(source, vol, options=None, cache=None):
    want = oz.reference_pyramid(vol, LEVELS, "mean")
    opts = {"chunk": CHUNK, "levels": LEVELS}
    opts.update(options or {})
    with oz.Mount(source, opts, cache=cache) as m:
        ck = oz.Checks()
        for lvl in range(LEVELS):
            ck.run("level %d" % lvl, lambda lvl=lvl: oz.assert_array_equal(
                oz.read_level(m.path, lvl, LEVELS), want[lvl], "data"))
        ck.done()


def expect_refused(source, options, mention):
    rc, err, mounted = oz.try_mount(source, dict({"chunk": CHUNK}, **(options or {})))
    oz.check(rc != 0 and not mounted, "mount was not refused (exit %r, mounted %s)" % (rc, mounted))
    low = err.lower()
    for m in mention:
        oz.check(m.lower() in low, "stderr does not mention %r: %r" % (m, err.strip()[-600:]))
    return err


def full_pages(path):
    """The full-resolution pages of `path` decoded by libtiff (independent of tifffile)."""
    out = []
    with tifffile.TiffFile(path) as t:
        kinds = [p.subfiletype for p in t.pages]
    for i, k in enumerate(kinds):
        if not (k & 1):
            out.append(oz.libtiff_read(path, i))
    return np.stack(out)


def tool(name):
    p = shutil.which(name, path="/usr/bin:/bin")
    if not p:
        raise oz.Skip("%s is not installed (apt-get install -y %s)" % (
            name, {"tiffcp": "libtiff-tools", "convert": "imagemagick", "gm": "graphicsmagick"}[name]))
    return p


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    oz.check(r.returncode == 0, "%s failed: %s" % (" ".join(cmd), r.stderr.strip()[-400:]))


# ------------------------------------------------------------------------------ plain stacks


@S.case
def one_file_as_source():
    d = oz.tmpdir("mp")
    vol = oz.make_volume(SHAPE, np.uint16, seed=1)
    p = os.path.join(d, "stack.tif")
    tifffile.imwrite(p, vol, photometric="minisblack")
    oz.assert_array_equal(full_pages(p), vol, "fixture")
    mount_and_compare(p, vol)


@S.case
def directory_holding_one_multipage_file():
    """The directory form (as test_errors used to refuse): the only TIFF, any name."""
    d = oz.tmpdir("mp")
    vol = oz.make_volume(SHAPE, np.uint8, seed=2)
    tifffile.imwrite(os.path.join(d, "0000.tif"), vol, photometric="minisblack")
    with open(os.path.join(d, "notes.txt"), "w") as f:
        f.write("not a TIFF\n")
    mount_and_compare(d, vol)


@S.case
def compressed_tiled_pages_with_reduced_resolution_pages_between():
    """deflate tiles with a predictor; a reduced-resolution page after every other page is
    skipped (NewSubfileType=1), so z follows the full-resolution pages only."""
    d = oz.tmpdir("mp")
    vol = oz.make_volume(SHAPE, np.uint16, seed=3)
    p = os.path.join(d, "stack.tif")
    with tifffile.TiffWriter(p, bigtiff=True) as w:
        for z in range(SHAPE[0]):
            w.write(vol[z], photometric="minisblack", compression="zlib", predictor=True, tile=(16, 32))
            if z % 2 == 0:
                w.write(vol[z][::2, ::2].copy(), photometric="minisblack", subfiletype=1)
    oz.assert_array_equal(full_pages(p), vol, "fixture")
    mount_and_compare(p, vol)


@S.case
def big_endian_strips():
    d = oz.tmpdir("mp")
    vol = oz.make_volume(SHAPE, np.uint16, seed=4)
    p = os.path.join(d, "stack.tif")
    tifffile.imwrite(p, vol, byteorder=">", rowsperstrip=7, photometric="minisblack")
    mount_and_compare(p, vol)


@S.case
def pages_of_different_shapes():
    """A page that differs from the others is named; bad_slices=zero reads it as zeros."""
    d = oz.tmpdir("mp")
    vol = oz.make_volume(SHAPE, np.uint16, seed=5)
    p = os.path.join(d, "stack.tif")
    with tifffile.TiffWriter(p) as w:
        for z in range(SHAPE[0]):
            w.write(vol[z][:, :-1].copy() if z == 3 else vol[z], photometric="minisblack", contiguous=False)
    expect_refused(p, {}, ["page 3 of stack.tif", "49x40", "50x40", "bad_slices=zero"])
    want = vol.copy()
    want[3] = 0
    mount_and_compare(p, want, {"bad_slices": "zero"})


@S.case
def page_option_and_source_file():
    d = oz.tmpdir("mp")
    p = os.path.join(d, "stack.tif")
    tifffile.imwrite(p, oz.make_volume((3, 20, 30), np.uint16, seed=6), photometric="minisblack")
    expect_refused(p, {"page": 1}, ["page=1", "slice file", "window="])
    expect_refused(p, {"channel": 1}, ["channel=1", "out of range", "one channel"])


# ------------------------------------------------------------------------------ hyperstacks


def hyperstack(shape_tzc=(2, 5, 3), yx=(30, 40), seed=7):
    t, z, c = shape_tzc
    return oz.make_volume((t * z * c,) + yx, np.uint16, seed=seed).reshape((t, z, c) + yx)


@S.case
def imagej_hyperstack_channel_and_time():
    d = oz.tmpdir("ij")
    v = hyperstack()
    p = os.path.join(d, "hyper.tif")
    tifffile.imwrite(p, v, imagej=True, metadata={"axes": "TZCYX"})
    err = expect_refused(p, {}, ["hyper.tif", "ImageJ", "channels=3", "slices=5", "frames=2",
                                 "channel=0..2", "t=0..1"])
    oz.check("bad_slices" not in err, "the refusal suggests bad_slices: %r" % err)
    expect_refused(p, {"channel": 1}, ["t=0..1"])
    expect_refused(p, {"channel": 3, "t": 0}, ["channel=3", "out of range", "channel=0..2"])
    expect_refused(p, {"channel": 0, "t": 2}, ["t=2", "out of range"])
    for c, t in ((0, 0), (2, 1), (1, 0)):
        mount_and_compare(p, v[t, :, c], {"channel": c, "t": t})


@S.case
def imagej_channels_only_in_a_directory():
    d = oz.tmpdir("ij")
    v = hyperstack((1, 6, 2), seed=8)
    tifffile.imwrite(os.path.join(d, "cells.tif"), v[0], imagej=True, metadata={"axes": "ZCYX"})
    expect_refused(d, {}, ["cells.tif", "channels=2", "channel=0..1"])
    mount_and_compare(d, v[0, :, 1], {"channel": 1})
    expect_refused(d, {"channel": 1, "t": 1}, ["t=1", "out of range", "one time point"])


@S.case
def imagej_one_ifd_layout_of_big_stacks():
    """ImageJ (and tifffile truncate=True) write one IFD and the planes back to back."""
    d = oz.tmpdir("ij")
    v = hyperstack((1, 7, 2), seed=9)
    p = os.path.join(d, "big.tif")
    with tifffile.TiffWriter(p, imagej=True) as w:
        w.write(v[0], metadata={"axes": "ZCYX"}, truncate=True)
    with tifffile.TiffFile(p) as t:
        oz.check(len(t.pages) == 1, "fixture has %d IFDs, expected one" % len(t.pages))
    oz.assert_array_equal(tifffile.imread(p), v[0], "fixture")
    expect_refused(p, {}, ["channels=2", "channel=0..1"])
    mount_and_compare(p, v[0, :, 0], {"channel": 0})
    mount_and_compare(p, v[0, :, 1], {"channel": 1})


@S.case
def imagej_description_that_lies_about_the_page_count():
    d = oz.tmpdir("ij")
    p = os.path.join(d, "lie.tif")
    vol = oz.make_volume((5, 20, 30), np.uint16, seed=10)
    desc = "ImageJ=1.54f\nimages=6\nslices=6\n"
    tifffile.imwrite(p, vol, description=desc, metadata=None, photometric="minisblack")
    expect_refused(p, {}, ["lie.tif", "6 pages", "5 full-resolution pages"])


@S.case
def ome_tiff_both_dimension_orders():
    for axes in ("TZCYX", "TCZYX"):
        d = oz.tmpdir("ome")
        v = hyperstack((2, 4, 3), seed=11)
        data = v if axes == "TZCYX" else v.transpose(0, 2, 1, 3, 4).copy()
        p = os.path.join(d, "cells.ome.tif")
        tifffile.imwrite(p, data, ome=True, metadata={"axes": axes})
        with tifffile.TiffFile(p) as t:
            order = t.ome_metadata.split('DimensionOrder="')[1][:5]
        oz.check(order == ("XYCZT" if axes == "TZCYX" else "XYZCT"), "fixture order %s" % order)
        expect_refused(p, {}, ["OME-TIFF", "SizeC=3", "SizeZ=4", "SizeT=2", "DimensionOrder " + order,
                               "channel=0..2", "t=0..1"])
        mount_and_compare(p, v[1, :, 2], {"channel": 2, "t": 1})
        mount_and_compare(p, v[0, :, 0], {"channel": 0, "t": 0})


@S.case
def ome_tiff_with_several_images_refused():
    d = oz.tmpdir("ome")
    p = os.path.join(d, "series.ome.tif")
    with tifffile.TiffWriter(p, ome=True) as w:
        w.write(oz.make_volume((3, 20, 30), np.uint16, seed=12), metadata={"axes": "ZYX"})
        w.write(oz.make_volume((3, 20, 30), np.uint16, seed=13), metadata={"axes": "ZYX"})
    expect_refused(p, {}, ["series.ome.tif", "2 images", "series"])


@S.case
def tifffile_shaped_time_series():
    d = oz.tmpdir("sh")
    v = oz.make_volume((2 * 5, 20, 30), np.uint16, seed=14).reshape(2, 5, 20, 30)
    p = os.path.join(d, "ts.tif")
    tifffile.imwrite(p, v, metadata={"axes": "TZYX"}, photometric="minisblack")
    expect_refused(p, {}, ["ts.tif", "shape [2, 5, 20, 30]", "TZYX", "t=0..1"])
    mount_and_compare(p, v[1], {"t": 1})
    p2 = os.path.join(d, "unnamed.tif")
    tifffile.imwrite(p2, v, photometric="minisblack")
    expect_refused(p2, {}, ["unnamed.tif", "more than one stack axis", "imagej=True"])


@S.case
def channel_choice_is_part_of_the_cache_key():
    """Two mounts of one file with different channels share a cache dir: no stale chunks."""
    d = oz.tmpdir("ij")
    v = hyperstack((1, 5, 2), seed=15)
    p = os.path.join(d, "c.tif")
    tifffile.imwrite(p, v[0], imagej=True, metadata={"axes": "ZCYX"})
    cache = oz.tmpdir("cache")
    mount_and_compare(p, v[0, :, 0], {"channel": 0}, cache=cache)
    mount_and_compare(p, v[0, :, 1], {"channel": 1}, cache=cache)


@S.case
def rewritten_file_is_eio_never_mixed():
    d = oz.tmpdir("mp")
    vol = oz.make_volume(SHAPE, np.uint16, seed=16)
    p = os.path.join(d, "stack.tif")
    tifffile.imwrite(p, vol, photometric="minisblack")
    with oz.Mount(p, {"chunk": CHUNK, "levels": 1}) as m:
        os.utime(p, (1, 1))
        try:
            oz.read_level(m.path, 0, 1)
        except OSError as e:
            oz.check(e.errno == 5, "errno %s, expected EIO" % e.errno)
        else:
            raise oz.CheckFailed("a read after the file changed succeeded")


# ------------------------------------------------------------------------------ slice files


@S.case
def slice_files_with_several_pages_need_page():
    d = oz.tmpdir("pg")
    vol = oz.make_volume((4, 30, 40), np.uint16, seed=17)
    for z in range(4):
        with tifffile.TiffWriter(os.path.join(d, "%04d.tif" % z)) as w:
            w.write(vol[z] // 2, photometric="minisblack")
            w.write(vol[z][::2, ::2].copy(), photometric="minisblack", subfiletype=1)
            w.write(vol[z], photometric="minisblack", compression="zlib")
    expect_refused(d, {}, ["0000.tif", "2 full-resolution pages", "page=N", "tiffsplit"])
    mount_and_compare(d, vol, {"page": 1})
    mount_and_compare(d, vol // 2, {"page": 0})
    expect_refused(d, {"page": 2}, ["0000.tif", "has 2 full-resolution pages", "no page 2"])
    expect_refused(d, {"channel": 0}, ["channel=0", "directory of slice files"])


# ------------------------------------------------------------------------------ other writers


def slices_to_files(d, vol):
    names = []
    for z in range(vol.shape[0]):
        n = os.path.join(d, "s%02d.tif" % z)
        tifffile.imwrite(n, vol[z], photometric="minisblack")
        names.append(n)
    return names


@S.case
def tiffcp_multipage_every_codec():
    """tiffcp joins single-page files into one; each codec libtiff writes here. JPEG is lossy
    (8-bit only): its reference is libtiff's own decoding of the file."""
    tiffcp = tool("tiffcp")
    for codec, dtype in (("none", np.uint16), ("lzw:2", np.uint16), ("zip:2", np.uint16),
                         ("zstd", np.uint16), ("lzma", np.uint16), ("packbits", np.uint8),
                         ("jpeg", np.uint8), ("lerc", np.uint16)):
        d = oz.tmpdir("cp")
        vol = oz.make_volume((5, 40, 48), dtype, seed=18)
        out = os.path.join(d, "joined.tif")
        run([tiffcp, "-s", "-r", "8", "-c", codec] + slices_to_files(d, vol) + [out])
        if codec == "lerc":
            # tiffcp's tiled/stripped LERC output, lossless by default
            pass
        ref = full_pages(out)
        if codec != "jpeg":
            oz.assert_array_equal(ref, vol, "fixture (%s)" % codec)
        try:
            mount_and_compare(out, ref)
        except oz.CheckFailed as e:
            raise oz.CheckFailed("%s: %s" % (codec, e))
    # tiles
    d = oz.tmpdir("cp")
    vol = oz.make_volume((5, 40, 48), np.uint16, seed=19)
    out = os.path.join(d, "tiled.tif")
    run([tiffcp, "-t", "-w", "16", "-l", "16", "-c", "zip"] + slices_to_files(d, vol) + [out])
    oz.assert_array_equal(full_pages(out), vol, "fixture (tiles)")
    mount_and_compare(out, vol)


@S.case
def imagemagick_multipage():
    convert = tool("convert")
    d = oz.tmpdir("im")
    vol = oz.make_volume((5, 40, 48), np.uint16, seed=20)
    out = os.path.join(d, "im.tif")
    run([convert] + slices_to_files(d, vol) + ["-compress", "LZW", "-depth", "16", out])
    ref = full_pages(out)
    oz.assert_array_equal(ref, vol, "fixture written by ImageMagick")
    mount_and_compare(out, vol)


if __name__ == "__main__":
    S.main()
