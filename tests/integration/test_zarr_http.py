#!/usr/bin/python3
"""Remote zarr v2 sources, end to end: a loopback HTTP server (faultserver.py) serves stores
written by Debian's zarr-python; omezarrfs mounts the URL and every level is compared with an
independent numpy reference.  Covers each compressor, both separators, uint8/uint16/>u2, odd
shapes, view options and re-chunking, OME-Zarr groups, 404 chunks as the fill value, transient
faults (503, 429 + Retry-After, truncated and trickling bodies) that end in success, a permanent
5xx that ends in EIO without poisoning the cache, basic auth through netrc and credentials files
with a sentinel password that never leaks (ps, mountinfo, debug log, cache files), a remount
served from the disk cache without re-downloading, a dead server that does not block cached
reads, hostile metadata refused at mount, and omezarr-materialize from a URL."""

import errno
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oztest as oz  # noqa: E402
from faultserver import FaultServer  # noqa: E402
import numcodecs  # noqa: E402
import numpy as np  # noqa: E402

S = oz.Suite(__file__)
SHAPE = (37, 50, 61)
# Fast retries for tests; the defaults are documented in --help.
FAST = {"retry_delay": "0.05", "retries": 4, "connect_timeout": 5, "timeout": 20}


def volume(dtype, seed, shape=SHAPE):
    return oz.make_volume(shape, np.dtype(dtype), seed=seed)


def blosc_json(cname, clevel, shuffle):
    return {"id": "blosc", "cname": cname, "clevel": clevel, "shuffle": shuffle}


def served(root, name, vol, chunks, **kw):
    """Writes a zarr array under root/name and returns the volume a reader must see."""
    return oz.make_zarr(os.path.join(root, name), vol, chunks, **kw)


def remote_case(dtype="uint16", store_dtype=None, chunks=(16, 16, 16), compressor=None, sep=".",
                levels=3, opts=None, chunk=None, served_compressor=None, window=None,
                shift=(0, 0, 0), bytes1=False, algo="mean", absent=(), fill_value=0, shape=SHAPE):
    def run():
        root = oz.tmpdir("zhttp")
        want0 = served(root, "a.zarr", volume(dtype, 71, shape), chunks, dtype=store_dtype,
                       compressor=compressor, dimension_separator=sep, fill_value=fill_value,
                       absent=absent)
        want = oz.reference_pyramid(oz.reference_level0(want0, window, shift, bytes1), levels, algo)
        o = {"levels": levels, "algorithm": algo}
        o.update(FAST)
        o.update(opts or {})
        with FaultServer(root=root) as srv:
            with oz.Mount(srv.url("a.zarr"), o) as m:
                oz.check_tree(m.path, want, algo, chunk or chunks[0], compressor=served_compressor)
                st = oz.stats(m.path)
                oz.check(st["http_requests"] > 0 and st["source_fetches"] > 0, "no HTTP fetches: %r" % st)
                if absent:
                    oz.check(srv.count("a.zarr/*") > 0 and st["source_chunks_missing"] > 0,
                             "404 chunks not read as absent: %r" % st)
    return run


S.add("none_u2_dot", remote_case())
S.add("blosc_lz4_u1_slash", remote_case(
    dtype="uint8", sep="/", compressor=numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE),
    served_compressor=blosc_json("lz4", 5, 1)))
S.add("blosc_zstd_bitshuffle_be", remote_case(
    store_dtype=">u2", compressor=numcodecs.Blosc("zstd", 3, numcodecs.Blosc.BITSHUFFLE),
    served_compressor=blosc_json("zstd", 3, 2)))
S.add("zlib_u1_dot_odd_chunks", remote_case(
    dtype="uint8", chunks=(7, 13, 64), compressor=numcodecs.Zlib(1), chunk=16,
    opts={"chunk": 16}, served_compressor={"id": "zlib", "level": 1}))
S.add("gzip_be_slash", remote_case(
    store_dtype=">u2", sep="/", compressor=numcodecs.GZip(5), served_compressor={"id": "gzip", "level": 5}))
S.add("absent_chunks_404_fill", remote_case(
    compressor=numcodecs.Zlib(1), served_compressor={"id": "zlib", "level": 1},
    absent=[(0, 0, 0), (1, 2, 3)], fill_value=321))
S.add("window_shift_bytes1_rechunk_max", remote_case(
    compressor=numcodecs.Blosc("lz4", 1, numcodecs.Blosc.SHUFFLE), chunk=12, algo="max",
    window=((3, 30), (5, -4), (None, 50)), shift=(2, -3, 4), bytes1=True,
    opts={"chunk": 12, "window": "0:50/5:-4/3:30", "shift": "4/-3/2", "bytes": 1,
          "compression": "none"}))


