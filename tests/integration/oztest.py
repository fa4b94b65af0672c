"""Shared harness for the omezarrfs real-mount integration tests.

Stdlib + numpy + zarr + tifffile + numcodecs only.  Always run with /usr/bin/python3
(the Debian interpreter that has zarr 2.13, tifffile and numcodecs); this module re-executes
the calling script under /usr/bin/python3 if it was started by another interpreter.

Contents
  Suite           tiny test runner: "ok NAME" / "FAIL NAME: reason" / "skip NAME: reason" lines,
                  then "N passed, M failed[, K skipped]"; exit status 1 if anything failed.
  tmpdir()        temp dirs below one per-process root, removed at the end of Suite.main().
  make_volume()   seeded, non-trivial test data (gradient + noise + exact-zero masked regions).
  make_stack()    writes a z-slice TIFF directory with tifffile (layouts, codecs, BigTIFF, BE).
  make_zarr()     writes a zarr v2 array source with zarr-python (codecs, separators, >u2, holes);
  make_ome_zarr() an OME-Zarr group source (multiscales datasets, as zarr_to_ome writes them).
  reference_*     independent numpy reference of the view (window/shift/bytes) and pyramid.
  Mount           context manager: mounts the binary, always unmounts and reaps the daemon.
  read_level*     read a served level with zarr, or with a raw reader that does not use zarr.
  stats()         the user.omezarrfs.stats xattr as a dict.
  tree_diff()     names and bytes that differ between two directory trees.
"""

import ctypes
import ctypes.util
import fractions
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

_PY = "/usr/bin/python3"
if (os.path.exists(_PY) and os.path.realpath(sys.executable) != os.path.realpath(_PY)
        and not os.environ.get("OZTEST_NO_REEXEC")):
    os.environ["OZTEST_NO_REEXEC"] = "1"
    os.execv(_PY, [_PY] + sys.argv)

import numpy as np  # noqa: E402
import numcodecs  # noqa: E402
import tifffile  # noqa: E402
import zarr  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


# ----------------------------------------------------------------------------------------------
# Runner


class Skip(Exception):
    """Raise in a case to report it as skipped (with the message as the reason)."""


