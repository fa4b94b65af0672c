#!/usr/bin/python3
"""omezarr-surface-to-obj on generated surfaces (.ppm with holes and two separate parts, .vcps with
anisotropic spacing, .obj), compared with the ORIGINAL scroll2zarr surface_to_obj.py (exported
from the mirror at test time, run with Debian's python3 + numpy/scipy/opencv): the same vertices
(to 1e-6, in the same order), the same triangles (as sets, orientation kept), the same
per-component files. Also: windows, an empty window (exit 1 with a message), bad and truncated
inputs refused naming the file/option, and the precomputed legacy meshes read back with a
spec-based reader."""

import functools
import json
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oztest as oz  # noqa: E402
import numpy as np  # noqa: E402

S = oz.Suite(__file__)
MIRROR = "/work/.mirror/KhartesViewer+scroll2zarr/repo"
BUILD = os.environ.get("OMEZARRFS_BUILD", os.path.join(os.path.dirname(__file__), "../../build"))
TOOL = os.path.join(BUILD, "cli", "omezarr-surface-to-obj")


def write_ppm(path, d):
    h, w = d.shape[:2]
    with open(path, "wb") as f:
        f.write(("width: %d\nheight: %d\ndim: 6\nordered: true\ntype: double\nversion: 1\n<>\n" % (w, h)).encode())
        f.write(np.ascontiguousarray(d, dtype="<f8").tobytes())


def write_vcps(path, p):
    h, w = p.shape[:2]
    with open(path, "wb") as f:
        f.write(("width: %d\nheight: %d\ndim: 3\nordered: true\ntype: double\nversion: 1\n<>\n" % (w, h)).encode())
        f.write(np.ascontiguousarray(p, dtype="<f8").tobytes())


def ppm_surface(h=150, w=200, seed=3):
    """A curved surface with a hole, a ragged edge and a second, separate part on the right."""
    r, c = np.mgrid[0:h, 0:w].astype(np.float64)
    rng = np.random.default_rng(seed)
    x = 100.25 + 0.9 * c + 0.05 * r + 0.01 * rng.standard_normal((h, w))
    y = 200.5 + 0.3 * np.sin(c / 13.0) * 10 + 0.02 * c
    z = 50.0 + 1.0 * r + 0.002 * c * c
    n = np.stack([np.ones_like(x), np.zeros_like(x), 0.5 * np.ones_like(x)], axis=-1)
    d = np.concatenate([np.stack([x, y, z], axis=-1), n], axis=-1)
    d[(r - 70) ** 2 + (c - 50) ** 2 < 15 ** 2] = 0.0          # a hole
    d[:, 100:150] = 0.0                                       # a wide gap: two components
    d[r > 140 - 0.2 * c] = 0.0                                # a slanted ragged edge
    d[:6, :] = 0.0
    return d


def vcps_surface(h=60, w=200):
    """A wound surface: rows are z slices 1 apart, points along a row ~0.4 apart."""
    r, c = np.mgrid[0:h, 0:w].astype(np.float64)
    ang = c * 0.4 / 30.0
    rad = 30.0 + 0.05 * c + 0.5 * np.sin(r / 7.0)
    return np.stack([200 + rad * np.cos(ang), 210 + rad * np.sin(ang), 10.0 + r], axis=-1)


@functools.lru_cache(None)
def root():
    return oz.tmpdir("surface")


@functools.lru_cache(None)
def original_code():
    try:
        import scipy  # noqa: F401
        import cv2  # noqa: F401
        import tifffile  # noqa: F401
    except ImportError as e:
        raise oz.Skip("the original needs scipy, opencv (python3-opencv) and tifffile: %s" % e)
    if not os.path.isdir(MIRROR):
        raise oz.Skip("no mirror of KhartesViewer/scroll2zarr at " + MIRROR)
    code = os.path.join(root(), "orig")
    os.makedirs(code, exist_ok=True)
    for f in ("surface_to_obj.py", "ppm.py"):
        r = subprocess.run(["git", "--git-dir=" + MIRROR, "show", "HEAD:" + f], capture_output=True, timeout=60)
        oz.check(r.returncode == 0, "git show %s: %s" % (f, r.stderr[-300:]))
        with open(os.path.join(code, f), "wb") as fh:
            fh.write(r.stdout)
    return code