@S.case
def url_scheme_in_capitals():
    """HTTP://HOST/... is the same URL as http://... (schemes are case-insensitive): one test of
    "is this remote" for the whole program, and the mount serves the store, not "No such file"."""
    root = oz.tmpdir("zhttp")
    want0 = served(root, "a.zarr", volume("uint16", 72), (16, 16, 16))
    want = oz.reference_pyramid(want0, 2)
    with FaultServer(root=root) as srv:
        url = srv.url("a.zarr")
        upper = "HTTP" + url[len("http"):]
        with oz.Mount(upper, dict(FAST, levels=2)) as m:
            oz.check_tree(m.path, want, "mean", 16)
            oz.check(oz.stats(m.path)["http_requests"] > 0, "no HTTP requests")


@S.case
def ome_group_source_level():
    root = oz.tmpdir("zhttp")
    l0 = volume("uint16", 5, (30, 44, 52))
    pyr = oz.reference_pyramid(l0, 3, "mean")
    oz.make_ome_zarr(os.path.join(root, "g.zarr"), pyr, (16, 16, 16), compressor=numcodecs.Blosc("lz4", 5, 1))
    with FaultServer(root=root) as srv:
        for lvl in (0, 1):
            o = dict(FAST, levels=2, source_level=lvl)
            with oz.Mount(srv.url("g.zarr/"), o) as m:
                oz.check_tree(m.path, oz.reference_pyramid(pyr[lvl], 2, "mean"), "mean", 16,
                              compressor=blosc_json("lz4", 5, 1))


def small_store(root, name="a.zarr", compressor=None):
    vol = volume("uint16", 9, (20, 24, 28))
    want = served(root, name, vol, (8, 8, 8), compressor=compressor)
    return want, oz.reference_pyramid(want, 2, "mean")


@S.case
def transient_faults_end_in_success():
    """503s, 429 with Retry-After, truncated bodies, resets and a trickling body: every chunk
    is right in the end, and the retries are counted."""
    root = oz.tmpdir("zhttp")
    _, want = small_store(root, compressor=numcodecs.Zlib(1))
    with FaultServer(root=root) as srv:
        srv.add("a.zarr/.zarray", "status", status=503, times=2)
        srv.add("a.zarr/0.*", "status", status=503, times=3)
        srv.add("a.zarr/1.*", "status", status=429, retry_after="1", times=1)
        srv.add("a.zarr/2.0.*", "truncate", times=2)
        srv.add("a.zarr/2.1.*", "reset", times=2)
        srv.add("a.zarr/2.2.0", "trickle", interval_ms=2, times=1)
        t0 = time.monotonic()
        with oz.Mount(srv.url("a.zarr"), dict(FAST, levels=2, chunk=16)) as m:
            oz.check_tree(m.path, want, "mean", 16, compressor={"id": "zlib", "level": 1}, raw=False)
            st = oz.stats(m.path)
        took = time.monotonic() - t0
        # 2 + 3 + 1 + 2 + 2 faults; curl itself silently re-sends a request whose reused
        # connection was reset, so one of those may not count as our retry.
        oz.check(st["http_retries"] >= 8, "retries not counted: %r" % st)
        oz.check(st["http_errors"] == 0, "a read failed: %r" % st)
        # Retry-After: 1 was honoured (at least one second passed), far inside the bound.
        oz.check(1.0 <= took < 120, "took %.1f s" % took)


@S.case
def permanent_5xx_is_eio_and_not_cached():
    """A chunk the server never serves: EIO for the chunks that need it (never zeros), the
    rest of the tree is served, stat stays fast, and once the server recovers the same mount
    serves the right bytes (the failure was not cached)."""
    root = oz.tmpdir("zhttp")
    _, want = small_store(root)
    with FaultServer(root=root) as srv:
        srv.add("a.zarr/1.1.1", "status", status=500)
        with oz.Mount(srv.url("a.zarr"), dict(FAST, levels=2, chunk=8, retries=2)) as m:
            bad = os.path.join(m.path, "0", "1", "1", "1")
            try:
                with open(bad, "rb") as f:
                    f.read()
                raise oz.CheckFailed("read of a chunk whose source fails succeeded")
            except OSError as e:
                oz.check(e.errno == errno.EIO, "errno %r, expected EIO" % e.errno)
            t0 = time.monotonic()
            os.stat(os.path.join(m.path, ".zattrs"))
            oz.check(time.monotonic() - t0 < 5, "stat blocked")
            with open(os.path.join(m.path, "0", "0", "1", "1"), "rb") as f:
                oz.check(len(f.read()) == 8 * 8 * 8 * 2, "healthy chunk not served")
            st = oz.stats(m.path)
            oz.check(st["http_errors"] >= 1, "failure not counted: %r" % st)
            srv.clear_rules()
            with open(bad, "rb") as f:
                data = f.read()
            got = np.frombuffer(data, np.uint16).reshape(8, 8, 8)
            oz.assert_array_equal(got, want[0][8:16, 8:16, 8:16], "chunk 0/1/1/1 after recovery")


