#!/usr/bin/python3
"""TIFF layouts and codecs: each variant is written, verified with libtiff (and tifffile where it
can decode), mounted (9x70x90, chunk 16, levels 3, mean) and every level compared."""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oztest as oz  # noqa: E402
import numpy as np  # noqa: E402
import tifffile  # noqa: E402

S = oz.Suite(__file__)
SHAPE = (9, 70, 90)
CHUNK = 16
LEVELS = 3

VARIANTS = [
    ("strips_rps1", np.uint16, dict(rowsperstrip=1)),
    ("strips_rps7", np.uint16, dict(rowsperstrip=7)),
    ("strips_whole", np.uint16, dict(rowsperstrip=70)),
    ("strips_rps7_deflate", np.uint16, dict(rowsperstrip=7, compression="zlib")),
    ("tiles_32x32", np.uint16, dict(tile=(32, 32))),
    ("tiles_16x48", np.uint16, dict(tile=(16, 48))),
    ("tiles_16x48_deflate", np.uint16, dict(tile=(16, 48), compression="zlib")),
    ("deflate", np.uint16, dict(compression="zlib")),
    ("adobe_deflate", np.uint16, dict(compression="adobe_deflate")),
    ("deflate_predictor", np.uint16, dict(compression="zlib", predictor=True)),
    ("lzw", np.uint16, dict(compression="lzw")),
    ("lzw_predictor", np.uint16, dict(compression="lzw", predictor=True)),
    ("lzw_tiles_predictor", np.uint16, dict(compression="lzw", tile=(32, 32), predictor=True)),
    ("packbits", np.uint16, dict(compression="packbits")),
    ("packbits_rps7", np.uint16, dict(compression="packbits", rowsperstrip=7)),
    ("zstd", np.uint16, dict(compression="zstd")),
    ("zstd_predictor", np.uint16, dict(compression="zstd", predictor=True)),
    ("bigtiff", np.uint16, dict(bigtiff=True)),
    ("bigtiff_tiles_deflate", np.uint16, dict(bigtiff=True, tile=(32, 32), compression="zlib")),
    ("bigendian", np.uint16, dict(byteorder=">")),
    ("bigendian_deflate_predictor", np.uint16,
     dict(byteorder=">", compression="zlib", predictor=True)),
    ("bigendian_lzw_tiles", np.uint16, dict(byteorder=">", compression="lzw", tile=(16, 48))),
    ("uint8_strips_rps7", np.uint8, dict(rowsperstrip=7)),
    ("uint8_lzw_predictor", np.uint8, dict(compression="lzw", predictor=True)),
    ("uint8_tiles_deflate", np.uint8, dict(tile=(32, 32), compression="zlib")),
    ("uint8_bigendian_packbits", np.uint8, dict(byteorder=">", compression="packbits")),
]


def _mount_and_compare(d, vol, options=None):
    want = oz.reference_pyramid(vol, LEVELS, "mean")
    opts = {"chunk": CHUNK, "levels": LEVELS}
    opts.update(options or {})
    with oz.Mount(d, opts) as m:
        ck = oz.Checks()
        for lvl in range(LEVELS):
            ck.run("level %d" % lvl, lambda lvl=lvl: oz.assert_array_equal(
                oz.read_level(m.path, lvl, LEVELS), want[lvl], "data"))
        ck.done()


def _variant(name, dtype, kw, seed):
    def run():
        d = oz.tmpdir("src-" + name)
        vol = oz.make_stack(d, SHAPE, dtype, seed=seed, **kw)
        oz.verify_stack(d, vol)  # the fixture itself is right (else: harness problem)
        _mount_and_compare(d, vol)
    return run


for _i, (_n, _dt, _kw) in enumerate(VARIANTS):
    S.add(_n, _variant(_n, _dt, _kw, seed=100 + _i))


@S.case
def mixed_layouts_per_slice():
    """Every slice a different layout/codec/byte order (a real stack can be that messy)."""
    d = oz.tmpdir("src-mixed")
    vol = oz.make_volume(SHAPE, np.uint16, seed=7)
    kws = [dict(), dict(compression="lzw"), dict(tile=(16, 48), compression="zlib"),
           dict(byteorder=">", rowsperstrip=3), dict(bigtiff=True, compression="packbits"),
           dict(compression="zstd", predictor=True), dict(tile=(32, 32)),
           dict(byteorder=">", compression="zlib", predictor=True), dict(rowsperstrip=1)]
    for z in range(SHAPE[0]):
        oz.write_slice(os.path.join(d, "%d.tif" % z), vol[z], **kws[z])
    oz.verify_stack(d, vol)
    _mount_and_compare(d, vol)