def run_ours(args, ok=True):
    r = subprocess.run([TOOL] + args, capture_output=True, text=True, timeout=120)
    if ok:
        oz.check(r.returncode == 0, "omezarr-surface-to-obj %s: rc %d: %s" % (args, r.returncode, r.stderr[-800:]))
    return r


def run_original(args):
    code = original_code()
    r = subprocess.run([sys.executable, os.path.join(code, "surface_to_obj.py")] + args, capture_output=True,
                       text=True, timeout=300, cwd=code)
    oz.check(r.returncode == 0, "surface_to_obj.py %s failed: %s" % (args, r.stderr[-800:]))
    return r


def read_obj(path):
    v, vt, f = [], [], []
    with open(path) as fh:
        for line in fh:
            w = line.split()
            if not w:
                continue
            if w[0] == "v":
                v.append([float(x) for x in w[1:4]])
            elif w[0] == "vt":
                vt.append([float(x) for x in w[1:3]])
            elif w[0] == "f":
                f.append([int(x.split("/")[0]) - 1 for x in w[1:4]])
    return np.array(v).reshape(-1, 3), np.array(vt).reshape(-1, 2), np.array(f, dtype=np.int64).reshape(-1, 3)


def tri_set(f):
    """Triangles as a set, each rotated so its smallest index comes first (orientation kept)."""
    out = set()
    for t in f.tolist():
        k = t.index(min(t))
        out.add(tuple(t[k:] + t[:k]))
    return out


def same_mesh(ours, theirs, what):
    v1, t1, f1 = read_obj(ours)
    v2, t2, f2 = read_obj(theirs)
    oz.check(v1.shape == v2.shape, "%s: %d vertices, the original %d" % (what, len(v1), len(v2)))
    oz.check(len(f1) == len(f2), "%s: %d triangles, the original %d" % (what, len(f1), len(f2)))
    oz.check(np.allclose(v1, v2, rtol=0, atol=1e-6), "%s: vertex positions differ by up to %g" % (
        what, np.abs(v1 - v2).max()))
    oz.check(np.array_equal(t1, t2), "%s: vt differ" % what)
    # Zero-area triangles (all three corners on one straight row or column of the grid, which qhull
    # adds along a straight hull edge when it triangulates a merged facet) are qhull's arbitrary
    # choice, which differs between qhull versions (scipy vendors 2019.1, Debian ships 2020.2):
    # those must agree in number; every triangle of nonzero area must be the same.
    def split(t, f):
        a, b, c = t[f[:, 0]], t[f[:, 1]], t[f[:, 2]]
        area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
        return tri_set(f[area != 0]), int((area == 0).sum())
    (s1, z1), (s2, z2) = split(t1, f1), split(t2, f2)
    oz.check(s1 == s2, "%s: triangle sets differ: %d only ours, %d only the original's (of %d)" % (
        what, len(s1 - s2), len(s2 - s1), len(s1)))
    oz.check(z1 == z2, "%s: %d zero-area triangles, the original %d" % (what, z1, z2))
    return v1, t1, f1


def outputs(d, stem):
    return sorted(n for n in os.listdir(d) if n.startswith(stem) and n.endswith(".obj"))


def compare(inp, args, tag):
    d = os.path.join(root(), tag)
    for side in ("ours", "orig"):
        os.makedirs(os.path.join(d, side), exist_ok=True)
    run_ours([inp, os.path.join(d, "ours", "out.obj")] + args)
    run_original([inp, os.path.join(d, "orig", "out.obj")] + args)
    names = outputs(os.path.join(d, "orig"), "out")
    oz.check(outputs(os.path.join(d, "ours"), "out") == names, "%s: files %s, the original %s" % (
        tag, outputs(os.path.join(d, "ours"), "out"), names))
    for n in names:
        same_mesh(os.path.join(d, "ours", n), os.path.join(d, "orig", n), "%s %s" % (tag, n))
    return d, names


@functools.lru_cache(None)
def ppm_path():
    p = os.path.join(root(), "seg.ppm")
    write_ppm(p, ppm_surface())
    return p


@functools.lru_cache(None)
def vcps_path():
    p = os.path.join(root(), "seg.vcps")
    write_vcps(p, vcps_surface())
    return p


