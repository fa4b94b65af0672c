#!/usr/bin/python3
"""Pixel formats of TIFF slices: palettes whose colour map is the grey identity ramp are served as
their indices (tifffile- and GraphicsMagick-written); every other refused format names the field,
and the conversion its message gives is run here and the result mounted and compared."""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oztest as oz  # noqa: E402
import numpy as np  # noqa: E402
import tifffile  # noqa: E402

S = oz.Suite(__file__)
SHAPE = (4, 32, 40)
OPTS = {"chunk": 16, "levels": 2}


def tool(name):
    p = shutil.which(name, path="/usr/bin:/bin")
    if not p:
        raise oz.Skip("%s is not installed (apt-get install -y %s)" % (
            name, {"convert": "imagemagick", "gm": "graphicsmagick", "tiffset": "libtiff-tools"}[name]))
    return p


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    oz.check(r.returncode == 0, "%s failed: %s" % (" ".join(cmd), r.stderr.strip()[-400:]))


def page(path):
    with tifffile.TiffFile(path) as t:
        return t.pages[0].asarray()


def mount_and_compare(d, vol, options=None):
    levels = OPTS["levels"]
    want = oz.reference_pyramid(vol, levels, "mean")
    with oz.Mount(d, dict(OPTS, **(options or {}))) as m:
        for lvl in range(levels):
            oz.assert_array_equal(oz.read_level(m.path, lvl, levels), want[lvl], "level %d" % lvl)


def refused(d, mention):
    rc, err, mounted = oz.try_mount(d, OPTS)
    oz.check(rc != 0 and not mounted, "mount was not refused (exit %r)" % (rc,))
    for m in mention:
        oz.check(m.lower() in err.lower(), "stderr does not mention %r: %r" % (m, err.strip()[-600:]))
    return err


def write_each(d, planes, **kw):
    for z, p in enumerate(planes):
        tifffile.imwrite(os.path.join(d, "%d.tif" % z), p, metadata=None, **kw)


def convert_each(d, out, cmd):
    """Runs cmd (with IN and OUT) on every slice of d into the directory out."""
    os.makedirs(out, exist_ok=True)
    for n in sorted(os.listdir(d)):
        run([os.path.join(d, n) if a == "IN" else os.path.join(out, n) if a == "OUT" else a for a in cmd])


# ------------------------------------------------------------------------------ palettes


@S.case
def palette_grey_ramp_8_and_16_bit_tifffile():
    for dtype, ramp in ((np.uint8, np.arange(256, dtype=np.uint16) * 257),
                        (np.uint16, np.arange(65536, dtype=np.uint32).astype(np.uint16))):
        d = oz.tmpdir("pal")
        vol = oz.make_volume(SHAPE, dtype, seed=1)
        write_each(d, vol, photometric="palette", colormap=np.stack([ramp, ramp, ramp]))
        with tifffile.TiffFile(os.path.join(d, "0.tif")) as t:
            oz.check(int(t.pages[0].photometric) == 3, "fixture is not a palette image")
        mount_and_compare(d, vol)


@S.case
def palette_written_by_graphicsmagick():
    """gm -type Palette of a grey image that uses all 256 levels writes the i*257 ramp."""
    gm = tool("gm")
    d, src = oz.tmpdir("gm"), oz.tmpdir("grey")
    rng = np.random.default_rng(2)
    vol = np.stack([rng.permutation(np.tile(np.arange(256, dtype=np.uint8), 5)).reshape(32, 40)
                    for _ in range(SHAPE[0])])
    write_each(src, vol, photometric="minisblack")
    convert_each(src, d, [gm, "convert", "IN", "-type", "Palette", "OUT"])
    with tifffile.TiffFile(os.path.join(d, "0.tif")) as t:
        p = t.pages[0]
        oz.check(int(p.photometric) == 3, "GraphicsMagick wrote photometric %s" % p.photometric)
    mount_and_compare(d, vol)


@S.case
def colour_palette_refused_and_its_fixes_work():
    convert = tool("convert")
    d = oz.tmpdir("cpal")
    vol = oz.make_volume(SHAPE, np.uint8, seed=3)
    i = np.arange(256, dtype=np.uint16)
    write_each(d, vol, photometric="palette", colormap=np.stack([i * 257, i * 128, 255 - i]))
    refused(d, ["0.tif", "Photometric=3 (palette)", "grey identity ramp", "entry 0 is R,G,B = 0,0,255",
                "convert IN -colorspace Gray OUT", "imwrite(OUT, imread(IN))"])
    # ImageMagick: luminance of the colours.
    grey = oz.tmpdir("cpal-grey")
    convert_each(d, grey, [convert, "IN", "-colorspace", "Gray", "OUT"])
    mount_and_compare(grey, np.stack([page(os.path.join(grey, "%d.tif" % z)) for z in range(SHAPE[0])]))
    # GraphicsMagick, when installed.
    if shutil.which("gm", path="/usr/bin:/bin"):
        gmgrey = oz.tmpdir("cpal-gm")
        convert_each(d, gmgrey, ["/usr/bin/gm", "convert", "IN", "-type", "Grayscale", "-depth", "8", "OUT"])
        mount_and_compare(gmgrey, np.stack([page(os.path.join(gmgrey, "%d.tif" % z)) for z in range(SHAPE[0])]))
    # tifffile: the indices.
    idx = oz.tmpdir("cpal-idx")
    for z in range(SHAPE[0]):
        tifffile.imwrite(os.path.join(idx, "%d.tif" % z), tifffile.imread(os.path.join(d, "%d.tif" % z)))
    mount_and_compare(idx, vol)


