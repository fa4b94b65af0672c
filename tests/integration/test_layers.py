#!/usr/bin/python3
"""-o layers=SEGMENT.ppm: MNT/layers/NN.tif and stack.tif sampled along a generated curved surface
(normals, invalid pixels, points near and past the edges). Compared with the ORIGINAL
scroll2zarr ppm_to_layers.py (exported from the mirror at test time and run on a zarr copy of the
volume) outside the documented edge differences, and with an independent numpy reference of the
documented rule everywhere. Also: stat size before reads, byte ranges, bad .ppm files refused
naming the field, bytes=1, materialize writes the same bytes."""

import functools
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oztest as oz  # noqa: E402
import numpy as np  # noqa: E402
import tifffile  # noqa: E402

S = oz.Suite(__file__)
SHAPE = (40, 50, 64)  # z, y, x
H, W = 130, 150       # .ppm rows, columns: 2 x 2 blocks of the original's 100 x 100
NLAYERS, NSTACK = 21, 7
MIRROR = "/work/.mirror/KhartesViewer+scroll2zarr/repo"


def write_ppm(path, data, header=None):
    """data: (H, W, 6) float64 -> a volume-cartographer .ppm."""
    h, w = data.shape[:2]
    text = header if header is not None else (
        "width: %d\nheight: %d\ndim: 6\nordered: true\ntype: double\nversion: 1\n<>\n" % (w, h))
    with open(path, "wb") as f:
        f.write(text.encode())
        f.write(np.ascontiguousarray(data, dtype="<f8").tobytes())


def make_surface():
    """A curved surface z = f(x, y) with unit normals, an invalid disc, and a few points placed
    near/past the volume's edges."""
    r, c = np.mgrid[0:H, 0:W].astype(np.float64)
    x = 8.25 + 0.3 * c + 0.01 * r
    y = 5.5 + 0.3 * r + 0.013 * c
    z = 20.3 + 4.0 * np.sin(c / 17.0) + 3.0 * np.cos(r / 23.0)
    dzdx = 4.0 / 17.0 * np.cos(c / 17.0) / 0.3
    dzdy = -3.0 / 23.0 * np.sin(r / 23.0) / 0.3
    n = np.stack([-dzdx, -dzdy, np.ones_like(z)], axis=-1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    d = np.concatenate([np.stack([x, y, z], axis=-1), n], axis=-1)
    d[(r - 60) ** 2 + (c - 40) ** 2 < 64] = 0.0          # invalid pixels (all six values 0)
    d[:3, :] = 0.0                                          # invalid rows at the top
    d[110, 120:125, 0] = SHAPE[2] - 1 + np.array([0.0, 0.3, -0.2, 0.9, -0.01])  # far x edge
    d[20, 10:13, 0] = [-0.5, -0.01, 0.0]                    # negative / zero x
    d[50, 70, 2] = 0.25                                     # close to z = 0 with normal along z
    return d


def reference_layers(vol, d, nlayers, nstack, maxv=65535):
    """The documented rule, in numpy: float32 points and normals, positions in double, trilinear
    with the original's weights and order, 0 for a sample whose 8 neighbours are not all inside,
    clamp, truncate. Returns (layers [n, H, W], stack [H, W], inside mask [n, H, W])."""
    half, sh = nlayers // 2, nstack // 2
    pts = d[..., :3].astype(np.float32)
    nrm = d[..., 3:].astype(np.float32)
    valid = (nrm != 0).any(axis=-1)
    data = vol.astype(np.float32)
    D = np.array(vol.shape)
    out = np.zeros((2 * half + 1,) + d.shape[:2], dtype=np.uint16 if maxv > 255 else np.uint8)
    inside_all = np.zeros(out.shape, dtype=bool)
    for k in range(2 * half + 1):
        p = pts.astype(np.float64) + np.float64(k - half) * nrm.astype(np.float64)
        zyx = p[..., ::-1]
        inside = valid & np.all((zyx >= 0) & (zyx < D - 1), axis=-1)
        inside_all[k] = inside
        q = zyx[inside]
        i = q.astype(np.int64)
        f = q - i
        a, b, c = f[:, 0], f[:, 1], f[:, 2]
        i0, j0, k0 = i[:, 0], i[:, 1], i[:, 2]

        def v(dz, dy, dx):
            return data[i0 + dz, j0 + dy, k0 + dx].astype(np.float64)
        r = v(0, 0, 0) * (1 - a) * (1 - b) * (1 - c)
        r = r + v(1, 0, 0) * a * (1 - b) * (1 - c)
        r = r + v(0, 1, 0) * (1 - a) * b * (1 - c)
        r = r + v(0, 0, 1) * (1 - a) * (1 - b) * c
        r = r + v(1, 0, 1) * a * (1 - b) * c
        r = r + v(0, 1, 1) * (1 - a) * b * c
        r = r + v(1, 1, 0) * a * b * (1 - c)
        r = r + v(1, 1, 1) * a * b * c
        r = np.minimum(np.maximum(r, 0), maxv)
        out[k][inside] = r.astype(out.dtype)
    stack = out[half - sh:half + sh + 1].max(axis=0)
    return out, stack, inside_all


@functools.lru_cache(None)
def fixture():
    root = oz.tmpdir("layers")
    src = os.path.join(root, "src")
    # Smooth-ish data with full-range detail, so interpolation and clamping both matter.
    rng = np.random.default_rng(15)
    zz, yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1], 0:SHAPE[2]]
    vol = (30000 + 20000 * np.sin(xx / 7.0) * np.cos(yy / 9.0) + 8000 * np.sin(zz / 5.0)
           + rng.integers(0, 6000, SHAPE)).clip(0, 65535).astype(np.uint16)
    vol = oz.make_stack(src, volume=vol)
    ppm = os.path.join(root, "segment.ppm")
    d = make_surface()
    write_ppm(ppm, d)
    return root, src, vol, ppm, d


