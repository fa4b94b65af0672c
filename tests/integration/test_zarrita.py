#!/usr/bin/python3
"""zarrita.js (the npm zarr client web viewers build on) in node reads every level of a mount
served by omezarr-serve, and each level matches the numpy reference bit for bit; absent (empty)
chunks come back as 404 and read as fill value 0. tests/js holds the pinned client; this test
runs `npm ci` there when scripts/setup-viewer-checks.sh has not."""
import hashlib
import json
import os
import subprocess

import numpy as np

import oztest as oz
import ozserve

S = oz.Suite("zarrita", case_timeout=600)
JS = os.path.join(oz.REPO, "tests", "js")


ensure_zarrita = oz.ensure_zarrita


def read_with_zarrita(url):
    ensure_zarrita()
    r = subprocess.run(["node", os.path.join(JS, "read_levels.mjs"), url], capture_output=True,
                       text=True, timeout=300)
    oz.check(r.returncode == 0, "zarrita.js failed: %s" % (r.stdout + r.stderr)[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def check_levels(got, want_levels, chunk, version="0.4"):
    oz.check(got["version"] == version, "multiscales version %r" % got["version"])
    oz.check(len(got["levels"]) == len(want_levels), "zarrita saw %d levels, want %d" % (
        len(got["levels"]), len(want_levels)))
    dtypes = {np.dtype(np.uint8): "uint8", np.dtype(np.uint16): "uint16"}
    for lvl, (g, want) in enumerate(zip(got["levels"], want_levels)):
        oz.check(g["path"] == str(lvl), "level %d path %r" % (lvl, g["path"]))
        oz.check(g["shape"] == list(want.shape) and g["chunks"] == [chunk] * 3 and
                 g["dtype"] == dtypes[want.dtype], "level %d: %r, want shape %r dtype %s" % (
                     lvl, g, want.shape, want.dtype))
        c_order = [want.shape[1] * want.shape[2], want.shape[2], 1]
        oz.check(g["stride"] == c_order, "level %d: stride %r is not C order" % (lvl, g["stride"]))
        digest = hashlib.sha256(np.ascontiguousarray(want).astype(want.dtype.newbyteorder("<"))
                                .tobytes()).hexdigest()
        oz.check(g["sha256"] == digest, "level %d: zarrita's data differs from the reference"
                 % lvl)


def run_case(options, shape, window=None, shift=(0, 0, 0), bytes1=False, algorithm="mean"):
    src = oz.tmpdir("src")
    vol = oz.make_stack(src, shape, np.uint16, seed=11)
    levels = options["levels"]
    want0 = oz.reference_level0(vol, window, shift, bytes1)
    want = oz.reference_pyramid(want0, levels, algorithm)
    serve_root = oz.tmpdir("www")
    mnt = os.path.join(serve_root, "scroll.zarr")
    os.mkdir(mnt)
    with oz.Mount(src, options, mountpoint=mnt) as m, ozserve.Server(serve_root) as srv:
        got = read_with_zarrita(srv.url("scroll.zarr/"))
        check_levels(got, want, options["chunk"])
        codes = {int(k) for k in got["statuses"]}
        oz.check(codes <= {200, 404}, "HTTP statuses other than 200/404: %r" % got["statuses"])
        oz.check(404 in codes, "no absent chunk was read (the data has empty chunks)")
        oz.check(200 in codes, "no chunk was served")
        # Every chunk of every level was asked for (404 = fill value), none twice.
        chunk_gets = [p for meth, p, _ in srv.requests() if meth == "GET" and
                      p.rsplit("/", 1)[-1].isdigit()]
        n_chunks = sum(int(np.prod(oz.chunk_grid(w.shape, [options["chunk"]] * 3))) for w in want)
        oz.check(len(chunk_gets) == len(set(chunk_gets)) == n_chunks,
                 "%d chunk requests (%d distinct), the levels have %d chunks" % (
                     len(chunk_gets), len(set(chunk_gets)), n_chunks))
        del m


def run_v3_case(options, shape, window=None, shift=(0, 0, 0), bytes1=False):
    """OME-Zarr 0.5: zarrita.js reads every level, equal to the numpy reference and so to the
    0.4 mount (which the cases above check against the same reference)."""
    src = oz.tmpdir("src")
    vol = oz.make_stack(src, shape, np.uint16, seed=11)
    levels = options["levels"]
    want = oz.reference_pyramid(oz.reference_level0(vol, window, shift, bytes1), levels)
    serve_root = oz.tmpdir("www")
    mnt = os.path.join(serve_root, "scroll.zarr")
    os.mkdir(mnt)
    with oz.Mount(src, dict(options, format="ome-zarr-0.5"), mountpoint=mnt), ozserve.Server(serve_root) as srv:
        got = read_with_zarrita(srv.url("scroll.zarr/"))
        check_levels(got, want, options["chunk"], version="0.5")
        codes = {int(k) for k in got["statuses"]}
        oz.check(codes <= {200, 206, 404}, "HTTP statuses other than 200/206/404: %r" % got["statuses"])
        if options.get("shard", 4) > 1:
            oz.check(206 in codes, "zarrita read no shard by range: %r" % got["statuses"])


@S.case
def v05_sharded_raw_every_level():
    run_v3_case({"chunk": 16, "levels": 4, "shard": 2}, (37, 70, 90))


@S.case
def v05_sharded_blosc_uint8_window_every_level():
    window = ((2, 21), (None, 60), (5, None))
    run_v3_case({"chunk": 8, "levels": 3, "shard": 4, "compression": "blosc", "bytes": 1,
                 "window": oz.window_opt(window), "shift": oz.xyz((1, 0, 3))},
                (24, 70, 90), window=window, shift=(1, 0, 3), bytes1=True)


@S.case
def v05_unsharded_blosc_every_level():
    run_v3_case({"chunk": 16, "levels": 3, "shard": 1, "compression": "blosc"}, (37, 70, 90))


@S.case
def v05_sharded_zstd_every_level():
    run_v3_case({"chunk": 16, "levels": 3, "shard": 2, "compression": "zstd"}, (37, 70, 90))


@S.case
def v05_unsharded_raw_every_level():
    run_v3_case({"chunk": 16, "levels": 3, "shard": 1}, (37, 70, 90))


@S.case
def uint16_raw_chunks_every_level():
    run_case({"chunk": 16, "levels": 4}, (24, 70, 90))


@S.case
def blosc_uint8_window_shift_every_level():
    window = ((2, 21), (None, 60), (5, None))
    run_case({"chunk": 16, "levels": 3, "compression": "blosc", "blosc_cname": "zstd",
              "bytes": 1, "window": oz.window_opt(window), "shift": oz.xyz((1, 0, 3))},
             (24, 70, 90), window=window, shift=(1, 0, 3), bytes1=True)


@S.case
def remote_store_with_basic_auth_viewed_without_credentials():
    """The proxy of the zarr-source issue: a password-protected zarr store on a loopback server,
    mounted with a credentials file, served by omezarr-serve; zarrita.js reads every level
    without any credentials and gets the reference."""
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from faultserver import FaultServer
    password = "zarrita-s3cret-91"
    store_root = oz.tmpdir("remote")
    vol = oz.make_volume((24, 70, 90), np.dtype(np.uint16), seed=13)
    oz.make_zarr(os.path.join(store_root, "s.zarr"), vol, (16, 16, 16))
    want = oz.reference_pyramid(vol, 3, "mean")
    creds = os.path.join(oz.tmpdir("secret"), "cred")
    with open(creds, "w") as f:
        f.write("viewer:%s\n" % password)
    os.chmod(creds, 0o600)
    serve_root = oz.tmpdir("www")
    mnt = os.path.join(serve_root, "remote.zarr")
    os.mkdir(mnt)
    with FaultServer(root=store_root) as origin:
        origin.add("*", "auth", user="viewer", password=password)
        opts = {"levels": 3, "credentials": creds, "retry_delay": "0.05"}
        with oz.Mount(origin.url("s.zarr"), opts, mountpoint=mnt), ozserve.Server(serve_root) as srv:
            got = read_with_zarrita(srv.url("remote.zarr/"))
            check_levels(got, want, 16)
            oz.check(set(int(k) for k in got["statuses"]) <= {200, 404},
                     "HTTP statuses other than 200/404: %r" % got["statuses"])
        oz.check(origin.count("s.zarr/*") > 0 and all(r.authorization for r in origin.requests),
                 "the origin saw requests without credentials")


if __name__ == "__main__":
    S.main()