@S.case
def imagemagick_palette_is_not_the_ramp():
    """ImageMagick's -type Palette orders its colour map otherwise: refused, not misread."""
    convert = tool("convert")
    src, d = oz.tmpdir("grey"), oz.tmpdir("impal")
    write_each(src, oz.make_volume(SHAPE, np.uint8, seed=4), photometric="minisblack")
    convert_each(src, d, [convert, "IN", "-type", "Palette", "OUT"])
    refused(d, ["palette", "grey identity ramp"])


# ------------------------------------------------------------------------------ other refusals


@S.case
def rgb_refused_and_one_channel_served():
    convert = tool("convert")
    d = oz.tmpdir("rgb")
    rgb = oz.make_volume((SHAPE[0] * 3,) + SHAPE[1:], np.uint16, seed=5).reshape((SHAPE[0], 3) + SHAPE[1:])
    rgb = np.ascontiguousarray(rgb.transpose(0, 2, 3, 1))
    write_each(d, rgb, photometric="rgb")
    refused(d, ["0.tif", "SamplesPerPixel=3 (RGB)", "convert IN -channel G -separate OUT", "imread(IN)[..., 1]"])
    g = oz.tmpdir("rgb-g")
    convert_each(d, g, [convert, "IN", "-channel", "G", "-separate", "OUT"])
    mount_and_compare(g, rgb[..., 1])


@S.case
def grey_alpha_refused_and_alpha_dropped():
    convert = tool("convert")
    d = oz.tmpdir("ga")
    grey = oz.make_volume(SHAPE, np.uint8, seed=6)
    write_each(d, np.stack([grey, np.full_like(grey, 200)], -1), photometric="minisblack",
               extrasamples=["unassalpha"])
    refused(d, ["0.tif", "grey + ExtraSamples alpha", "convert IN -alpha off OUT"])
    out = oz.tmpdir("ga-off")
    convert_each(d, out, [convert, "IN", "-alpha", "off", "OUT"])
    mount_and_compare(out, grey)


@S.case
def min_is_white_refused_and_both_fixes_work():
    convert, tiffset = tool("convert"), tool("tiffset")
    d = oz.tmpdir("white")
    vol = oz.make_volume(SHAPE, np.uint16, seed=7)
    write_each(d, vol, photometric="miniswhite")
    refused(d, ["0.tif", "MinIsWhite", "convert IN OUT", "tiffset -s 262 1 IN"])
    shown = oz.tmpdir("white-shown")
    convert_each(d, shown, [convert, "IN", "OUT"])
    mount_and_compare(shown, 65535 - vol)
    for n in os.listdir(d):
        run([tiffset, "-s", "262", "1", os.path.join(d, n)])
    mount_and_compare(d, vol)


@S.case
def bilevel_refused_and_depth_8_served():
    convert = tool("convert")
    d = oz.tmpdir("bits1")
    vol = oz.make_volume(SHAPE, np.uint8, seed=8) > 100
    write_each(d, vol, photometric="minisblack")
    with tifffile.TiffFile(os.path.join(d, "0.tif")) as t:
        oz.check(t.pages[0].bitspersample == 1, "fixture is not 1-bit")
    refused(d, ["0.tif", "BitsPerSample=1", "convert IN -depth 8 OUT"])
    out = oz.tmpdir("bits8")
    convert_each(d, out, [convert, "IN", "-depth", "8", "OUT"])
    mount_and_compare(out, vol.astype(np.uint8) * 255)


@S.case
def float64_refused_and_its_float32_recipe_works():
    d = oz.tmpdir("f64")
    vol = oz.make_volume(SHAPE, np.uint16, seed=9).astype(np.float64) / 7.0 - 100.0
    write_each(d, vol, photometric="minisblack")
    refused(d, ["0.tif", "SampleFormat=3 (floating point, 64 bits", "gdal_translate -ot Float32",
                ".astype('float32')"])
    # The message's numpy recipe; float32 is served as it is (tests/integration/test_dtypes.py
    # checks its pyramid).
    out = oz.tmpdir("f64-f32")
    for z in range(SHAPE[0]):
        tifffile.imwrite(os.path.join(out, "%d.tif" % z),
                         tifffile.imread(os.path.join(d, "%d.tif" % z)).astype("float32"))
    with oz.Mount(out, OPTS) as m:
        oz.assert_array_equal(oz.read_level(m.path, 0, OPTS["levels"]), vol.astype(np.float32), "level 0")


if __name__ == "__main__":
    S.main()