def mount_opts(ppm, **kw):
    o = {"chunk": 16, "levels": 2, "layers": ppm, "layers_count": NLAYERS, "stack_count": NSTACK}
    o.update(kw)
    return o


def read_layers(m):
    names = sorted(os.listdir(os.path.join(m.path, "layers")))
    return names, {n: tifffile.imread(os.path.join(m.path, "layers", n)) for n in names}


@functools.lru_cache(None)
def original_output():
    """Runs scroll2zarr's ppm_to_layers.py (from the mirror) on a zarr copy of the volume."""
    try:
        import scipy  # noqa: F401
        import zarr
    except ImportError as e:
        raise oz.Skip("the original needs scipy and zarr: %s" % e)
    if not os.path.isdir(MIRROR):
        raise oz.Skip("no mirror of KhartesViewer/scroll2zarr at " + MIRROR)
    root, _, vol, ppm, _ = fixture()
    code = os.path.join(root, "orig")
    os.makedirs(code, exist_ok=True)
    for f in ("ppm_to_layers.py", "ppm.py"):
        r = subprocess.run(["git", "--git-dir=" + MIRROR, "show", "HEAD:" + f], capture_output=True, timeout=60)
        oz.check(r.returncode == 0, "git show %s: %s" % (f, r.stderr[-300:]))
        with open(os.path.join(code, f), "wb") as fh:
            fh.write(r.stdout)
    zdir = os.path.join(root, "vol.zarr")
    z = zarr.open(zdir, mode="w", shape=vol.shape, chunks=(16, 16, 16), dtype=vol.dtype)
    z[:] = vol
    out = os.path.join(root, "orig_layers")
    stack = os.path.join(root, "orig_stack.tif")
    r = subprocess.run([sys.executable, os.path.join(code, "ppm_to_layers.py"), ppm, zdir, out, stack,
                        "--number_of_layers", str(NLAYERS), "--number_of_stacked_layers", str(NSTACK)],
                       capture_output=True, text=True, timeout=600, cwd=code)
    oz.check(r.returncode == 0, "ppm_to_layers.py failed: %s" % r.stderr[-800:])
    layers = np.stack([tifffile.imread(os.path.join(out, "%02d.tif" % k)) for k in range(NLAYERS)])
    return layers, tifffile.imread(stack)