@S.case
def ppm_matches_original():
    for zstep in ("0", "4", "9", "24"):
        d, names = compare(ppm_path(), ["--zstep", zstep], "ppm_z" + zstep)
        if zstep == "4":
            oz.check(len(names) >= 3, "zstep %s: expected the two parts as separate files, got %s" % (zstep, names))
    # the vertices are exactly the valid grid points (every 4th row, every k-th column)
    v, t, f = read_obj(os.path.join(root(), "ppm_z0", "ours", "out.obj"))
    d = ppm_surface()
    valid = (d[..., 3:] != 0).any(axis=-1)
    rows, cols = np.nonzero(valid)
    oz.check(np.array_equal(t, np.stack([cols, rows], axis=-1).astype(float)), "zstep 0: vt are not the valid (col, row)")
    oz.check(np.array_equal(v, d[rows, cols, :3]), "zstep 0: v are not the points")


@S.case
def vcps_matches_original():
    compare(vcps_path(), [], "vcps_default")                    # zsmooth 6 (rows: sigma 16), zstep 24
    compare(vcps_path(), ["--zstep", "5", "--zsmooth", "2.5"], "vcps_z5")
    compare(vcps_path(), ["--zstep", "3", "--zsmooth", "0"], "vcps_nosmooth")


@S.case
def windows_match_original():
    compare(ppm_path(), ["--zstep", "4", "--uvwindow", "20:90,:100"], "ppm_uvwin")
    compare(ppm_path(), ["--zstep", "4", "--xyzwindow", "150:190,,80:"], "ppm_xyzwin")
    compare(ppm_path(), ["--zstep", "6", "--uvwindow", "60,40:120.5:1", "--xyzwindow", ":,:,:170"], "ppm_bothwin")
    compare(vcps_path(), ["--zstep", "4", "--xyzwindow", "200:240,,"], "vcps_xyzwin")


@S.case
def obj_matches_original():
    src = os.path.join(root(), "ppm_z4", "orig", "out.obj")
    if not os.path.exists(src):
        compare(ppm_path(), ["--zstep", "4"], "ppm_z4")
    compare(src, [], "obj_plain")
    compare(src, ["--uvwindow", "30:80,20:", "--xyzwindow", ",,:120.3"], "obj_win")
    # v/vt index pairs that differ, comments, colours, quads and blank lines
    p = os.path.join(root(), "hand.obj")
    with open(p, "w") as fh:
        fh.write("# Created: test\n\nv 0 0 0\nv 1.5 0 0 0.1 0.2 0.3\nv 0 2.25 0.1\nv 1 1 1\n"
                 "vt 0.5 0.25\nvt 0.75 0.125\nvt 0.1 0.2\nvt 3 4\nvt 9 9 9\n"
                 "f 1/4 2/3 3/2\nf 2/1/1 4/4/1 3/2/1\nf 1 2 3 4\n")
    compare(p, [], "obj_hand")


def component_meshes(d):
    names = outputs(d, "out")
    return [read_obj(os.path.join(d, n)) for n in names[1:]] if len(names) > 1 else [read_obj(os.path.join(d, names[0]))]