SENTINEL = "s3ntinel-PASSW0RD-7f3a"


def auth_server(root):
    srv = FaultServer(root=root)
    srv.add("*", "auth", user="vesuvius", password=SENTINEL)
    return srv


def assert_no_leak(where, text):
    oz.check(SENTINEL not in text, "the password appears in %s" % where)


def grep_tree(path):
    for dirpath, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as f:
                if SENTINEL.encode() in f.read():
                    return os.path.join(dirpath, name)
    return None


@S.case
def auth_required_without_credentials():
    root = oz.tmpdir("zhttp")
    small_store(root)
    with auth_server(root) as srv:
        rc, err, mounted = oz.try_mount(srv.url("a.zarr"), dict(FAST, levels=2))
        oz.check(rc != 0 and not mounted, "mounted without credentials (rc %r)" % rc)
        oz.check("authentication required" in err and "netrc" in err, "unclear error: %r" % err[-400:])


@S.case
def auth_netrc_and_credentials_file_never_leak():
    root = oz.tmpdir("zhttp")
    _, want = small_store(root)
    secrets = oz.tmpdir("secrets")
    netrc = os.path.join(secrets, "netrc")
    with open(netrc, "w") as f:
        f.write("machine 127.0.0.1 login vesuvius password %s\n" % SENTINEL)
    os.chmod(netrc, 0o600)
    creds = os.path.join(secrets, "creds")
    with open(creds, "w") as f:
        f.write("vesuvius:%s\n" % SENTINEL)
    os.chmod(creds, 0o644)
    log = os.path.join(oz.tmpdir("log"), "oz.log")
    with auth_server(root) as srv:
        # A credentials file others can read is refused, naming the file and the fix.
        rc, err, _ = oz.try_mount(srv.url("a.zarr"), dict(FAST, credentials=creds))
        oz.check(rc != 0 and creds in err and "chmod 600" in err, "0644 credentials accepted: %r" % err[-300:])
        assert_no_leak("the refusal", err)
        os.chmod(creds, 0o600)
        for opt in ({"netrc": netrc}, {"credentials": creds}):
            o = dict(FAST, levels=2, log=log, log_level="debug")
            o.update(opt)
            cache = oz.tmpdir("cache")
            with oz.Mount(srv.url("a.zarr"), o, cache=cache) as m:
                oz.check_tree(m.path, want, "mean", 16)
                for pid in m.pids:
                    with open("/proc/%d/cmdline" % pid, "rb") as f:
                        assert_no_leak("the daemon's command line", f.read().decode(errors="replace"))
                    with open("/proc/%d/environ" % pid, "rb") as f:
                        assert_no_leak("the daemon's environment", f.read().decode(errors="replace"))
                with open("/proc/self/mountinfo") as f:
                    assert_no_leak("/proc/self/mountinfo", f.read())
                ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
                assert_no_leak("ps", ps)
                assert_no_leak("the mount's stderr", m.stderr + m.stdout)
            with open(log, errors="replace") as f:
                assert_no_leak("the debug log", f.read())
            leaked = grep_tree(cache)
            oz.check(leaked is None, "the password is in cache file %s" % leaked)
        oz.check(all(r.authorization for r in srv.requests if r.path.endswith(".zarray")),
                 "a metadata request went without credentials")


@S.case
def remount_neither_downloads_nor_recomputes():
    root = oz.tmpdir("zhttp")
    _, want = small_store(root, compressor=numcodecs.Blosc("lz4", 5, 1))
    cache = oz.tmpdir("cache")
    with FaultServer(root=root) as srv:
        o = dict(FAST, levels=2, chunk=8)
        with oz.Mount(srv.url("a.zarr"), o, cache=cache) as m:
            oz.check_tree(m.path, want, "mean", 8, compressor=blosc_json("lz4", 5, 1))
        first = srv.count("a.zarr/[0-9]*")
        oz.check(first > 0, "no chunk requests on the first mount")
        srv.reset()
        with oz.Mount(srv.url("a.zarr"), o, cache=cache) as m:
            oz.check_tree(m.path, want, "mean", 8, compressor=blosc_json("lz4", 5, 1))
            st = oz.stats(m.path)
        oz.check(srv.count("a.zarr/[0-9]*") == 0, "remount fetched %d chunks" % srv.count("a.zarr/[0-9]*"))
        oz.check(st["chunks_computed"] == 0, "remount recomputed: %r" % st)
        # Other options on the same cache: computed again, but from cached chunks (fetched source
        # chunks or cached level-0 chunks), with no download.
        srv.reset()
        with oz.Mount(srv.url("a.zarr"), dict(o, algorithm="max"), cache=cache) as m:
            oz.check_tree(m.path, oz.reference_pyramid(want[0], 2, "max"), "max", 8,
                          compressor=blosc_json("lz4", 5, 1))
            st = oz.stats(m.path)
        oz.check(srv.count("a.zarr/[0-9]*") == 0 and st["chunks_computed"] > 0,
                 "other options re-downloaded: %d requests, %r" % (srv.count("a.zarr/[0-9]*"), st))