@S.case
def names_case_padding_gaps_and_strays():
    """.TIF/.tiff/.TIFF, zero padding, missing z (zero slices, also the first), non-slice files
    ignored."""
    d = oz.tmpdir("src-names")
    exts = [".TIF", ".tiff", ".tif", ".TIFF", ".Tif"]

    def name(z):
        return ("%03d" % z if z % 2 else "%d" % z) + exts[z % len(exts)]
    vol = oz.make_stack(d, SHAPE, np.uint16, seed=8, names=name, gaps=(0, 4, 5),
                        extra_files=[("notes.txt", b"not a slice\n"),
                                     ("thumbnail.png", b"\x89PNG\r\n")])
    oz.check(not vol[0].any(), "slice 0 is a gap")
    oz.verify_stack(d, vol, names=name, gaps=(0, 4, 5))
    _mount_and_compare(d, vol)


def _sparse_entries(path):
    with tifffile.TiffFile(path) as t:
        p = t.pages[0]
        return [i for i, (o, n) in enumerate(zip(p.dataoffsets, p.databytecounts)) if o == 0 and n == 0]


@S.case
def sparse_tiles_and_strips_written_by_gdal():
    """GDAL SPARSE_OK=TRUE leaves all-zero tiles/strips out (offset 0, byte count 0): they read as
    zeros, and bad_slices=zero does not take such a slice for a bad one."""
    gdal = shutil.which("gdal_translate")
    if not gdal:
        raise oz.Skip("gdal_translate is not installed (apt-get install -y gdal-bin)")
    d = oz.tmpdir("src-sparse")
    vol = oz.make_volume(SHAPE, np.uint16, seed=41)
    vol[:, :15, :] = 0  # whole strips of zeros too
    vol[6] = 0          # a blank slice: nothing but sparse blocks
    tmp = oz.tmpdir("gdal-in")
    for z in range(SHAPE[0]):
        src = os.path.join(tmp, "%d.tif" % z)
        oz.write_slice(src, vol[z])
        co = (["-co", "TILED=YES", "-co", "BLOCKXSIZE=16", "-co", "BLOCKYSIZE=16", "-co", "COMPRESS=DEFLATE"]
              if z % 2 == 0 else ["-co", "BLOCKYSIZE=5"] + (["-co", "COMPRESS=DEFLATE"] if z % 3 == 0 else []))
        r = subprocess.run([gdal, "-q", "-co", "SPARSE_OK=TRUE"] + co + [src, os.path.join(d, "%d.tif" % z)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        oz.check(r.returncode == 0, "gdal_translate failed: %s" % r.stderr[-300:])
    sparse = {z: _sparse_entries(os.path.join(d, "%d.tif" % z)) for z in range(SHAPE[0])}
    oz.check(all(sparse[z] for z in range(SHAPE[0])), "GDAL wrote no sparse blocks in some slice: %s" % sparse)
    for z in range(SHAPE[0]):
        oz.assert_array_equal(tifffile.imread(os.path.join(d, "%d.tif" % z)), vol[z], "fixture z=%d" % z)
    _mount_and_compare(d, vol)
    _mount_and_compare(d, vol, {"bad_slices": "zero"})


@S.case
def sparse_tile_patched_into_a_tifffile_stack():
    """Without GDAL: tifffile writes tiles, then one tile's TileOffsets/TileByteCounts entries are
    set to 0 by hand; that tile (real data before) reads as zeros."""
    d = oz.tmpdir("src-sparse2")
    vol = oz.make_stack(d, SHAPE, np.uint16, seed=42, tile=(32, 32), compression="zlib")
    p = os.path.join(d, "4.tif")
    with tifffile.TiffFile(p) as t:
        tags = t.pages[0].tags
        entries = [(tags[n].valueoffset, {3: 2, 4: 4, 16: 8}[int(tags[n].dtype)])
                   for n in ("TileOffsets", "TileByteCounts")]
        oz.check(tags["TileOffsets"].count == 9, "expected 3x3 tiles")
    tile = 8  # the last tile: rows 64..69, x 64..89
    with open(p, "r+b") as f:
        for at, size in entries:  # arrays (9 entries never fit in the IFD entry itself)
            f.seek(at + tile * size)
            f.write(bytes(size))
    oz.check(_sparse_entries(p) == [tile], "patch failed: %s" % _sparse_entries(p))
    want = vol.copy()
    want[4, 64:, 64:] = 0
    oz.check(vol[4, 64:, 64:].any(), "the patched tile held data")
    _mount_and_compare(d, want)
    _mount_and_compare(d, want, {"bad_slices": "zero"})


@S.case
def trailing_gap_is_not_invented():
    """The highest z present defines the extent: z = 0..max."""
    d = oz.tmpdir("src-extent")
    vol = oz.make_stack(d, (5, 40, 50), np.uint16, seed=9, gaps=(1,))
    with oz.Mount(d, {"chunk": CHUNK, "levels": 2}) as m:
        oz.assert_array_equal(oz.read_level(m.path, 0, 2), vol, "level 0")


if __name__ == "__main__":
    S.main()