def read_legacy_mesh(directory, seg):
    """The Neuroglancer precomputed legacy single-resolution mesh format, from its spec."""
    with open(os.path.join(directory, "info")) as fh:
        oz.check(json.load(fh) == {"@type": "neuroglancer_legacy_mesh"}, "info")
    with open(os.path.join(directory, "%d:0" % seg)) as fh:
        frags = json.load(fh)["fragments"]
    vs, fs, base = [], [], 0
    for fr in frags:
        b = open(os.path.join(directory, fr), "rb").read()
        (n,) = struct.unpack_from("<I", b, 0)
        v = np.frombuffer(b, "<f4", 3 * n, 4).reshape(n, 3)
        rest = len(b) - 4 - 12 * n
        oz.check(rest % 12 == 0, "fragment %s: %d index bytes" % (fr, rest))
        f = np.frombuffer(b, "<u4", rest // 4, 4 + 12 * n).reshape(-1, 3)
        oz.check(f.size == 0 or f.max() < n, "fragment %s: index out of range" % fr)
        vs.append(v)
        fs.append(f.astype(np.int64) + base)
        base += n
    return np.concatenate(vs), np.concatenate(fs)


@S.case
def precomputed_meshes():
    d = os.path.join(root(), "pre")
    os.makedirs(d, exist_ok=True)
    mesh = os.path.join(d, "mesh")
    r = run_ours([ppm_path(), os.path.join(d, "out.obj"), "--zstep", "4", "--precomputed", mesh, "--first-id", "7"])
    comps = component_meshes(d)
    oz.check(len(comps) >= 2, "expected several components")
    oz.check("ids 7..%d" % (6 + len(comps)) in r.stdout, r.stdout)
    for k, (v, t, f) in enumerate(comps):
        mv, mf = read_legacy_mesh(mesh, 7 + k)
        oz.check(np.allclose(mv, v.astype(np.float32), atol=0), "segment %d: vertices" % (7 + k))
        oz.check(tri_set(mf) == tri_set(f), "segment %d: triangles" % (7 + k))
    oz.check(not os.path.exists(os.path.join(mesh, "%d:0" % (7 + len(comps)))), "one segment too many")


def refused(args, *words, rc=1):
    out = os.path.join(root(), "refused.obj")
    if os.path.exists(out):
        os.remove(out)
    r = run_ours(args[:1] + [out] + args[1:], ok=False)
    oz.check(r.returncode == rc, "%s: rc %d (want %d): %s" % (args, r.returncode, rc, r.stderr))
    for w in words:
        oz.check(w in r.stderr, "%s: %r not in %r" % (args, w, r.stderr))
    oz.check(not os.path.exists(out), "%s: wrote an output" % args)


@S.case
def empty_window_and_bad_input():
    refused([ppm_path(), "--uvwindow", "1000:2000,:"], "no triangles", "--uvwindow 1000:2000,:")
    refused([ppm_path(), "--xyzwindow", ",,-50:-10"], "no triangles", "--xyzwindow")
    refused([ppm_path(), "--uvwindow", "1:2"], "--uvwindow", "2 comma-separated", rc=2)
    refused([ppm_path(), "--xyzwindow", "a:b,,"], "--xyzwindow", "not a number", rc=2)
    refused([ppm_path(), "--uvwindow", "0:10:2,"], "step must be 1", rc=2)
    refused([ppm_path(), "--zstep", "-1"], "--zstep", rc=2)
    refused([ppm_path(), "--zstep", "x"], "--zstep", rc=2)
    refused([ppm_path(), "--zsmooth", "nan"], "--zsmooth", rc=2)
    refused([os.path.join(root(), "nothere.ppm")], "nothere.ppm")
    refused([os.path.join(root(), "seg.txt")], "seg.txt", ".ppm, .vcps or .obj", rc=2)
    b = open(ppm_path(), "rb").read()
    t = os.path.join(root(), "trunc.ppm")
    open(t, "wb").write(b[:len(b) - 100])
    refused([t], "trunc.ppm")
    b = open(vcps_path(), "rb").read()
    t = os.path.join(root(), "trunc.vcps")
    open(t, "wb").write(b[:len(b) - 8])
    refused([t], "trunc.vcps", "bytes of points")
    open(t, "wb").write(b[:30])
    refused([t], "trunc.vcps", "'<>'")
    open(t, "wb").write(b.replace(b"type: double", b"type: float"))
    refused([t], "trunc.vcps", "type")
    o = os.path.join(root(), "bad.obj")
    open(o, "w").write("v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nf 1 2 3\n")
    refused([o], "bad.obj", "line 5", "texture vertex 2")
    open(o, "w").write("v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nf 1 2 4\n")
    refused([o], "bad.obj", "line 7", "vertex 4")
    open(o, "w").write("v 0 0 zero\n")
    refused([o], "bad.obj", "line 1", "'zero'")
    open(o, "w").write("v 0 0 0\n")
    refused([o], "bad.obj", "no triangles")
    # a flat line of valid points cannot be triangulated
    d = ppm_surface(40, 40)
    d[...] = 0
    d[10:12, :, :] = 0
    d[10, :, 0] = np.arange(40.0)
    d[10, :, 3] = 1
    d[11, :, 0] = np.arange(40.0)
    d[11, :, 3] = 1
    p = os.path.join(root(), "line.ppm")
    write_ppm(p, d)
    r = run_ours([p, os.path.join(root(), "line.obj"), "--zstep", "24"], ok=False)
    oz.check(r.returncode == 1 and "line.ppm" in r.stderr, "a degenerate .ppm: %s" % r.stderr)


if __name__ == "__main__":
    S.main()
