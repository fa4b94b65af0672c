#!/usr/bin/python3
"""The real Neuroglancer (npm neuroglancer, bundled) in headless Chromium renders a mount of a
generated TIFF stack served by omezarr-serve, and the gray levels on screen are the data's.

Uses the shared ngcheck tool (../shared/tools/ngcheck beside the repository, or $NGCHECK_DIR),
set up in .deps/ngcheck by scripts/setup-viewer-checks.sh (which this test runs; it is
idempotent). In that copy, ngcheck's data and page servers are replaced by omezarr-serve, so the
viewer reads the mount through the project's own server. Skipped, saying so, only when the
ngcheck tool is absent."""
import json
import os
import re
import subprocess
import sys

import numpy as np

import oztest as oz
import ozserve

S = oz.Suite("neuroglancer", case_timeout=900)
VALUES = (0, 60, 220)  # uint8: the default shader shows voxel value v as gray v


def ngcheck_copy():
    src = os.environ.get("NGCHECK_DIR") or os.path.join(os.path.dirname(oz.REPO), "shared",
                                                        "tools", "ngcheck")
    if not os.path.isfile(os.path.join(src, "run.sh")):
        raise oz.Skip("the ngcheck tool is not at %s (set NGCHECK_DIR to ngcheck's folder)" % src)
    env = dict(os.environ, NGCHECK_DIR=src)
    r = subprocess.run([os.path.join(oz.REPO, "scripts", "setup-viewer-checks.sh")], env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1800)
    oz.check(r.returncode == 0, "setup-viewer-checks.sh failed: %s" % (r.stdout + r.stderr)[-3000:])
    copy = os.path.join(oz.REPO, ".deps", "ngcheck")
    # run.sh starts "$PY cors_server.py --dir D --log L --port-file F" for the data and the page
    # server: make that omezarr-serve (port 0 = a free port, as ngcheck's own server defaults).
    with open(os.path.join(copy, "cors_server.py"), "w") as f:
        f.write("# Written by tests/integration/test_neuroglancer.py: ngcheck's servers are "
                "omezarr-serve.\nimport os, sys\nos.execv('/usr/bin/python3', ['/usr/bin/python3',"
                " %r, '--port', '0'] + sys.argv[1:])\n" % ozserve.SERVE)
    return copy


