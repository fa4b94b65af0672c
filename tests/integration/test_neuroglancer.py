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


def render_and_check(source, options, scheme="zarr2"):
    """Mounts `source` under a served directory, renders it with the real Neuroglancer (data
    source scheme `scheme`) and checks the gray levels and the HTTP statuses the viewer saw."""
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
    chunk = [(p, c) for _, p, c, *_ in reqs if p.rsplit("/", 1)[-1].isdigit()]
    oz.check(any(c in ("200", "206") for _, c in chunk), "no chunk served: %r" % reqs)
    if options.get("shard", 1) > 1:
        oz.check("206" in codes, "no shard was read by range: %r" % reqs)
    oz.check(any(c == "404" for _, c in chunk),
             "no empty chunk was requested (404 -> fill value): %r" % reqs)


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


if __name__ == "__main__":
    S.main()
