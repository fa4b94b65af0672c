#!/usr/bin/python3
"""Volume grids (the older Vesuvius layout): a directory of cell_yxz_YYY_XXX_ZZZ.tif cells,
1-based indices, each cell a multi-page TIFF covering [(i-1)*edge, i*edge) on each axis. The cells
are written by tifffile (as the published grids were); every level is compared with a numpy volume
assembled from the cells, missing cells are zeros, a chunk inside one cell reads only that cell's
pages, and bad cells are named."""

import errno
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oztest as oz  # noqa: E402
import numpy as np  # noqa: E402
import tifffile  # noqa: E402

S = oz.Suite(__file__)
LEVELS = 3


def cell_name(y, x, z):
    return "cell_yxz_%03d_%03d_%03d.tif" % (y, x, z)


def write_grid(d, vol, edge, missing=(), **kw):
    """Cuts vol (z, y, x) into cells of `edge` (z, y, x) and writes them, 1-based, skipping the
    (y, x, z) indices in `missing`. Returns the volume a reader must see (missing cells zero)."""
    want = vol.copy()
    ez, ey, ex = edge
    nz, ny, nx = (vol.shape[a] // edge[a] for a in range(3))
    for cz in range(nz):
        for cy in range(ny):
            for cx in range(nx):
                block = vol[cz * ez:(cz + 1) * ez, cy * ey:(cy + 1) * ey, cx * ex:(cx + 1) * ex]
                if (cy + 1, cx + 1, cz + 1) in missing:
                    want[cz * ez:(cz + 1) * ez, cy * ey:(cy + 1) * ey, cx * ex:(cx + 1) * ex] = 0
                    continue
                tifffile.imwrite(os.path.join(d, cell_name(cy + 1, cx + 1, cz + 1)), block,
                                 photometric="minisblack", **kw)
    return want


def compare(source, want, options=None):
    ref = oz.reference_pyramid(want, LEVELS, (options or {}).get("algorithm", "mean"))
    opts = {"chunk": 8, "levels": LEVELS}
    opts.update(options or {})
    with oz.Mount(source, opts) as m:
        ck = oz.Checks()
        for lvl in range(LEVELS):
            ck.run("level %d" % lvl, lambda lvl=lvl: oz.assert_array_equal(
                oz.read_level(m.path, lvl, LEVELS), ref[lvl], "data"))
        ck.done()
        return m


@S.case
def grid_with_missing_cell_and_unequal_edges():
    """Cells of 6 pages of 7x5 (z, y, x edges differ, so a swapped axis shows), 2x2x3 cells (y,
    x, z counts differ), one cell missing; other files are ignored."""
    d = oz.tmpdir("grid")
    edge = (6, 5, 7)
    vol = oz.make_volume((3 * 6, 2 * 5, 2 * 7), np.uint16, seed=11, mask=False)
    want = write_grid(d, vol, edge, missing={(2, 1, 3)})
    with open(os.path.join(d, "meta.json"), "w") as f:
        f.write("{}\n")
    m = compare(d, want)
    oz.check("1 of 12 cells are missing" in m.stderr and cell_name(2, 1, 3) in m.stderr,
             "the mount's stderr does not list the missing cell: %r" % m.stderr.strip()[-400:])


@S.case
def compressed_cells_uint8_nearest():
    d = oz.tmpdir("grid")
    edge = (8, 8, 8)
    vol = oz.make_volume((16, 16, 24), np.uint8, seed=12)
    want = write_grid(d, vol, edge, compression="zlib", tile=(16, 16))
    compare(d, want, {"algorithm": "nearest"})


@S.case
def chunk_inside_one_cell_reads_only_its_pages():
    """Uncompressed cells of 16 pages of 16x16 uint16 (512 B a page); a level-0 chunk of 8^3
    inside cell (1, 1, 2) reads at most its 8 pages of that cell (4 KiB), not the cell (8 KiB)
    nor any other cell."""
    d = oz.tmpdir("grid")
    edge = (16, 16, 16)
    vol = oz.make_volume((32, 32, 32), np.uint16, seed=13, mask=False)
    write_grid(d, vol, edge)
    with oz.Mount(d, {"chunk": 8, "levels": 1, "empty": "keep"}) as m:
        before = oz.stats(m.path).get("source_bytes_read", 0)
        # chunk (z=2, y=0, x=1): voxels z 16..24, y 0..8, x 8..16, inside cell (y, x, z) = (1, 1, 2)
        with open(os.path.join(m.path, "2", "0", "1"), "rb") as f:
            raw = f.read()
        got = np.frombuffer(raw, dtype="<u2").reshape(8, 8, 8)
        oz.assert_array_equal(got, vol[16:24, 0:8, 8:16], "chunk 2.0.1")
        read = oz.stats(m.path).get("source_bytes_read", 0) - before
        print("source bytes read for one chunk: %d" % read)
        oz.check(0 < read <= 8 * 512, "read %d source bytes for one chunk inside one cell "
                 "(its 8 pages are 4096 B, the whole cell 8192 B)" % read)


@S.case
def cell_with_wrong_page_size_is_refused_by_name():
    d = oz.tmpdir("grid")
    edge = (4, 6, 6)
    vol = oz.make_volume((8, 12, 12), np.uint16, seed=14, mask=False)
    write_grid(d, vol, edge)
    bad = os.path.join(d, cell_name(2, 1, 2))
    tifffile.imwrite(bad, vol[4:8, 6:12, 0:5], photometric="minisblack")
    rc, err, mounted = oz.try_mount(d, {"chunk": 8})
    oz.check(rc != 0 and not mounted, "mount with a 5x6 cell was not refused")
    for word in (cell_name(2, 1, 2), "5x6", "6x6", "bad_slices=zero"):
        oz.check(word in err, "stderr does not name %r: %r" % (word, err.strip()[-500:]))
    want = vol.copy()
    want[4:8, 6:12, 0:6] = 0
    compare(d, want, {"bad_slices": "zero"})


@S.case
def cell_with_wrong_page_count_fails_its_reads():
    """Page counts are checked when a cell is first read: its chunks give EIO (never wrong or
    zero data), the other cells' chunks read."""
    d = oz.tmpdir("grid")
    edge = (4, 8, 8)
    vol = oz.make_volume((8, 8, 16), np.uint16, seed=15, mask=False)
    write_grid(d, vol, edge)
    tifffile.imwrite(os.path.join(d, cell_name(1, 2, 1)), vol[0:3, 0:8, 8:16], photometric="minisblack")
    with oz.Mount(d, {"chunk": 8, "levels": 1, "empty": "keep"}) as m:
        with open(os.path.join(m.path, "0", "0", "0"), "rb") as f:
            got = np.frombuffer(f.read(), dtype="<u2").reshape(8, 8, 8)
        oz.assert_array_equal(got, vol[0:8, 0:8, 0:8], "chunk 0.0.0 (good cells)")
        for attempt in range(2):  # a failure is not cached
            try:
                with open(os.path.join(m.path, "0", "0", "1"), "rb") as f:
                    f.read()
                oz.check(False, "chunk over the 3-page cell read without error")
            except OSError as e:
                oz.check(e.errno == errno.EIO, "expected EIO, got %r" % e)


@S.case
def duplicate_cell_names_are_refused():
    d = oz.tmpdir("grid")
    vol = oz.make_volume((4, 4, 4), np.uint8, seed=16, mask=False)
    write_grid(d, vol, (4, 4, 4))
    tifffile.imwrite(os.path.join(d, "cell_yxz_1_1_1.tif"), vol, photometric="minisblack")
    rc, err, mounted = oz.try_mount(d, {"chunk": 8})
    oz.check(rc != 0 and not mounted, "mount was not refused")
    oz.check("cell_yxz_001_001_001.tif" in err and "cell_yxz_1_1_1.tif" in err and "same cell" in err,
             "stderr: %r" % err.strip()[-400:])


if __name__ == "__main__":
    S.main()