def test_volume(n=96):
    """A checkerboard of 16-voxel cubes (0 and 60) with a sphere of 220, and a slab x < 32 of
    zeros, so that some chunks are empty (absent, 404) and must show as fill value 0."""
    z, y, x = np.meshgrid(*(np.arange(n),) * 3, indexing="ij")
    vol = (((z // 16 + y // 16 + x // 16) % 2) * VALUES[1]).astype(np.uint8)
    c = (n - 1) / 2.0
    vol[(z - c) ** 2 + (y - c) ** 2 + (x - c) ** 2 <= (0.3 * n) ** 2] = VALUES[2]
    vol[:, :, :32] = 0
    return vol


PRECOMPUTED_CHUNK = re.compile(r"[0-9]+-[0-9]+_[0-9]+-[0-9]+_[0-9]+-[0-9]+")


def render_and_check(source, options, scheme="zarr2", expect_404=True):
    """Mounts `source` under a served directory, renders it with the real Neuroglancer (data
    source scheme `scheme`) and checks the gray levels and the HTTP statuses the viewer saw.
    expect_404: some empty chunk must have been asked for and answered 404 (fill value)."""
    ng = ngcheck_copy()
    serve_root = oz.tmpdir("www")
    mnt = os.path.join(serve_root, "scroll.zarr")
    os.mkdir(mnt)
    out = oz.tmpdir("ngcheck-out")
    with oz.Mount(source, options, mountpoint=mnt):
        env = dict(os.environ, NGCHECK_NO_SETUP="1", NGCHECK_TIMEOUT="120", NGCHECK_SCHEME=scheme,
                   NGCHECK_EXPECT_GRAY=",".join(map(str, VALUES)))
        r = subprocess.run([os.path.join(ng, "run.sh"), serve_root, "scroll.zarr", out], env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
        log = (r.stdout + r.stderr)[-4000:]
        oz.check(r.returncode == 0 and "NGCHECK PASS" in r.stdout,
                 "ngcheck failed (exit %d): %s" % (r.returncode, log))
    with open(os.path.join(out, "check.json")) as f:
        pixels = json.load(f)
    # Every gray level covering >= 1% of the view is one of the data's values (+-3), and each
    # value of the data shows (NGCHECK_EXPECT_GRAY above).
    shown = [t["gray"] for t in pixels["top_levels"] if t["frac"] >= 0.01]
    oz.check(shown and all(min(abs(g - v) for v in VALUES) <= 3 for g in shown),
             "gray levels shown %r are not the data's %r" % (pixels["top_levels"], VALUES))
    with open(os.path.join(out, "requests.log")) as f:
        reqs = [line.split() for line in f if line.strip()]
    codes = {code for _, _, code, *_ in reqs}
    # 206: a shard's index and inner chunks are read by range (zarr v3 sharding).
    oz.check(codes <= {"200", "206", "404"}, "statuses other than 200/206/404: %r" % sorted(codes))
    def is_chunk(p):
        name = p.rsplit("/", 1)[-1]
        return name.isdigit() if scheme != "precomputed" else PRECOMPUTED_CHUNK.fullmatch(name) is not None
    chunk = [(p, c) for _, p, c, *_ in reqs if is_chunk(p)]
    oz.check(any(c in ("200", "206") for _, c in chunk), "no chunk served: %r" % reqs)
    if options.get("shard", 1) > 1:
        oz.check("206" in codes, "no shard was read by range: %r" % reqs)
    if expect_404:
        oz.check(any(c == "404" for _, c in chunk),
                 "no empty chunk was requested (404 -> fill value): %r" % reqs)
    return reqs


@S.case
def neuroglancer_renders_a_served_mount():
    src = oz.tmpdir("src")
    vol = oz.make_stack(src, volume=test_volume())
    oz.check(set(np.unique(vol)) == set(VALUES), "test volume values %r" % np.unique(vol))
    render_and_check(src, {"chunk": 32, "levels": 3})


@S.case
def neuroglancer_renders_ome_zarr_05_sharded():
    """-o format=ome-zarr-0.5 with shard=2 and blosc, as a zarr3:// source: Neuroglancer reads
    the shard indexes and inner chunks by HTTP range from omezarr-serve."""
    src = oz.tmpdir("src")
    oz.make_stack(src, volume=test_volume())
    render_and_check(src, {"chunk": 16, "levels": 3, "format": "ome-zarr-0.5", "shard": 2,
                           "compression": "blosc"}, scheme="zarr3")


@S.case
def neuroglancer_renders_ome_zarr_05_unsharded():
    src = oz.tmpdir("src")
    oz.make_stack(src, volume=test_volume())
    render_and_check(src, {"chunk": 32, "levels": 3, "format": "ome-zarr-0.5", "shard": 1}, scheme="zarr3")


@S.case
def neuroglancer_renders_precomputed_raw():
    """-o format=precomputed (raw, empty=keep: the zero chunks are real files) as a
    precomputed:// source."""
    src = oz.tmpdir("src")
    oz.make_stack(src, volume=test_volume())
    reqs = render_and_check(src, {"chunk": 32, "levels": 3, "format": "precomputed"}, scheme="precomputed",
                            expect_404=False)
    oz.check(any(p.endswith("/info") and c == "200" for _, p, c, *_ in reqs), "info not read: %r" % reqs)


@S.case
def neuroglancer_renders_precomputed_jpeg():
    """compression=jpeg: Neuroglancer decodes the x-wide, y*z-high JPEG chunks; the gray levels
    on screen are the data's (within the check's +-3)."""
    src = oz.tmpdir("src")
    oz.make_stack(src, volume=test_volume())
    render_and_check(src, {"chunk": 32, "levels": 3, "format": "precomputed", "compression": "jpeg"},
                     scheme="precomputed", expect_404=False)


@S.case
def neuroglancer_renders_precomputed_gzip_and_absent_chunks():
    """compression=gzip (omezarr-serve sends Content-Encoding: gzip) with empty=omit: the zero
    chunks are 404 and the viewer shows them as empty (black, the value 0's gray)."""
    src = oz.tmpdir("src")
    oz.make_stack(src, volume=test_volume())
    reqs = render_and_check(src, {"chunk": 16, "levels": 3, "format": "precomputed", "compression": "gzip",
                                  "empty": "omit"}, scheme="precomputed", expect_404=True)
    oz.check(any(PRECOMPUTED_CHUNK.fullmatch(p.rsplit("/", 1)[-1]) and c == "200" for _, p, c, *_ in reqs),
             "no gzip chunk served: %r" % reqs)


def segment_colours(ng, png, report):
    """Colours (quantized to 16 levels per channel) of the inner 80% of the data panels that are
    not grey (channel spread > 40) and cover >= 1% of it: {colour: fraction}."""
    w, h, bpp, rows = _read_png(ng, png)
    with open(report) as f:
        boxes = json.load(f).get("panels") or [{"x": 0, "y": 0, "width": w, "height": h}]
    counts, n = {}, 0
    for b in boxes:
        mx, my = 0.1 * b["width"], 0.1 * b["height"]
        x0, y0 = max(0, int(b["x"] + mx)), max(0, int(b["y"] + my))
        x1, y1 = min(w, int(b["x"] + b["width"] - mx)), min(h, int(b["y"] + b["height"] - my))
        for y in range(y0, y1):
            r = rows[y]
            for x in range(x0, x1):
                n += 1
                px = r[x * bpp:x * bpp + 3]
                if max(px) - min(px) > 40:
                    key = tuple(v // 16 for v in px)
                    counts[key] = counts.get(key, 0) + 1
    return {k: c / n for k, c in counts.items() if n and c >= 0.01 * n}


def _read_png(ng, path):
    """ngcheck's own stdlib PNG decoder."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("check_png", os.path.join(ng, "check_png.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.read_png(path)


@S.case
def neuroglancer_shows_a_label_image_as_a_segmentation_layer():
    """-o labels=cells:LABELS with format=precomputed: MNT/labels/cells is a precomputed
    segmentation (compressed_segmentation chunks); Neuroglancer opens it as a segmentation layer
    and paints its segments in distinct (non-grey) colours."""
    ng = ngcheck_copy()
    # ngcheck's state builder makes an image layer; let the environment choose the layer type
    # (and extra layer members) in this copy.
    p = os.path.join(ng, "ngstate.py")
    with open(p) as f:
        text = f.read()
    old = '"layers": [{"type": "image", "source": a.source, "name": "data"}],'
    if old in text:
        text = text.replace(old, '"layers": [dict({"type": os.environ.get("NGCHECK_LAYER_TYPE", "image"), '
                                 '"source": a.source, "name": "data"}, '
                                 '**json.loads(os.environ.get("NGCHECK_LAYER_EXTRA", "{}")))],')
        with open(p, "w") as f:
            f.write(text)
    oz.check("NGCHECK_LAYER_TYPE" in text, "could not make ngcheck's layer a segmentation layer")
    src, lab = oz.tmpdir("src"), oz.tmpdir("lab")
    oz.make_stack(src, volume=test_volume(64))
    z, y, x = np.meshgrid(*(np.arange(64),) * 3, indexing="ij")
    cells = np.zeros((64, 64, 64), np.uint16)
    cells[(x - 20) ** 2 + (y - 22) ** 2 < 150] = 1
    cells[(x - 44) ** 2 + (y - 40) ** 2 < 200] = 2
    cells[(x < 16) & (y > 44)] = 3
    oz.make_stack(lab, volume=cells)
    serve_root = oz.tmpdir("www")
    mnt = os.path.join(serve_root, "scroll.zarr")
    os.mkdir(mnt)
    out = oz.tmpdir("ngcheck-out")
    with oz.Mount(src, {"chunk": 32, "levels": 2, "format": "precomputed", "labels": "cells:" + lab},
                  mountpoint=mnt):
        env = dict(os.environ, NGCHECK_NO_SETUP="1", NGCHECK_TIMEOUT="120", NGCHECK_SCHEME="precomputed",
                   NGCHECK_LAYER_TYPE="segmentation", NGCHECK_LAYER_EXTRA=json.dumps({"segments": ["1", "2", "3"]}))
        r = subprocess.run([os.path.join(ng, "run.sh"), serve_root, "scroll.zarr/labels/cells", out], env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
        log = (r.stdout + r.stderr)[-4000:]
        oz.check(r.returncode == 0 and "NGCHECK PASS" in r.stdout, "ngcheck failed (exit %d): %s" % (r.returncode, log))
    with open(os.path.join(out, "shot.json")) as f:
        shot = json.load(f)
    oz.check("segmentation" in json.dumps(shot.get("final_state", shot)), "no segmentation layer in the state")
    colours = segment_colours(ng, os.path.join(out, "shot.png"), os.path.join(out, "shot.json"))
    sys.stderr.write("# segment colours on screen (r, g, b // 16: fraction): %r\n" % colours)
    oz.check(len(colours) >= 2, "segment colours on screen: %r (want >= 2 distinct non-grey colours)" % colours)
    with open(os.path.join(out, "requests.log")) as f:
        reqs = [line.split() for line in f if line.strip()]
    chunks = [(pth, c) for _, pth, c, *_ in reqs if PRECOMPUTED_CHUNK.fullmatch(pth.rsplit("/", 1)[-1])]
    oz.check(any("/labels/cells/" in pth and c == "200" for pth, c in chunks),
             "no compressed_segmentation chunk served: %r" % reqs)


@S.case
def neuroglancer_renders_a_password_protected_remote_store_without_credentials():
    """A zarr store behind basic auth on a loopback server, mounted with a credentials file;
    the browser gets the view through the served mount without any credentials."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from faultserver import FaultServer
    password = "ng-s3cret-5521"
    store_root = oz.tmpdir("remote")
    oz.make_zarr(os.path.join(store_root, "s.zarr"), test_volume(), (32, 32, 32))
    creds = os.path.join(oz.tmpdir("secret"), "cred")
    with open(creds, "w") as f:
        f.write("viewer:%s\n" % password)
    os.chmod(creds, 0o600)
    with FaultServer(root=store_root) as origin:
        origin.add("*", "auth", user="viewer", password=password)
        render_and_check(origin.url("s.zarr"), {"levels": 3, "credentials": creds})
        oz.check(origin.count("s.zarr/*") > 0 and all(r.authorization for r in origin.requests),
                 "the origin saw requests without credentials")


def free_port():
    import socket
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


def red_fraction(png):
    """Share of the screenshot's pixels in the mesh's colour (#ff0000, shaded)."""
    sys.path.insert(0, os.path.join(oz.REPO, ".deps", "ngcheck"))
    import check_png  # ngcheck's stdlib PNG decoder
    w, h, bpp, rows = check_png.read_png(png)
    red = total = 0
    for line in rows[h // 8:]:  # below the layer bar (whose tab shows the colour too)
        for x in range(0, w * bpp, bpp):
            r, g, b = line[x], line[x + 1], line[x + 2]
            total += 1
            red += r >= 90 and g <= r // 3 and b <= r // 3
    return red / max(total, 1)


@S.case
def neuroglancer_draws_a_surface_mesh():
    """omezarr-surface-to-obj --precomputed: a segmentation layer whose mesh source is the written
    legacy-mesh directory, over an image layer from a mount (1 nm voxels, so the mesh's voxel
    units line up), in the 3-D view: pixels of the segment's colour appear, and none without it.
    ngcheck's 3-D layout never reports "ready" here, so each shot is taken at NGCHECK_TIMEOUT (45 s:
    the two files are a few KB and are drawn within seconds)."""
    ng = ngcheck_copy()
    serve_root = oz.tmpdir("www")
    src = oz.tmpdir("src")
    oz.make_stack(src, volume=test_volume())
    mnt = os.path.join(serve_root, "scroll.zarr")
    os.mkdir(mnt)
    # a tilted surface through the volume: rows along y, columns along x
    h, w = 70, 70
    r, c = np.mgrid[0:h, 0:w].astype(np.float64)
    d = np.stack([13 + c, 13 + r, 30 + 0.4 * r, np.zeros_like(r), np.zeros_like(r), np.ones_like(r)], axis=-1)
    ppm = os.path.join(oz.tmpdir("seg"), "seg.ppm")
    with open(ppm, "wb") as f:
        f.write(b"width: %d\nheight: %d\ndim: 6\nordered: true\ntype: double\nversion: 1\n<>\n" % (w, h))
        f.write(d.astype("<f8").tobytes())
    tool = os.path.join(os.environ.get("OMEZARRFS_BUILD", os.path.join(oz.REPO, "build")), "cli",
                        "omezarr-surface-to-obj")
    r = subprocess.run([tool, ppm, os.path.join(serve_root, "seg.obj"), "--zstep", "6", "--precomputed",
                        os.path.join(serve_root, "mesh")], capture_output=True, text=True, timeout=60)
    oz.check(r.returncode == 0, "omezarr-surface-to-obj: %s" % r.stderr)
    port = free_port()
    # the data server on a known port, so the state can name the mesh source's URL
    wrapper = os.path.join(oz.tmpdir("srv"), "serve_fixed.py")
    with open(wrapper, "w") as f:
        f.write("import os, sys\na = sys.argv[1:]\na[a.index('--port') + 1] = %r\n"
                "os.execv('/usr/bin/python3', ['/usr/bin/python3', %r] + a)\n" % (str(port), ozserve.SERVE))
    base = "http://127.0.0.1:%d" % port
    image = {"type": "image", "source": "zarr2://%s/scroll.zarr/" % base, "name": "data"}
    mesh = {"type": "segmentation", "source": "precomputed://%s/mesh" % base, "segments": ["1"],
            "segmentColors": {"1": "#ff0000"}, "name": "mesh"}
    fractions = []
    with oz.Mount(src, {"unit": "nanometer"}, mountpoint=mnt):
        for layers in ([image, mesh], [image]):
            out = oz.tmpdir("ngcheck-out")
            env = dict(os.environ, NGCHECK_NO_SETUP="1", NGCHECK_TIMEOUT="45", NGCHECK_LAYOUT="3d",
                       NGCHECK_DATA_SERVER="/usr/bin/python3 " + wrapper,
                       NGCHECK_STATE=json.dumps({"layers": layers, "ngcheckAfterLoad": {
                           "displayDimensions": ["x", "y", "z"], "position": [48, 48, 48], "projectionScale": 220,
                           "projectionOrientation": [0.25, -0.3, 0.05, 0.92]}}))
            r = subprocess.run([os.path.join(ng, "run.sh"), serve_root, "scroll.zarr", out], env=env,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
            log = (r.stdout + r.stderr)[-4000:]
            oz.check(os.path.exists(os.path.join(out, "shot.png")), "no screenshot (exit %d): %s" % (r.returncode, log))
            with open(os.path.join(out, "requests.log")) as f:
                reqs = f.read()
            fractions.append(red_fraction(os.path.join(out, "shot.png")))
            if len(layers) == 2:
                oz.check("/mesh/1:0 " in reqs or "/mesh/1%3A0 " in reqs, "the manifest was not read: %s" % reqs[-2000:])
                oz.check("/mesh/1.frag 200" in reqs, "the fragment was not served: %s" % reqs[-2000:])
    with_mesh, without = fractions
    oz.check(with_mesh >= 0.005 and without < 0.001,
             "segment-coloured pixels: %.4f with the mesh, %.4f without" % (with_mesh, without))


if __name__ == "__main__":
    S.main()