@S.case
def dead_server_does_not_block_cached_reads():
    root = oz.tmpdir("zhttp")
    _, want = small_store(root)
    with FaultServer(root=root) as srv:
        with oz.Mount(srv.url("a.zarr"), dict(FAST, levels=2, chunk=8, timeout=60)) as m:
            oz.check_tree(m.path, want, "mean", 8)
            srv.add("*", "hang")
            t0 = time.monotonic()
            os.stat(os.path.join(m.path, ".zattrs"))
            for z in range(2):
                with open(os.path.join(m.path, "1", str(z), "0", "0"), "rb") as f:
                    f.read()
            oz.check_tree(m.path, want, "mean", 8)
            took = time.monotonic() - t0
            oz.check(took < 10, "cached reads took %.1f s with a hung server" % took)


@S.case
def hostile_metadata_refused():
    root = oz.tmpdir("zhttp")
    import json
    cases = [
        ({"shape": [2 ** 62, 2 ** 62, 2 ** 62]}, "shape"),
        ({"chunks": [0, 8, 8]}, "chunks"),
        ({"compressor": {"id": "lzma"}}, "lzma"),
        ({"filters": [{"id": "delta", "dtype": "<u2"}]}, "delta"),
        ({"dtype": "<f8"}, "dtype"),
    ]
    small_store(root)
    good = oz.read_json(os.path.join(root, "a.zarr", ".zarray"))
    with FaultServer(root=root) as srv:
        for change, field in cases:
            meta = dict(good)
            meta.update(change)
            srv.clear_rules()
            srv.files["a.zarr/.zarray"] = json.dumps(meta).encode()
            rc, err, mounted = oz.try_mount(srv.url("a.zarr"), FAST)
            oz.check(rc != 0 and not mounted and field in err and ".zarray" in err,
                     "%r not refused naming %r: %r" % (change, field, err[-300:]))
        # A group whose dataset path climbs out of the store.
        srv.files["g.zarr/.zattrs"] = json.dumps(
            {"multiscales": [{"version": "0.4", "datasets": [{"path": "../a.zarr"}]}]}).encode()
        srv.files["g.zarr/.zgroup"] = b'{"zarr_format": 2}'
        srv.reset()
        rc, err, mounted = oz.try_mount(srv.url("g.zarr"), FAST)
        oz.check(rc != 0 and ".." in err, "'..' dataset path accepted: %r" % err[-300:])
        oz.check(srv.count("a.zarr/*") == 0, "a request left the store's base URL: %r" %
                 [r.path for r in srv.matching("a.zarr/*")])


@S.case
def materialize_from_url():
    root = oz.tmpdir("zhttp")
    _, want = small_store(root, compressor=numcodecs.GZip(1))
    dest = os.path.join(oz.tmpdir("zmat"), "out.zarr")
    tool = os.path.join(os.path.dirname(oz.binary()), "..", "cli", "omezarr-materialize")
    with FaultServer(root=root) as srv:
        srv.add("a.zarr/1.*", "status", status=503, times=1)
        o = dict(FAST, levels=2, chunk=8)
        res = subprocess.run([tool, srv.url("a.zarr"), dest, "--quiet", "-o", oz.format_options(o)],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
        oz.check(res.returncode == 0, "materialize failed (%d): %s" % (res.returncode, res.stderr[-600:]))
        with oz.Mount(srv.url("a.zarr"), o) as m:
            r = subprocess.run(["diff", "-r", m.path, dest, "-x", ".omezarr-materialize"],
                               capture_output=True, text=True)
            oz.check(r.returncode == 0, "DEST differs from the mount: %s" % r.stdout[-400:])
    oz.check_tree(dest, want, "mean", 8, compressor={"id": "gzip", "level": 1})


if __name__ == "__main__":
    S.main()