@S.case
def names_sizes_and_reference():
    root, src, vol, ppm, d = fixture()
    want, want_stack, _ = reference_layers(vol, d, NLAYERS, NSTACK)
    nstrips_rows = max(1, min(H, 65536 // (W * 2)))
    nstrips = -(-H // nstrips_rows)
    # Classic TIFF: 8-byte header, an IFD of 11 entries, two strip tables, then the pixels.
    size = 8 + 2 + 12 * 11 + 4 + (8 * nstrips if nstrips > 1 else 0) + H * W * 2
    with oz.Mount(src, mount_opts(ppm)) as m:
        names = os.listdir(os.path.join(m.path, "layers"))
        oz.check("layers" in os.listdir(m.path) and "0" in os.listdir(m.path), "root lists layers/ and the image")
        oz.check(sorted(names) == ["%02d.tif" % k for k in range(NLAYERS)] + ["stack.tif"], "names: %s" % names)
        for n in names:  # stat first: the size is known before any pixel is computed
            st = os.stat(os.path.join(m.path, "layers", n))
            oz.check(st.st_size == size, "%s: stat size %d, want %d" % (n, st.st_size, size))
        _, got = read_layers(m)
        for k in range(NLAYERS):
            g = got["%02d.tif" % k]
            oz.check(g.dtype == np.uint16 and g.shape == (H, W), "layer %d: %s %s" % (k, g.dtype, g.shape))
            oz.assert_array_equal(g, want[k], "layer %d vs the numpy reference" % k)
        oz.assert_array_equal(got["stack.tif"], want_stack, "stack vs the numpy reference")
        with open(os.path.join(m.path, "layers", "05.tif"), "rb") as f:
            oz.check(len(f.read()) == size, "read size = stat size")


@S.case
def equals_original_ppm_to_layers():
    root, src, vol, ppm, d = fixture()
    orig, orig_stack = original_output()
    _, _, inside = reference_layers(vol, d, NLAYERS, NSTACK)
    valid = (d[..., 3:].astype(np.float32) != 0).any(axis=-1)
    # Documented differences: (1) samples whose 8 neighbours are not all inside (here 0; the
    # original extrapolates or wraps them); (2) the original's whole 100x100 block when one valid
    # sample reaches the far edge (p >= dim - 1: its IndexError leaves the block 0).
    excl = valid & ~inside.all(axis=0)
    pts = d[..., :3].astype(np.float32).astype(np.float64)
    nrm = d[..., 3:].astype(np.float32).astype(np.float64)
    far = np.zeros((H, W), dtype=bool)
    half = NLAYERS // 2
    for k in range(NLAYERS):
        p = (pts + (k - half) * nrm)[..., ::-1]
        far |= valid & np.any(p >= np.array(SHAPE) - 1, axis=-1)
    for bv in range(0, H, 100):
        for bu in range(0, W, 100):
            if far[bv:bv + 100, bu:bu + 100].any():
                excl[bv:bv + 100, bu:bu + 100] = True
                oz.check(not orig[:, bv:bv + 100, bu:bu + 100].any(), "the original zeroes block %d,%d" % (bv, bu))
    # The excluded single pixels are all near an edge of the volume: the surface point is within
    # half a layer stack (unit normals) plus one voxel of a face.
    dim_xyz = np.array(SHAPE[::-1], dtype=np.float64)
    near = valid & (np.any(pts < half + 1, axis=-1) | np.any(pts > dim_xyz - 2 - half, axis=-1))
    single = valid & ~inside.all(axis=0)
    oz.check(not (single & ~near).any(), "a pixel far from every edge has a sample outside")
    oz.check(single.sum() >= 9 and excl.sum() < 0.5 * valid.sum(), "edge cases present: %d px, %d excluded"
             % (single.sum(), excl.sum()))
    keep = valid & ~excl
    with oz.Mount(src, mount_opts(ppm)) as m:
        _, got = read_layers(m)
    off1 = 0
    for k in range(NLAYERS):
        g = got["%02d.tif" % k].astype(np.int64)
        o = orig[k].astype(np.int64)
        diff = np.abs(g - o)[keep]
        oz.check(diff.max() <= 1, "layer %d: max difference %d to the original" % (k, diff.max()))
        off1 += int((diff == 1).sum())
        oz.check(not g[~valid].any(), "layer %d: invalid pixels are 0" % k)
    share = off1 / float(keep.sum() * NLAYERS)
    print("layers: %d of %d compared samples (%.4f %%) differ by 1 grey level from ppm_to_layers.py; "
          "%d of %d valid pixels excluded as documented edge differences"
          % (off1, keep.sum() * NLAYERS, 100 * share, excl.sum(), valid.sum()))
    oz.check(share <= 0.005, "share of 1-level differences %.4f %% > 0.5 %%" % (100 * share))
    sd = np.abs(got["stack.tif"].astype(np.int64) - orig_stack.astype(np.int64))[keep]
    oz.check(sd.max() <= 1, "stack: max difference %d" % sd.max())


@S.case
def byte_ranges():
    root, src, vol, ppm, d = fixture()
    rng = np.random.default_rng(3)
    with oz.Mount(src, mount_opts(ppm)) as m:
        p = os.path.join(m.path, "layers", "13.tif")
        size = os.stat(p).st_size
        ranges = [(0, 8), (100, 300), (size - 5, 100), (size // 2, 1), (size, 10)]
        ranges += [(int(rng.integers(0, size)), int(rng.integers(1, 70000))) for _ in range(20)]
        fd = os.open(p, os.O_RDONLY)
        try:
            parts = [os.pread(fd, n, o) for o, n in ranges]  # before the whole file is read
        finally:
            os.close(fd)
        with open(p, "rb") as f:
            whole = f.read()
        for (o, n), got in zip(ranges, parts):
            oz.check(got == whole[o:o + n], "range %d+%d differs from the whole file's slice" % (o, n))


@S.case
def bytes1_is_uint8():
    root, src, vol, ppm, d = fixture()
    want, want_stack, _ = reference_layers(vol // 256, d, 5, 3, maxv=255)
    with oz.Mount(src, mount_opts(ppm, bytes=1, layers_count=5, stack_count=3)) as m:
        names, got = read_layers(m)
    oz.check(names == ["00.tif", "01.tif", "02.tif", "03.tif", "04.tif", "stack.tif"], "names %s" % names)
    for k in range(5):
        oz.check(got["%02d.tif" % k].dtype == np.uint8, "uint8 layers with bytes=1")
        oz.assert_array_equal(got["%02d.tif" % k], want[k], "bytes=1 layer %d" % k)
    oz.assert_array_equal(got["stack.tif"], want_stack, "bytes=1 stack")


def refused(src, ppm, opts=None):
    mnt = oz.tmpdir("mnt")
    o = mount_opts(ppm)
    o.update(opts or {})
    r = subprocess.run([oz.binary(), src, mnt, "-o", oz.format_options(o)], capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    if oz.is_mounted(mnt):
        subprocess.run(["fusermount3", "-u", "-z", mnt])
        raise oz.CheckFailed("mounted a bad .ppm: " + ppm)
    oz.check(r.returncode != 0, "exit status 0 for " + ppm)
    return r.stderr


@S.case
def bad_ppm_files_refused():
    root, src, vol, ppm, d = fixture()
    small = d[:4, :5].copy()
    good = "width: 5\nheight: 4\ndim: 6\nordered: true\ntype: double\nversion: 1\n<>\n"
    cases = {
        "no_end": (good.replace("<>\n", ""), "<>"),
        "dim": (good.replace("dim: 6", "dim: 3"), "dim"),
        "type": (good.replace("type: double", "type: float"), "type"),
        "ordered": (good.replace("ordered: true", "ordered: false"), "ordered"),
        "width": (good.replace("width: 5", "width: five"), "width"),
        "noheight": (good.replace("height: 4\n", ""), "height"),
        "wrong_size": (good.replace("height: 4", "height: 5"), "truncated"),
        "too_long": (good.replace("height: 4", "height: 3"), "header's size"),
    }
    for name, (header, word) in cases.items():
        p = os.path.join(root, name + ".ppm")
        write_ppm(p, small, header)
        err = refused(src, p)
        oz.check(p in err and word in err, "%s: message %r lacks the file or %r" % (name, err[-400:], word))
    p = os.path.join(root, "truncated.ppm")
    write_ppm(p, small)
    with open(p, "r+b") as f:
        f.truncate(os.path.getsize(p) - 7)
    err = refused(src, p)
    oz.check("truncated" in err and p in err, "truncated: %r" % err[-400:])
    bad = small.copy()
    bad[2, 3, 4] = np.nan
    p = os.path.join(root, "nan.ppm")
    write_ppm(p, bad)
    err = refused(src, p)
    oz.check("ny of pixel (row 2, column 3)" in err and "NaN" in err, "nan: %r" % err[-400:])
    bad = small.copy()
    bad[1, 0, 0] = 1e300  # infinite as float32
    p = os.path.join(root, "huge.ppm")
    write_ppm(p, bad)
    err = refused(src, p)
    oz.check("x of pixel (row 1, column 0)" in err, "huge: %r" % err[-400:])
    err = refused(src, os.path.join(root, "absent.ppm"))
    oz.check("absent.ppm" in err, "absent file: %r" % err[-400:])
    err = refused(src, ppm, {"layers_count": 5, "stack_count": 9})
    oz.check("stack_count" in err, "stack_count > layers_count: %r" % err[-400:])


@S.case
def materialize_writes_same_bytes_and_warns():
    root, src, vol, ppm, d = fixture()
    dest = os.path.join(oz.tmpdir("dest"), "out")
    r = oz.materialize(src, dest, mount_opts(ppm))
    oz.check("samples outside the volume" in r.stderr, "one warning with the share: %r" % r.stderr[-600:])
    oz.check(r.stderr.count("samples outside the volume") == 1, "the warning is given once")
    files = oz.tree_files(os.path.join(dest, "layers"))
    oz.check(len(files) == NLAYERS + 1, "materialized layer files: %s" % sorted(files))
    with oz.Mount(src, mount_opts(ppm)) as m:
        for n, data in files.items():
            with open(os.path.join(m.path, "layers", n), "rb") as f:
                oz.check(f.read() == data, "materialized %s differs from the mount's" % n)
    oz.check(os.path.isfile(os.path.join(dest, ".zattrs")), "the image tree is written too")



@S.case
def remote_zarr_source_over_http():
    """The layers view over a zarr store on an HTTP server: the same pixels as the reference, and
    materialize from the URL writes the same files (streamed: no temp files left behind)."""
    from faultserver import FaultServer
    root, src, vol, ppm, d = fixture()
    want, want_stack, _ = reference_layers(vol, d, NLAYERS, NSTACK)
    web = oz.tmpdir("layers-http")
    oz.make_zarr(os.path.join(web, "vol.zarr"), vol, (16, 16, 16))
    with FaultServer(root=web) as srv:
        url = srv.url("vol.zarr")
        with oz.Mount(url, mount_opts(ppm)) as m:
            _, got = read_layers(m)
            for k in range(NLAYERS):
                oz.assert_array_equal(got["%02d.tif" % k], want[k], "layer %d over HTTP" % k)
            oz.assert_array_equal(got["stack.tif"], want_stack, "stack over HTTP")
            oz.check(oz.stats(m.path)["http_requests"] > 0, "no HTTP requests were made")
        dest = os.path.join(oz.tmpdir("dest-http"), "out")
        oz.materialize(url, dest, mount_opts(ppm))
    names = sorted(os.listdir(os.path.join(dest, "layers")))
    oz.check(names == ["%02d.tif" % k for k in range(NLAYERS)] + ["stack.tif"], "materialized: %s" % names)
    for k in range(NLAYERS):
        oz.assert_array_equal(tifffile.imread(os.path.join(dest, "layers", "%02d.tif" % k)), want[k],
                              "materialized layer %d from the URL" % k)

if __name__ == "__main__":
    S.main()