class CheckFailed(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise CheckFailed(msg)


class Suite:
    """Cases are plain functions.  Register with @suite.case or suite.add(name, fn)."""

    def __init__(self, name, case_timeout=300):
        self.name = os.path.basename(name)
        self.cases = []
        self.case_timeout = case_timeout

    def case(self, fn=None, name=None):
        def deco(f):
            self.add(name or f.__name__, f)
            return f
        return deco(fn) if fn is not None else deco

    def add(self, name, fn):
        if any(n == name for n, _ in self.cases):
            raise ValueError("duplicate case name " + name)
        self.cases.append((name, fn))

    def main(self, argv=None):
        argv = sys.argv[1:] if argv is None else argv
        selected = [c for c in self.cases if not argv or any(a in c[0] for a in argv)]
        passed = failed = skipped = 0
        try:
            for name, fn in selected:
                timer = threading.Timer(self.case_timeout, _watchdog, args=(name,))
                timer.daemon = True
                timer.start()
                t0 = time.monotonic()
                try:
                    fn()
                except Skip as e:
                    skipped += 1
                    print("skip %s: %s" % (name, _one_line(e)), flush=True)
                except BaseException as e:  # noqa: B902 - report everything, keep going
                    if isinstance(e, KeyboardInterrupt):
                        raise
                    failed += 1
                    reason = _one_line(e) or type(e).__name__
                    if not isinstance(e, CheckFailed):
                        reason = "%s: %s" % (type(e).__name__, reason)
                    if _WATCHDOG_FIRED.get(name):
                        reason = "case timed out after %ss (mounts aborted); %s" % (
                            self.case_timeout, reason)
                    print("FAIL %s: %s" % (name, reason), flush=True)
                    if not isinstance(e, CheckFailed) or os.environ.get("OZTEST_VERBOSE"):
                        sys.stderr.write("---- %s traceback ----\n%s" % (
                            name, traceback.format_exc()))
                        sys.stderr.flush()
                else:
                    passed += 1
                    print("ok %s" % name, flush=True)
                finally:
                    timer.cancel()
                    abort_all_mounts(quiet=True)
                    if os.environ.get("OZTEST_TIMES"):
                        sys.stderr.write("# %s %.1fs\n" % (name, time.monotonic() - t0))
        finally:
            abort_all_mounts(quiet=True)
            cleanup_tmp()
        line = "%d passed, %d failed" % (passed, failed)
        if skipped:
            line += ", %d skipped" % skipped
        print(line, flush=True)
        sys.exit(1 if failed else 0)


def _one_line(e):
    return " | ".join(str(e).strip().splitlines())


_WATCHDOG_FIRED = {}


def _watchdog(name):
    _WATCHDOG_FIRED[name] = True
    sys.stderr.write("# watchdog: case %s exceeded its time limit, aborting mounts\n" % name)
    abort_all_mounts(quiet=False, hard=True)


# ----------------------------------------------------------------------------------------------
# Temp dirs

_TMP_ROOT = None


def tmpdir(prefix="d"):
    global _TMP_ROOT
    if _TMP_ROOT is None:
        _TMP_ROOT = tempfile.mkdtemp(prefix="oztest-")
    return tempfile.mkdtemp(prefix=prefix + "-", dir=_TMP_ROOT)


def cleanup_tmp():
    global _TMP_ROOT
    if _TMP_ROOT is None:
        return
    root = os.path.realpath(_TMP_ROOT)
    busy = [m for m in mounted_paths() if m == root or m.startswith(root + "/")]
    for m in busy:  # never rmtree through a live mount
        subprocess.run(["fusermount3", "-u", "-z", m], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        if is_mounted(m):
            subprocess.run(["umount", "-l", m], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    busy = [m for m in mounted_paths() if m == root or m.startswith(root + "/")]
    if busy:
        sys.stderr.write("# not removing %s: still mounted: %s\n" % (root, busy))
        return
    shutil.rmtree(root, ignore_errors=True)
    _TMP_ROOT = None


# ----------------------------------------------------------------------------------------------
# Test data


def make_volume(shape_zyx, dtype, seed=0, mask=True):
    """Deterministic volume: smooth gradient + uniform noise, full-range extremes, and regions of
    exact zeros (a box spanning all z over the low-y/low-x corner, a ball, and scattered voxels),
    so whole chunks are empty at level 0 and at coarser levels."""
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    Z, Y, X = shape_zyx
    maxv = int(np.iinfo(dtype).max)
    z, y, x = np.ogrid[0:Z, 0:Y, 0:X]
    smooth = (0.5 + 0.25 * np.sin(x / 13.0 + z / 7.0) + 0.25 * np.cos(y / 9.0 + x / 31.0)) \
        * (0.7 * maxv)
    noise = rng.integers(0, maxv // 4 + 1, size=shape_zyx)
    vol = np.clip(np.floor(smooth) + noise, 0, maxv).astype(dtype)
    vol[rng.random(shape_zyx) < 0.004] = maxv
    if mask:
        vol[:, : (Y + 1) // 2, : (2 * X) // 5] = 0
        cz, cy, cx = 0.6 * Z, 0.75 * Y, 0.7 * X
        r = 0.3 * min(shape_zyx)
        ball = (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= r * r
        vol[np.broadcast_to(ball, shape_zyx)] = 0
        vol[rng.random(shape_zyx) < 0.01] = 0
    return vol


# --- codecs tifffile cannot write without imagecodecs (not installed here) ----------------------


class _BitWriter:
    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, code, width):
        self.acc = (self.acc << width) | code
        self.n += width
        while self.n >= 8:
            self.n -= 8
            self.out.append((self.acc >> self.n) & 0xFF)
        self.acc &= (1 << self.n) - 1

    def finish(self):
        if self.n:
            self.out.append((self.acc << (8 - self.n)) & 0xFF)
            self.acc = self.n = 0
        return bytes(self.out)


def lzw_encode(data, **_kwargs):
    """TIFF LZW (MSB-first, 'early change', Clear at 4094 like libtiff's encoder)."""
    data = _as_bytes(data)
    w = _BitWriter()
    clear, eoi = 256, 257
    width, nxt = 9, 258
    table = {bytes([i]): i for i in range(256)}
    w.put(clear, width)

    def emitted():  # an entry (real or, at the end, virtual) follows every emitted code
        nonlocal width, nxt, table
        nxt += 1
        if nxt == 4094:
            w.put(clear, width)
            table = {bytes([i]): i for i in range(256)}
            width, nxt = 9, 258
            return False
        if nxt > (1 << width) - 1 and width < 12:
            width += 1
        return True

    cur = b""
    for b in data:
        cand = cur + bytes((b,))
        if cand in table:
            cur = cand
            continue
        w.put(table[cur], width)
        code = nxt
        if emitted():
            table[cand] = code
        cur = bytes((b,))
    if cur:
        w.put(table[cur], width)
        emitted()
    w.put(eoi, width)
    return w.finish()


def lzw_decode(data):
    """Plain TIFF LZW decoder (used only to self-check lzw_encode)."""
    data = _as_bytes(data)
    bitpos, nbits = 0, len(data) * 8
    table = [bytes([i]) for i in range(256)] + [b"", b""]
    width = 9
    out = bytearray()
    prev = None
    while bitpos + width <= nbits:
        code = int.from_bytes(data[bitpos // 8: bitpos // 8 + 3].ljust(3, b"\0"), "big")
        code = (code >> (24 - width - bitpos % 8)) & ((1 << width) - 1)
        bitpos += width
        if code == 257:
            break
        if code == 256:
            table = table[:258]
            width = 9
            prev = None
            continue
        if code < len(table):
            entry = table[code]
            if prev is not None:
                table.append(prev + entry[:1])
        else:
            entry = prev + prev[:1]
            table.append(entry)
        out += entry
        prev = entry
        if len(table) + 1 >= (1 << width) and width < 12:
            width += 1
    return bytes(out)


def packbits_encode(data, axis=None, **_kwargs):
    """PackBits, each row encoded separately (rows = the last two axes of the strip/tile)."""
    arr = np.ascontiguousarray(data)
    raw = arr.tobytes()
    if arr.ndim >= 2:
        rowbytes = int(np.prod(arr.shape[-2:])) * arr.itemsize
    else:
        rowbytes = len(raw)
    out = bytearray()
    for r in range(0, len(raw), max(rowbytes, 1)):
        out += _packbits_row(raw[r: r + rowbytes])
    return bytes(out)


def _packbits_row(row):
    out = bytearray()
    i, n = 0, len(row)
    while i < n:
        j = i
        while j + 1 < n and row[j + 1] == row[i] and j - i < 127:
            j += 1
        run = j - i + 1
        if run >= 3:
            out.append((257 - run) & 0xFF)
            out.append(row[i])
            i = j + 1
            continue
        # literal run up to 128 bytes, stopping before a run of >= 3
        k = i
        while k < n and k - i < 128:
            if k + 2 < n and row[k] == row[k + 1] == row[k + 2]:
                break
            k += 1
        out.append(k - i - 1)
        out += row[i:k]
        i = k
    return bytes(out)


def zstd_encode(data, level=None, **_kwargs):
    return numcodecs.Zstd(level=5 if level is None else int(level)).encode(_as_bytes(data))


def _as_bytes(data):
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    return np.ascontiguousarray(data).tobytes()


_CODEC_TAG = {"lzw": 5, "packbits": 32773, "zstd": 50000}
_OWN_ENCODERS = {5: lzw_encode, 32773: packbits_encode, 50000: zstd_encode}
_ENCODER_NOTES = []


def _ensure_encoder(compression):
    """Make tifffile able to write `compression`.  Returns a note if an own encoder is used."""
    tag = _CODEC_TAG.get(str(compression).lower())
    if tag is None:
        return None
    codecs = tifffile.TIFF.COMPRESSORS
    try:
        codecs[tag]
        return None
    except Exception:  # KeyError "... requires the 'imagecodecs' package"
        pass
    codecs._codecs[tag] = _OWN_ENCODERS[tag]
    note = "tifffile cannot write %s here (no imagecodecs); using oztest's own encoder" % compression
    if note not in _ENCODER_NOTES:
        _ENCODER_NOTES.append(note)
    return note


def make_stack(directory, shape_zyx=None, dtype=np.uint16, seed=0, volume=None,
               compression=None, tile=None, rowsperstrip=None, bigtiff=False, byteorder="<",
               predictor=None, gaps=(), names="{z}.tif", extra_files=()):
    """Write z-slice TIFFs into `directory` (created).  Returns the volume as the binary must
    see it (slices listed in `gaps` are not written and are zeros in the returned volume).

    names: format string with {z}, or a callable z -> file name.
    compression: None, 'zlib', 'adobe_deflate', 'lzw', 'packbits', 'zstd' (also (name, level)).
    """
    os.makedirs(directory, exist_ok=True)
    vol = make_volume(shape_zyx, dtype, seed) if volume is None else np.asarray(volume)
    vol = vol.copy()
    for zi in range(vol.shape[0]):
        if zi in gaps:
            vol[zi] = 0
            continue
        name = names(zi) if callable(names) else names.format(z=zi)
        write_slice(os.path.join(directory, name), vol[zi], compression=compression, tile=tile,
                    rowsperstrip=rowsperstrip, bigtiff=bigtiff, byteorder=byteorder,
                    predictor=predictor)
    for fname, content in extra_files:
        with open(os.path.join(directory, fname), "wb") as f:
            f.write(content)
    return vol


def write_slice(path, plane, compression=None, tile=None, rowsperstrip=None, bigtiff=False,
                byteorder="<", predictor=None):
    cname = compression[0] if isinstance(compression, tuple) else compression
    if cname is not None:
        _ensure_encoder(cname)
    kw = dict(bigtiff=bigtiff, byteorder=byteorder, photometric="minisblack", metadata=None)
    if compression is not None:
        kw["compression"] = compression
    if predictor is not None:
        kw["predictor"] = predictor
    if tile is not None:
        kw["tile"] = tuple(tile)
    if rowsperstrip is not None:
        kw["rowsperstrip"] = rowsperstrip
    tifffile.imwrite(path, plane, **kw)


# --- independent fixture check with libtiff (ctypes) -------------------------------------------

_LIBTIFF = None


def libtiff():
    global _LIBTIFF
    if _LIBTIFF is None:
        path = ctypes.util.find_library("tiff") or "libtiff.so.6"
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            raise Skip("libtiff not loadable for fixture checks: %s" % e)
        lib.TIFFOpen.restype = ctypes.c_void_p
        lib.TIFFOpen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        lib.TIFFClose.argtypes = [ctypes.c_void_p]
        lib.TIFFIsTiled.argtypes = [ctypes.c_void_p]
        lib.TIFFScanlineSize.argtypes = [ctypes.c_void_p]
        lib.TIFFScanlineSize.restype = ctypes.c_ssize_t
        lib.TIFFTileSize.argtypes = [ctypes.c_void_p]
        lib.TIFFTileSize.restype = ctypes.c_ssize_t
        lib.TIFFReadScanline.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32,
                                         ctypes.c_uint16]
        lib.TIFFReadTile.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32,
                                     ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint16]
        lib.TIFFReadTile.restype = ctypes.c_ssize_t
        lib.TIFFSetWarningHandler.restype = ctypes.c_void_p
        lib.TIFFSetWarningHandler.argtypes = [ctypes.c_void_p]
        lib.TIFFSetWarningHandler(None)
        _LIBTIFF = lib
    return _LIBTIFF


def libtiff_read(path, directory=0):
    """Decode a single-sample uint8/uint16 TIFF with libtiff; returns a native-order array.
    directory: the index of the image directory (page) in the file's IFD chain."""
    lib = libtiff()
    tif = lib.TIFFOpen(path.encode(), b"r")
    if not tif:
        raise CheckFailed("libtiff cannot open %s" % path)
    try:
        u32, u16 = ctypes.c_uint32, ctypes.c_uint16
        if directory:
            lib.TIFFSetDirectory.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
            check(lib.TIFFSetDirectory(ctypes.c_void_p(tif), directory) == 1,
                  "libtiff: %s has no directory %d" % (path, directory))

        def field(tag, ctype):
            v = ctype(0)
            ok = lib.TIFFGetField(ctypes.c_void_p(tif), ctypes.c_uint32(tag), ctypes.byref(v))
            return v.value if ok else None
        width, height = field(256, u32), field(257, u32)
        bps = field(258, u16) or 1
        spp = field(277, u16) or 1
        check(spp == 1 and bps in (8, 16), "%s: spp=%s bps=%s" % (path, spp, bps))
        dt = np.dtype(np.uint8 if bps == 8 else np.uint16)
        out = np.zeros((height, width), dt)
        if lib.TIFFIsTiled(ctypes.c_void_p(tif)):
            tw, th = field(322, u32), field(323, u32)
            buf = ctypes.create_string_buffer(lib.TIFFTileSize(ctypes.c_void_p(tif)))
            for ty in range(0, height, th):
                for tx in range(0, width, tw):
                    n = lib.TIFFReadTile(ctypes.c_void_p(tif), buf, tx, ty, 0, 0)
                    check(n > 0, "libtiff: cannot read tile (%d,%d) of %s" % (tx, ty, path))
                    t = np.frombuffer(buf.raw, dt, count=tw * th).reshape(th, tw)
                    h, w = min(th, height - ty), min(tw, width - tx)
                    out[ty:ty + h, tx:tx + w] = t[:h, :w]
        else:
            buf = ctypes.create_string_buffer(lib.TIFFScanlineSize(ctypes.c_void_p(tif)))
            for row in range(height):
                r = lib.TIFFReadScanline(ctypes.c_void_p(tif), buf, row, 0)
                check(r == 1, "libtiff: cannot read row %d of %s" % (row, path))
                out[row] = np.frombuffer(buf.raw, dt, count=width)
        return out
    finally:
        lib.TIFFClose(ctypes.c_void_p(tif))


def verify_stack(directory, vol, names="{z}.tif", gaps=(), use_tifffile=None):
    """Read every written slice back with libtiff (and tifffile when it can decode the codec)
    and compare with `vol`.  Raises CheckFailed naming the bad slice."""
    for zi in range(vol.shape[0]):
        name = names(zi) if callable(names) else names.format(z=zi)
        p = os.path.join(directory, name)
        if zi in gaps:
            check(not os.path.exists(p), "gap slice %s exists" % p)
            continue
        got = libtiff_read(p)
        assert_array_equal(got, vol[zi], "fixture %s via libtiff" % name)
        if use_tifffile is None or use_tifffile:
            try:
                t = tifffile.imread(p)
            except (KeyError, ValueError, NotImplementedError) as e:
                if use_tifffile:
                    raise
                if "imagecodecs" not in str(e):
                    raise
                continue
            assert_array_equal(t, vol[zi], "fixture %s via tifffile" % name)


# --- zarr v2 sources (written by zarr-python, as real stores are) --------------------------------


def make_zarr(directory, vol, chunks, dtype=None, compressor=None, dimension_separator=".",
              order="C", fill_value=0, absent=()):
    """Write `vol` as a zarr v2 array at `directory` with zarr-python.  compressor: a numcodecs
    codec or None (uncompressed).  dtype: e.g. '>u2' to store big-endian.  absent: chunk indices
    (tuples) whose chunk files are deleted afterwards.  Returns the volume a reader must see
    (native dtype; absent chunks = fill_value, null = 0)."""
    dt = np.dtype(dtype or vol.dtype)
    arr = zarr.open_array(directory, mode="w", shape=vol.shape, chunks=chunks, dtype=dt,
                          compressor=compressor, dimension_separator=dimension_separator,
                          order=order, fill_value=fill_value)
    arr[...] = vol.astype(dt)
    want = vol.astype(dt.newbyteorder("=")).copy()
    sep = dimension_separator
    for ci in absent:
        path = os.path.join(directory, *(sep.join(str(i) for i in ci).split("/")))
        os.remove(path)
        sl = tuple(slice(i * c, (i + 1) * c) for i, c in zip(ci, chunks))
        want[sl] = 0 if fill_value is None else fill_value
    return want


def make_ome_zarr(directory, arrays, chunks, compressor=None, paths=None, dimension_separator="/"):
    """An OME-Zarr 0.4 group at `directory` whose multiscales[0].datasets are `arrays` (at
    `paths`, default "0", "1", ...), like scroll2zarr's zarr_to_ome output."""
    paths = paths or [str(i) for i in range(len(arrays))]
    g = zarr.open_group(directory, mode="w")
    for p, a in zip(paths, arrays):
        g.create_dataset(p, data=a, chunks=chunks, compressor=compressor,
                         dimension_separator=dimension_separator)
    g.attrs["multiscales"] = [{
        "version": "0.4",
        "axes": [{"name": n, "type": "space"} for n in "zyx"],
        "datasets": [{"path": p, "coordinateTransformations": [
            {"type": "scale", "scale": [2.0 ** i] * 3}]} for i, p in enumerate(paths)],
    }]
    return directory


# ----------------------------------------------------------------------------------------------
# Reference


def norm_window(size, sl):
    """Python-slice semantics of a window on range(size): returns (w0, w1) with w0 <= w1."""
    if sl is None:
        sl = (None, None)
    if isinstance(sl, slice):
        sl = (sl.start, sl.stop)
    w0, w1, _ = slice(sl[0], sl[1]).indices(size)
    return w0, max(w0, w1)


def reference_level0(vol, window=None, shift=(0, 0, 0), bytes1=False):
    """Level 0 of the view.  window: per-axis (start, stop) in z, y, x order (None = whole),
    shift: (tz, ty, tx).  Output extent per axis = w1 + t; out[o] = vol[o - t] where
    w0 <= o - t < w1, else 0."""
    window = window or (None, None, None)
    idx, masks, ext = [], [], []
    for a in range(3):
        w0, w1 = norm_window(vol.shape[a], window[a])
        t = int(shift[a])
        e = max(0, w1 + t)
        o = np.arange(e)
        s = o - t
        m = (s >= w0) & (s < w1)
        idx.append(np.where(m, s, 0))
        masks.append(m)
        ext.append(e)
    if min(ext) == 0:
        out = np.zeros(ext, vol.dtype)
    else:
        out = vol[np.ix_(*idx)]
        full = masks[0][:, None, None] & masks[1][None, :, None] & masks[2][None, None, :]
        out = np.where(full, out, 0).astype(vol.dtype)
    if bytes1 and out.dtype == np.uint16:
        out = (out // 256).astype(np.uint8)
    return out


def _half(n):
    return (n + 1) // 2


def _counts(shape):
    cs = []
    for n in shape:
        c = np.full(_half(n), 2, np.int64)
        if n % 2:
            c[-1] = 1
        cs.append(c)
    return cs[0][:, None, None] * cs[1][None, :, None] * cs[2][None, None, :]


def _blocks(a, fill=0, dtype=np.int64):
    Z, Y, X = a.shape
    nz, ny, nx = _half(Z), _half(Y), _half(X)
    p = np.full((2 * nz, 2 * ny, 2 * nx), fill, dtype)
    p[:Z, :Y, :X] = a
    return p.reshape(nz, 2, ny, 2, nx, 2)


def down_mean_int(a):
    """Mean of the existing voxels of each 2x2x2 block, round half to even, integer arithmetic."""
    s = _blocks(a).sum(axis=(1, 3, 5))
    c = _counts(a.shape)
    q, r = np.divmod(s, c)
    up = (2 * r > c) | ((2 * r == c) & (q % 2 == 1))
    return (q + up).astype(a.dtype)


def down_mean_float(a):
    """Same result via 8 strided views, float64 and np.round (exact: counts are powers of 2)."""
    shape = tuple(_half(n) for n in a.shape)
    acc = np.zeros(shape, np.float64)
    cnt = np.zeros(shape, np.float64)
    for dz, dy, dx in itertools.product((0, 1), repeat=3):
        sub = a[dz::2, dy::2, dx::2]
        sl = tuple(slice(0, n) for n in sub.shape)
        acc[sl] += sub
        cnt[sl] += 1
    return np.round(acc / cnt).astype(a.dtype)


def down_max(a):
    return _blocks(a).max(axis=(1, 3, 5)).astype(a.dtype)


def down_max_strided(a):
    out = np.zeros(tuple(_half(n) for n in a.shape), a.dtype)
    for dz, dy, dx in itertools.product((0, 1), repeat=3):
        sub = a[dz::2, dy::2, dx::2]
        sl = tuple(slice(0, n) for n in sub.shape)
        out[sl] = np.maximum(out[sl], sub)
    return out


def down_nearest(a):
    return a[::2, ::2, ::2].copy()


def down_loop(a, algorithm):
    """Slow per-voxel definition (Fractions + Python's banker's round) for self-checks."""
    out = np.zeros(tuple(_half(n) for n in a.shape), a.dtype)
    for z, y, x in np.ndindex(*out.shape):
        block = a[2 * z:2 * z + 2, 2 * y:2 * y + 2, 2 * x:2 * x + 2].ravel().tolist()
        if algorithm == "mean":
            out[z, y, x] = round(fractions.Fraction(sum(block), len(block)))
        elif algorithm == "max":
            out[z, y, x] = max(block)
        else:
            out[z, y, x] = a[2 * z, 2 * y, 2 * x]
    return out


_DOWN = {"mean": down_mean_int, "nearest": down_nearest, "max": down_max}
_DOWN_ALT = {"mean": down_mean_float, "nearest": lambda a: a[::2, ::2, ::2].copy(),
             "max": down_max_strided}


def reference_pyramid(level0, levels, algorithm="mean", alt=False):
    funcs = _DOWN_ALT if alt else _DOWN
    out = [level0]
    for _ in range(1, levels):
        out.append(funcs[algorithm](out[-1]))
    return out


def assert_array_equal(got, want, what):
    got = np.asarray(got)
    want = np.asarray(want)
    check(got.shape == want.shape, "%s: shape %s != expected %s" % (what, got.shape, want.shape))
    check(got.dtype == want.dtype, "%s: dtype %s != expected %s" % (what, got.dtype, want.dtype))
    diff = got != want
    n = int(diff.sum())
    if n:
        first = tuple(int(i) for i in np.argwhere(diff)[0])
        raise CheckFailed("%s: %d of %d voxels differ; first at %s: got %s, expected %s" % (
            what, n, diff.size, first, got[first], want[first]))


# ----------------------------------------------------------------------------------------------
# Mounting


def binary():
    b = os.environ.get("OMEZARRFS_BIN")
    cands = [b] if b else []
    if os.environ.get("OMEZARRFS_BUILD"):
        cands.append(os.path.join(os.environ["OMEZARRFS_BUILD"], "fs", "omezarrfs"))
    cands.append(os.path.join(REPO, "build", "fs", "omezarrfs"))
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c)
    raise CheckFailed("omezarrfs binary not found (set OMEZARRFS_BIN); tried %s" % cands)


def _unescape_mount(s):
    return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
        .replace("\\134", "\\")


def mounted_paths():
    with open("/proc/self/mounts") as f:
        return [_unescape_mount(line.split()[1]) for line in f if len(line.split()) > 2]


def is_mounted(path):
    return os.path.realpath(path) in mounted_paths()


def format_options(options):
    """dict / list of pairs / str -> the -o string.  Values are used verbatim (so a test decides
    how commas inside a value are written: '\\,' or '/')."""
    if options is None:
        return ""
    if isinstance(options, str):
        return options
    items = options.items() if isinstance(options, dict) else options
    parts = []
    for k, v in items:
        parts.append(k if v is None else "%s=%s" % (k, v))
    return ",".join(parts)


def xyz(values, sep="\\,"):
    """Format a z,y,x triple (as the tests hold them) as the x,y,z option value."""
    return sep.join(str(v) for v in reversed(list(values)))


def window_opt(window_zyx, sep="\\,"):
    """window_zyx: per-axis (start, stop) with None for open ends -> 'x0:x1\\,y0:y1\\,z0:z1'."""
    def one(sl):
        if sl is None:
            return ":"
        a, b = sl
        return "%s:%s" % ("" if a is None else a, "" if b is None else b)
    return sep.join(one(s) for s in reversed(list(window_zyx)))


_ACTIVE = []
_ACTIVE_LOCK = threading.Lock()


def _daemon_pids(mnt, exe):
    """Processes running our binary whose argv names this (unique, temp) mountpoint."""
    pids = []
    mnt_r = os.path.realpath(mnt)
    exe_r = os.path.realpath(exe)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if os.path.realpath(os.readlink("/proc/%s/exe" % d)) != exe_r:
                continue
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0")]
        except OSError:
            continue
        if any(a and os.path.realpath(a) == mnt_r for a in argv if a.startswith("/")):
            pids.append(int(d))
    return pids


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except OSError:
        return False


class MountError(CheckFailed):
    pass


class Mount:
    """with Mount(source, {"chunk": 32, "levels": 4}) as m: ... m.path ...

    Starts `$OMEZARRFS_BIN SOURCE MNT -o cache=DIR,...` (daemon mode), requires exit status 0
    and the mount to be present in /proc/mounts when the command returns.  On exit: fusermount3
    -u (retried), fallback fusermount3 -u -z, then waits for the daemon and kills it if it is
    still there.  A fresh cache dir is used unless `cache` is given."""

    def __init__(self, source, options=None, cache=None, args=(), timeout=120, mountpoint=None):
        self.source = source
        self.options = options
        self.cache = cache if cache is not None else tmpdir("cache")
        self.args = list(args)
        self.timeout = timeout
        self.path = mountpoint or tmpdir("mnt")
        self.stderr = ""
        self.stdout = ""
        self.pids = []
        self.daemon_lingered = False
        self.unmount_error = None
        self.exe = None

    def command(self):
        opt = "cache=%s" % self.cache
        extra = format_options(self.options)
        if extra:
            opt += "," + extra
        return [self.exe, self.source, self.path, "-o", opt] + self.args

    def __enter__(self):
        self.exe = binary()
        cmd = self.command()
        self.cmdline = " ".join(cmd)
        res = run_binary(cmd, self.timeout)
        self.stdout, self.stderr, rc = res.stdout, res.stderr, res.returncode
        with _ACTIVE_LOCK:
            _ACTIVE.append(self)
        self.pids = _daemon_pids(self.path, self.exe)
        if rc != 0 or not is_mounted(self.path):
            why = ("exit status %s" % rc) if rc != 0 else \
                "exit status 0 but %s is not in /proc/mounts" % self.path
            self._cleanup()
            raise MountError("mount failed (%s): %s; stderr: %s" % (
                why, self.cmdline, self.stderr.strip()[-600:]))
        return self

    def __exit__(self, *exc):
        self._cleanup()
        return False

    def unmount(self):
        self._cleanup()

    def _cleanup(self):
        if is_mounted(self.path):
            for _ in range(40):
                r = subprocess.run(["fusermount3", "-u", self.path], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
                if r.returncode == 0 or not is_mounted(self.path):
                    break
                self.unmount_error = r.stderr.strip()
                time.sleep(0.25)
            if is_mounted(self.path):
                subprocess.run(["fusermount3", "-u", "-z", self.path],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if is_mounted(self.path):  # not a FUSE mount (harness fake) or fusermount3 failed
                subprocess.run(["umount", "-l", self.path],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pids = set(self.pids) | set(_daemon_pids(self.path, self.exe)) if self.exe else set()
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            live = [p for p in pids if _alive(p)]
            if not live:
                break
            self.daemon_lingered = True
            for p in live:
                try:
                    os.kill(p, sig)
                except ProcessLookupError:
                    pass
            time.sleep(2)
        with _ACTIVE_LOCK:
            if self in _ACTIVE:
                _ACTIVE.remove(self)
        if not is_mounted(self.path):
            try:
                os.rmdir(self.path)
            except OSError:
                pass

    def abort(self, hard=True):
        """Watchdog path: kill the daemon so blocked reads fail, then lazy-unmount."""
        pids = set(self.pids) | set(_daemon_pids(self.path, self.exe))
        for p in pids:
            if _alive(p):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        subprocess.run(["fusermount3", "-u", "-z", self.path], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def abort_all_mounts(quiet=True, hard=False):
    with _ACTIVE_LOCK:
        active = list(_ACTIVE)
    for m in active:
        if not quiet:
            sys.stderr.write("# aborting mount %s\n" % m.path)
        if hard:
            m.abort()
        m._cleanup()


class RunResult:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_binary(cmd, timeout=120):
    """Run the launcher with stdout/stderr going to files (a daemon keeping a pipe open must not
    hang us); wait for the launcher only."""
    d = tmpdir("run")
    out_p, err_p = os.path.join(d, "stdout"), os.path.join(d, "stderr")
    with open(out_p, "wb") as fo, open(err_p, "wb") as fe:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe)
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc = "timeout(%ss)" % timeout
    with open(out_p, "rb") as f:
        out = f.read().decode(errors="replace")
    with open(err_p, "rb") as f:
        err = f.read().decode(errors="replace")
    shutil.rmtree(d, ignore_errors=True)
    return RunResult(rc, out, err)


def try_mount(source, options=None, cache=None, args=(), timeout=60):
    """Run a mount that is expected to fail.  Returns (returncode, stderr, was_mounted); if it
    did mount, it is unmounted again (and was_mounted is True)."""
    m = Mount(source, options, cache=cache, args=args, timeout=timeout)
    m.exe = binary()
    res = run_binary(m.command(), timeout)
    with _ACTIVE_LOCK:
        _ACTIVE.append(m)
    m.pids = _daemon_pids(m.path, m.exe)
    mounted = is_mounted(m.path)
    m._cleanup()
    return res.returncode, res.stderr, mounted


# ----------------------------------------------------------------------------------------------
# Reading the served tree


def read_json(path):
    with open(path, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


def level_path(mnt, level, levels):
    return mnt if levels == 1 else os.path.join(mnt, str(level))


class _StrictMixin:
    """zarr 2.13's DirectoryStore decides 'absent chunk' with os.path.isfile(), which swallows
    every OSError: a chunk failing with EIO would silently read as fill value 0.  Here only
    ENOENT means absent; any other error propagates and fails the test."""

    def __getitem__(self, key):
        key = self._normalize_key(key)
        filepath = os.path.join(self.path, key)
        try:
            with open(filepath, "rb") as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError):
            raise KeyError(key)


class StrictDirectoryStore(_StrictMixin, zarr.storage.DirectoryStore):
    pass


class StrictNestedDirectoryStore(_StrictMixin, zarr.storage.NestedDirectoryStore):
    pass


def read_level(mnt, level, levels=2):
    """The whole level through zarr-python (DirectoryStore; dimension_separator from .zarray)."""
    store = StrictDirectoryStore(level_path(mnt, level, levels))
    arr = zarr.open_array(store=store, mode="r")
    return arr[...]


def read_level_nested(mnt, level, levels=2):
    store = StrictNestedDirectoryStore(level_path(mnt, level, levels))
    arr = zarr.open_array(store=store, mode="r")
    return arr[...]


def decode_chunk(raw, meta):
    comp = meta.get("compressor")
    if comp is not None:
        raw = numcodecs.get_codec(dict(comp)).decode(raw)
    c = meta["chunks"]
    return np.frombuffer(bytes(raw), np.dtype(meta["dtype"])).reshape(c)


def chunk_grid(shape, chunks):
    return [-(-s // c) for s, c in zip(shape, chunks)]


def read_level_raw(mnt, level, levels=2, expect_size=True):
    """Assemble a level from its chunk files without zarr: absent chunk = fill 0.  With no
    compressor every chunk file must be exactly prod(chunks)*itemsize bytes."""
    base = level_path(mnt, level, levels)
    meta = read_json(os.path.join(base, ".zarray"))
    shape, chunks = meta["shape"], meta["chunks"]
    dt = np.dtype(meta["dtype"])
    grid = chunk_grid(shape, chunks)
    out = np.zeros([g * c for g, c in zip(grid, chunks)], dt)
    full = int(np.prod(chunks)) * dt.itemsize
    for ci in itertools.product(*[range(g) for g in grid]):
        p = os.path.join(base, *[str(i) for i in ci])
        try:
            with open(p, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            continue
        if meta.get("compressor") is None and expect_size:
            check(len(raw) == full, "%s: %d bytes, expected %d (full chunk)" % (p, len(raw), full))
        sl = tuple(slice(i * c, (i + 1) * c) for i, c in zip(ci, chunks))
        out[sl] = decode_chunk(raw, meta)
    return out[tuple(slice(0, s) for s in shape)], out


def chunk_is_empty(level_arr, ci, chunk):
    sl = tuple(slice(i * chunk, (i + 1) * chunk) for i in ci)
    return not level_arr[sl].any()


def stats(mnt):
    raw = os.getxattr(mnt, "user.omezarrfs.stats")
    out = {}
    for line in raw.decode().splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                out[parts[0]] = parts[1]
    return out


def walk_files(root):
    """All regular files below root (relative paths) via os.scandir (readdir)."""
    files, dirs = [], []
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(root, rel)) as it:
            for e in it:
                r = os.path.join(rel, e.name) if rel else e.name
                if e.is_dir(follow_symlinks=False):
                    dirs.append(r)
                    stack.append(r)
                else:
                    files.append(r)
    return sorted(files), sorted(dirs)


def tree_diff(a, b, ignore=(".omezarr-materialize",)):
    """Differences between two directory trees (names, types and bytes)."""
    import filecmp
    out = []

    def walk(rel):
        da, db = os.path.join(a, rel), os.path.join(b, rel)
        na = set(os.listdir(da)) - set(ignore)
        nb = set(os.listdir(db)) - set(ignore)
        for n in sorted(na ^ nb):
            out.append("only in %s: %s" % (a if n in na else b, os.path.join(rel, n)))
        for n in sorted(na & nb):
            pa, pb = os.path.join(da, n), os.path.join(db, n)
            if os.path.isdir(pa) != os.path.isdir(pb):
                out.append("type differs: " + os.path.join(rel, n))
            elif os.path.isdir(pa):
                walk(os.path.join(rel, n))
            elif not filecmp.cmp(pa, pb, shallow=False):
                out.append("bytes differ: " + os.path.join(rel, n))
    walk("")
    return out


# ----------------------------------------------------------------------------------------------
# Metadata checks (return a list of problems)


def _close(a, b):
    return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))


def multiscales_problems(attrs, levels, algorithm, voxel_zyx=(1.0, 1.0, 1.0), unit=None):
    p = []
    ms = attrs.get("multiscales")
    if not isinstance(ms, list) or len(ms) != 1:
        return ["multiscales is not a 1-element list: %r" % (ms,)]
    m = ms[0]
    if m.get("version") != "0.4":
        p.append("version %r != '0.4'" % m.get("version"))
    axes = m.get("axes")
    want_axes = []
    for n in "zyx":
        a = {"name": n, "type": "space"}
        if unit:
            a["unit"] = unit
        want_axes.append(a)
    if axes != want_axes:
        p.append("axes %r != %r" % (axes, want_axes))
    if m.get("type") != algorithm:
        p.append("type %r != %r" % (m.get("type"), algorithm))
    if "metadata" in m and not isinstance(m["metadata"], dict):
        p.append("metadata is not an object: %r" % (m["metadata"],))
    if "metadata" not in m:
        p.append("metadata missing")
    ds = m.get("datasets")
    if not isinstance(ds, list) or len(ds) != levels:
        return p + ["datasets: %r (expected %d entries)" % (ds, levels)]
    for lvl, d in enumerate(ds):
        if d.get("path") != str(lvl):
            p.append("datasets[%d].path %r" % (lvl, d.get("path")))
        ct = d.get("coordinateTransformations") or []
        f = 2 ** lvl
        want_scale = [v * f for v in voxel_zyx]
        if not ct or ct[0].get("type") != "scale" or len(ct[0].get("scale", [])) != 3 or \
                not all(_close(a, b) for a, b in zip(ct[0]["scale"], want_scale)):
            p.append("datasets[%d] scale: %r, expected %r" % (lvl, ct[:1], want_scale))
        want_tr = [v * (f - 1) / 2.0 for v in voxel_zyx]
        tr = [t for t in ct if t.get("type") == "translation"]
        if algorithm == "nearest":
            if tr:
                p.append("datasets[%d]: translation present for nearest: %r" % (lvl, tr))
        elif lvl == 0 and not tr:
            pass  # a zero translation at level 0 may be omitted
        else:
            if len(ct) != 2 or ct[1].get("type") != "translation" or \
                    len(ct[1].get("translation", [])) != 3 or \
                    not all(_close(a, b) for a, b in zip(ct[1]["translation"], want_tr)):
                p.append("datasets[%d] translation: %r, expected %r" % (lvl, ct[1:], want_tr))
        if len(ct) > 2:
            p.append("datasets[%d]: extra transformations %r" % (lvl, ct[2:]))
    return p


def zarray_problems(meta, shape, chunk, dtype, compressor=None):
    p = []
    want = {"zarr_format": 2, "shape": list(shape), "chunks": [chunk] * 3,
            "dtype": np.dtype(dtype).str if np.dtype(dtype).itemsize > 1 else "|u1",
            "fill_value": 0, "order": "C", "filters": None, "dimension_separator": "/"}
    for k, v in want.items():
        if k not in meta:
            p.append("%s missing" % k)
        elif meta[k] != v:
            p.append("%s = %r, expected %r" % (k, meta[k], v))
    comp = meta.get("compressor", "MISSING")
    if compressor is None:
        if comp is not None:
            p.append("compressor = %r, expected null" % (comp,))
    else:
        if not isinstance(comp, dict):
            p.append("compressor = %r, expected %r" % (comp, compressor))
        else:
            for k, v in compressor.items():
                if comp.get(k) != v:
                    p.append("compressor.%s = %r, expected %r" % (k, comp.get(k), v))
    return p


class Checks:
    """Run several sub-checks, remember every failure, raise one CheckFailed listing them."""

    def __init__(self):
        self.problems = []

    def run(self, label, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CheckFailed as e:
            self.problems.append("%s: %s" % (label, _one_line(e)))
        except Exception as e:  # noqa: BLE001
            self.problems.append("%s: %s: %s" % (label, type(e).__name__, _one_line(e)))
            sys.stderr.write("---- %s ----\n%s" % (label, traceback.format_exc()))
        return None

    def expect(self, cond, msg):
        if not cond:
            self.problems.append(msg)

    def extend(self, label, problems):
        for p in problems:
            self.problems.append("%s: %s" % (label, p))

    def done(self):
        if self.problems:
            raise CheckFailed("; ".join(self.problems))


def check_tree(mnt, expected_levels, algorithm, chunk, compressor=None, voxel_zyx=(1, 1, 1),
               unit=None, raw=True, ck=None):
    """Metadata + data of every level against `expected_levels` (list of arrays).  Adds problems
    to `ck` (a Checks) or raises."""
    own = ck is None
    ck = ck or Checks()
    n = len(expected_levels)
    if n > 1:
        def group():
            g = read_json(os.path.join(mnt, ".zgroup"))
            check(g == {"zarr_format": 2}, ".zgroup = %r" % (g,))
        ck.run(".zgroup", group)

        def attrs():
            a = read_json(os.path.join(mnt, ".zattrs"))
            probs = multiscales_problems(a, n, algorithm, voxel_zyx, unit)
            check(not probs, "; ".join(probs))
        ck.run(".zattrs", attrs)
    else:
        ck.expect(not os.path.exists(os.path.join(mnt, ".zgroup")),
                  "levels=1: /.zgroup exists")
    for lvl, want in enumerate(expected_levels):
        base = level_path(mnt, lvl, n)

        def zarray(base=base, want=want):
            meta = read_json(os.path.join(base, ".zarray"))
            probs = zarray_problems(meta, want.shape, chunk, want.dtype, compressor)
            check(not probs, "; ".join(probs))
        ck.run("level %d .zarray" % lvl, zarray)
        ck.run("level %d zarr" % lvl,
               lambda lvl=lvl, want=want: assert_array_equal(read_level(mnt, lvl, n), want,
                                                             "data"))
        if raw:
            def rawcheck(lvl=lvl, want=want):
                got, padded = read_level_raw(mnt, lvl, n)
                assert_array_equal(got, want, "data")
                pad = padded.copy()
                pad[tuple(slice(0, s) for s in want.shape)] = 0
                check(not pad.any(), "edge chunks are not zero-padded beyond the shape")
            ck.run("level %d raw chunks" % lvl, rawcheck)
    if own:
        ck.done()
    return ck


# ----------------------------------------------------------------------------------------------
# A materialized copy of the expected tree (for harness self-checks and the harness fake)


def reference_zattrs(levels, algorithm, voxel_zyx=(1.0, 1.0, 1.0), unit=None, metadata=None):
    axes = []
    for n in "zyx":
        a = {"name": n, "type": "space"}
        if unit:
            a["unit"] = unit
        axes.append(a)
    ds = []
    for lvl in range(levels):
        f = 2 ** lvl
        ct = [{"type": "scale", "scale": [v * f for v in voxel_zyx]}]
        if algorithm != "nearest":
            ct.append({"type": "translation", "translation": [v * (f - 1) / 2.0
                                                               for v in voxel_zyx]})
        ds.append({"path": str(lvl), "coordinateTransformations": ct})
    return {"multiscales": [{"version": "0.4", "axes": axes, "datasets": ds,
                             "type": algorithm, "metadata": metadata or {}}]}


def materialize_tree(root, arrays, algorithm, chunk, compressor=None, empty="omit",
                     voxel_zyx=(1.0, 1.0, 1.0), unit=None):
    """Write the tree the contract describes (raw chunk files, no zarr) below root."""
    os.makedirs(root, exist_ok=True)
    n = len(arrays)
    codec = numcodecs.get_codec(dict(compressor)) if compressor else None
    if n > 1:
        with open(os.path.join(root, ".zgroup"), "w") as f:
            json.dump({"zarr_format": 2}, f)
        with open(os.path.join(root, ".zattrs"), "w") as f:
            json.dump(reference_zattrs(n, algorithm, voxel_zyx, unit), f)
    for lvl, a in enumerate(arrays):
        base = level_path(root, lvl, n)
        os.makedirs(base, exist_ok=True)
        meta = {"zarr_format": 2, "shape": list(a.shape), "chunks": [chunk] * 3,
                "dtype": a.dtype.str if a.dtype.itemsize > 1 else "|u1",
                "compressor": compressor, "fill_value": 0, "order": "C", "filters": None,
                "dimension_separator": "/"}
        with open(os.path.join(base, ".zarray"), "w") as f:
            json.dump(meta, f)
        for ci in itertools.product(*[range(g) for g in chunk_grid(a.shape, [chunk] * 3)]):
            block = np.zeros((chunk,) * 3, a.dtype)
            src = a[tuple(slice(i * chunk, (i + 1) * chunk) for i in ci)]
            block[tuple(slice(0, s) for s in src.shape)] = src
            if empty == "omit" and not block.any():
                continue
            raw = block.tobytes()
            if codec is not None:
                raw = codec.encode(raw)
            d = os.path.join(base, *[str(i) for i in ci[:-1]])
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, str(ci[-1])), "wb") as f:
                f.write(bytes(raw))


def tree_files(root):
    """Every file below root (relative path -> bytes), materialize's state dir left out."""
    out = {}
    for dp, dns, fns in os.walk(root):
        dns[:] = [d for d in dns if d != ".omezarr-materialize"]
        for fn in fns:
            p = os.path.join(dp, fn)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = f.read()
    return out


def materialize_tool():
    return os.path.join(os.path.dirname(binary()), "..", "cli", "omezarr-materialize")


def materialize(src, dest, opts, *args):
    """omezarr-materialize SRC DEST -o OPTS ARGS...; must succeed. Returns the CompletedProcess."""
    r = subprocess.run([materialize_tool(), src, dest, "-o", format_options(opts)] + list(args),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, "materialize %r %r: %s" % (opts, args, r.stderr[-800:]))
    return r


def ensure_zarrita():
    """zarrita.js in tests/js/node_modules (npm ci there when scripts/setup-viewer-checks.sh has
    not run it), for the tests that read or write with zarrita in node."""
    js = os.path.join(REPO, "tests", "js")
    if os.path.isdir(os.path.join(js, "node_modules", "zarrita")):
        return js
    check(shutil.which("npm"), "npm is not installed (scripts/install-deps.sh installs it)")
    r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=js,
                       capture_output=True, text=True, timeout=600)
    check(r.returncode == 0, "npm ci in tests/js failed: %s" % (r.stdout + r.stderr)[-2000:])
    return js
