#!/usr/bin/python3
"""zarr v3 sources: stores written by an independent spec-based writer (zarr3_ref.write_array:
numpy, gzip and numcodecs only, checked against zarr3_ref's reader) and compared with numpy.
- Every data type (uint8/16/32/64, int16, float32) through every codec (bytes little and big,
  transpose, blosc, gzip, zstd, crc32c, sharding_indexed with the index at the start or end,
  nested), both chunk key encodings and separators, fill values (also NaN) for missing chunks:
  read with Zarr3Volume::ReadBox (tests/tools/zarr3_read) and compared with the writer's array.
- Mounts (uint8 and uint16; local and over loopback HTTP): every level of the served tree equals
  numpy's pyramid of the writer's array, for an array and an OME-Zarr 0.5 group.
- Over HTTP, reading one level-0 chunk of a sharded store fetches the shard index and the needed
  inner chunks by range (bytes <= 1.1 x (needed inner chunks + indexes)), never a whole shard.
- Vesuvius zero-chunk entries read as the fill value; a corrupted crc32c gives EIO; an index
  entry past the shard's end is an error naming the shard; an unsupported codec or chunk grid is
  refused at mount naming it and the array."""
import errno
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402

import oztest as oz  # noqa: E402
import zarr3_ref as zr  # noqa: E402
from faultserver import FaultServer  # noqa: E402

S = oz.Suite(__file__, case_timeout=600)
FAST = {"retry_delay": "0.05", "retries": 2, "connect_timeout": 5, "timeout": 20}
LE = {"name": "bytes", "configuration": {"endian": "little"}}
BE = {"name": "bytes", "configuration": {"endian": "big"}}
CRC = {"name": "crc32c"}


def tool():
    return os.path.join(os.environ.get("OMEZARRFS_BUILD", os.path.join(os.path.dirname(__file__), "../../build")),
                        "tests", "zarr3_read")


def read_tool(source, dtype, shape, level=0):
    out = os.path.join(oz.tmpdir("z3raw"), "out.raw")
    p = subprocess.run([tool(), source, out, "--level", str(level)], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise oz.CheckFailed("zarr3_read %s failed: %s" % (source, p.stderr.strip()))
    return np.fromfile(out, dtype).reshape(shape)


def tool_error(source):
    out = os.path.join(oz.tmpdir("z3raw"), "out.raw")
    p = subprocess.run([tool(), source, out], capture_output=True, text=True, timeout=120)
    oz.check(p.returncode != 0, "zarr3_read %s succeeded, expected an error" % source)
    return p.stderr


def blosc(item, cname="lz4", shuffle="shuffle"):
    return {"name": "blosc", "configuration": {"cname": cname, "clevel": 5, "shuffle": shuffle, "typesize": item,
                                                "blocksize": 0}}


def shard(inner, codecs, location="end", crc=True):
    return {"name": "sharding_indexed",
            "configuration": {"chunk_shape": list(inner), "codecs": codecs,
                              "index_codecs": [LE, CRC] if crc else [LE], "index_location": location}}


def chains(item):
    return {
        "bytes_le": [LE],
        "bytes_be_zstd": [BE, {"name": "zstd", "configuration": {"level": 3, "checksum": False}}],
        "transpose_blosc_crc": [{"name": "transpose", "configuration": {"order": [2, 0, 1]}}, LE, blosc(item), CRC],
        "gzip": [LE, {"name": "gzip", "configuration": {"level": 1}}],
        "shard_end": [shard((4, 8, 8), [LE, {"name": "gzip", "configuration": {"level": 1}}])],
        "shard_start_nocrc": [shard((8, 4, 16), [LE, blosc(item, "zstd", "bitshuffle"), CRC], "start", crc=False)],
        "shard_nested": [shard((8, 8, 16), [shard((4, 4, 8), [{"name": "transpose", "configuration":
                                                                {"order": [1, 2, 0]}}, BE, CRC], "start")])],
    }


def volume(dtype, seed, shape=(21, 34, 45)):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 250, shape)
    dt = np.dtype(dtype)
    if dt == np.int16:
        a = a * 97 - 12000
    elif dt == np.float32:
        a = a * 0.37 - 11.5
    elif dt.itemsize >= 4:
        a = a * (2 ** (8 * dt.itemsize - 9))
    a = a.astype(dt)
    a[:, :8, :16] = 0  # a region of whole chunks equal to the fill value: left out by the writer
    return a


def check_equal(got, want, what):
    if not np.array_equal(got, want, equal_nan=want.dtype.kind == "f"):
        bad = np.argwhere(~((got == want) | (np.isnan(got) & np.isnan(want)) if want.dtype.kind == "f"
                            else (got == want)))
        raise oz.CheckFailed("%s: %d voxels differ, first at %s: got %r want %r" %
                             (what, len(bad), tuple(bad[0]), got[tuple(bad[0])], want[tuple(bad[0])]))


@S.case
def every_dtype_and_codec_read_box():
    root = oz.tmpdir("z3dt")
    for dt in ["uint8", "uint16", "uint32", "uint64", "int16", "float32"]:
        a = volume(dt, 3)
        for name, codecs in chains(np.dtype(dt).itemsize).items():
            key = ("v2", ".") if name == "gzip" else ("default", ".") if name == "bytes_le" else ("default", "/")
            path = os.path.join(root, "%s_%s" % (dt, name))
            zr.write_array(path, a, (16, 16, 32), codecs, fill=0, key_encoding=key)
            check_equal(zr.read_array(path), a, "reference reader of " + path) if "nested" not in name else None
            check_equal(read_tool(path, a.dtype, a.shape), a, path)


@S.case
def fill_values_for_missing_chunks():
    root = oz.tmpdir("z3fill")
    cases = [("uint16", 4711), ("int16", -5), ("float32", float("nan")), ("float32", -2.5), ("uint64", 2 ** 63 + 5)]
    for dt, fill in cases:
        a = volume(dt, 5)
        a[:, :16, :] = np.array(fill).astype(dt)  # whole chunks of fill: not written
        for name, codecs in [("plain", [LE, CRC]), ("sharded", [shard((8, 8, 8), [LE])])]:
            path = os.path.join(root, "%s_%s_%s" % (dt, str(fill).replace("-", "m"), name))
            zr.write_array(path, a, (16, 16, 16), codecs, fill=fill)
            chunks = [f for _, _, fs in os.walk(path) for f in fs if f != "zarr.json"]
            oz.check(len(chunks) < 3 * 3 * 3, "%s: every chunk was written" % path)
            check_equal(read_tool(path, a.dtype, a.shape), a, path)


@S.case
def leading_axes_and_2d():
    root = oz.tmpdir("z3nd")
    a = volume("uint16", 9, (1, 1, 13, 20, 22))
    zr.write_array(os.path.join(root, "a5"), a, (1, 1, 8, 8, 8), [shard((1, 1, 4, 4, 8), [LE, CRC])])
    check_equal(read_tool(os.path.join(root, "a5"), a.dtype, a.shape[2:]), a[0, 0], "5-D")
    b = volume("uint8", 10, (3, 40, 50))[0]
    zr.write_array(os.path.join(root, "a2"), b, (16, 16), [{"name": "transpose", "configuration": {"order": [1, 0]}},
                                                           LE])
    check_equal(read_tool(os.path.join(root, "a2"), b.dtype, (1,) + b.shape), b[None], "2-D")


def ome_group(root, vol, codecs, chunks, **kw):
    zr.write_ome_group(root, [vol, vol[::2, ::2, ::2].copy()], chunks, codecs, **kw)


def mount_case(dtype, remote, group):
    def run():
        root = oz.tmpdir("z3m")
        vol = oz.make_volume((37, 50, 61), np.dtype(dtype), seed=41)
        codecs = [shard((16, 16, 16), [LE, {"name": "zstd", "configuration": {"level": 3}}, CRC])]
        store = os.path.join(root, "s.zarr")
        if group:
            ome_group(store, vol, codecs, (32, 32, 32))
        else:
            zr.write_array(store, vol, (32, 32, 32), codecs)
        want = oz.reference_pyramid(vol, 3, "mean")
        opts = {"levels": 3, "chunk": 16, "compression": "none"}
        if remote:
            opts.update(FAST)
            with FaultServer(root=root) as srv:
                with oz.Mount(srv.url("s.zarr"), opts) as m:
                    oz.check_tree(m.path, want, "mean", 16)
                whole = [x for x in srv.sent_matching("s.zarr/*c/*") if x[1] is None]
                oz.check(not whole, "shard files fetched whole: %r" % whole[:3])
        else:
            with oz.Mount(store, opts) as m:
                oz.check_tree(m.path, want, "mean", 16)
    return run


for _dt in ("uint8", "uint16"):
    for _remote in (False, True):
        for _group in (False, True):
            S.add("mount_%s_%s_%s" % (_dt, "http" if _remote else "local", "group" if _group else "array"),
                  mount_case(_dt, _remote, _group))


@S.case
def http_one_chunk_reads_index_and_needed_inner_chunks():
    root = oz.tmpdir("z3rng")
    vol = oz.make_volume((64, 64, 64), np.dtype("uint8"), seed=12, mask=False)
    codecs = [shard((16, 16, 16), [LE, blosc(1)], "end")]
    store = os.path.join(root, "s.zarr")
    zr.write_array(store, vol, (64, 64, 64), codecs)
    shard_file = os.path.join(store, "c", "0", "0", "0")
    size = os.path.getsize(shard_file)
    with open(shard_file, "rb") as f:
        entries, _ = zr.parse_index(f.read(), codecs[0]["configuration"], 64)
    # Served chunk 32 at level 0: inner chunks (z, y, x) in 0..1 on each axis, 8 of 64.
    want = [entries[(z * 4 + y) * 4 + x] for z in (0, 1) for y in (0, 1) for x in (0, 1)]
    oz.check(all(e[0] != zr.ABSENT for e in entries), "the writer left inner chunks out")
    needed = sum(nb for _, nb in want)
    index_bytes = 16 * 64 + 4
    with FaultServer(root=root) as srv:
        opts = dict(FAST, levels=1, chunk=32)
        with oz.Mount(srv.url("s.zarr"), opts) as m:
            srv.reset()
            with open(os.path.join(m.path, "0", "0", "0"), "rb") as f:
                f.read()
            sent = srv.sent_matching("s.zarr/c/*")
            fetched = sum(n for _, _, n in sent)
            got = oz.read_level(m.path, 0, 1)
            oz.assert_array_equal(got, vol, "level 0")
    oz.check(all(r is not None for _, r, _ in sent), "a shard was fetched without a Range: %r" % sent)
    oz.check(fetched <= 1.1 * (needed + index_bytes),
             "fetched %d bytes of a %d-byte shard for inner chunks of %d bytes + a %d-byte index: %r" %
             (fetched, size, needed, index_bytes, sent))
    oz.check(fetched < size, "the whole shard (%d bytes) was fetched" % size)
    print("one level-0 chunk: %d bytes fetched in %d requests for %d bytes of inner chunks + %d of index "
          "(shard %d bytes)" % (fetched, len(sent), needed, index_bytes, size))


@S.case
def http_ranges_cached_on_disk_and_servers_without_ranges():
    root = oz.tmpdir("z3cache")
    vol = oz.make_volume((32, 48, 40), np.dtype("uint16"), seed=18)
    store = os.path.join(root, "s.zarr")
    zr.write_array(store, vol, (32, 32, 32), [shard((16, 16, 16), [LE, blosc(2), CRC], "start")])
    want = oz.reference_pyramid(vol, 2, "mean")
    opts = dict(FAST, levels=2, chunk=16, compression="none")
    cache = oz.tmpdir("z3cachedir")
    with FaultServer(root=root) as srv:
        with oz.Mount(srv.url("s.zarr"), opts, cache=cache) as m:
            oz.check_tree(m.path, want, "mean", 16)
        first = srv.count("s.zarr/c/*")
        oz.check(first > 0, "no shard requests")
        srv.reset()
        # Other served chunks (chunk=32): recomputed from the source ranges cached on disk.
        with oz.Mount(srv.url("s.zarr"), dict(opts, chunk=32), cache=cache) as m:
            oz.check_tree(m.path, want, "mean", 32)
        oz.check(srv.count("s.zarr/c/*") == 0, "the remount fetched %d shard ranges again" % srv.count("s.zarr/c/*"))
        # A server that ignores Range: still the right voxels (each read downloads the shard).
        srv.add("s.zarr/c/*", "norange")
        with oz.Mount(srv.url("s.zarr"), opts) as m:
            oz.check_tree(m.path, want, "mean", 16)
        oz.check(any(r is None for _, r, _ in srv.sent_matching("s.zarr/c/*")), "norange was not used")
    # An empty shard file: an error naming it (416 over HTTP), never fill or zeros.
    with open(os.path.join(store, "c", "0", "0", "1"), "wb"):
        pass
    err = tool_error(store)
    oz.check("c/0/0/1" in err and "shorter than its index" in err, "empty shard, local: %s" % err)
    with FaultServer(root=root) as srv:
        err = tool_error(srv.url("s.zarr"))
        oz.check("c/0/0/1" in err and "shorter than its index" in err, "empty shard, HTTP: %s" % err)


@S.case
def zero_chunk_entries_and_missing_shards_read_as_fill():
    root = oz.tmpdir("z3zero")
    vol = oz.make_volume((32, 40, 48), np.dtype("uint16"), seed=13)
    vol[:8, :8, :] = 0       # inner chunks of zeros: zero-chunk entries
    vol[16:, 16:32, :] = 0   # a whole shard of zeros: no shard file
    store = os.path.join(root, "s.zarr")
    zr.write_array(store, vol, (16, 16, 16), [shard((8, 8, 8), [LE, CRC])], fill=0, zero_entries=True)
    zero = 0
    for idx, size, entries in zr.shard_report(store):
        if entries:
            zero += sum(1 for e in entries if e == (zr.ZERO_CHUNK, 0))
    oz.check(zero > 0, "the writer wrote no zero-chunk entries")
    check_equal(read_tool(store, vol.dtype, vol.shape), vol, "zero-chunk store")
    with FaultServer(root=root) as srv:
        with oz.Mount(srv.url("s.zarr"), dict(FAST, levels=2, chunk=16, compression="none")) as m:
            oz.check_tree(m.path, oz.reference_pyramid(vol, 2, "mean"), "mean", 16)


@S.case
def corrupt_crc32c_is_eio():
    root = oz.tmpdir("z3crc")
    vol = oz.make_volume((32, 32, 32), np.dtype("uint8"), seed=14)
    store = os.path.join(root, "s.zarr")
    zr.write_array(store, vol, (32, 32, 32), [shard((16, 16, 16), [LE, CRC])])
    p = os.path.join(store, "c", "0", "0", "0")
    with open(p, "r+b") as f:
        f.seek(100)  # inside inner chunk 0
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 0xFF]))
    err = tool_error(store)
    oz.check("crc32c" in err and "c/0/0/0" in err, "message does not name crc32c and the shard: %s" % err)
    for remote in (False, True):
        def go(source):
            with oz.Mount(source, dict(FAST, levels=1, chunk=16)) as m:
                try:
                    with open(os.path.join(m.path, "0", "0", "0"), "rb") as f:
                        f.read()
                    raise oz.CheckFailed("reading a chunk with a bad crc32c succeeded")
                except OSError as e:
                    oz.check(e.errno == errno.EIO, "errno %r, expected EIO" % e.errno)
                with open(os.path.join(m.path, "1", "1", "1"), "rb") as f:  # other inner chunks still read
                    f.read()
        if remote:
            with FaultServer(root=root) as srv:
                go(srv.url("s.zarr"))
        else:
            go(store)


@S.case
def index_entry_past_the_end_names_the_shard():
    root = oz.tmpdir("z3past")
    vol = oz.make_volume((16, 16, 16), np.dtype("uint8"), seed=15)
    store = os.path.join(root, "s.zarr")
    cfg = shard((8, 8, 8), [LE], "end", crc=False)
    zr.write_array(store, vol, (16, 16, 16), [cfg])
    p = os.path.join(store, "c", "0", "0", "0")
    with open(p, "rb") as f:
        data = bytearray(f.read())
    isize = 16 * 8
    off = len(data) - isize
    data[off + 8:off + 16] = (10 ** 6).to_bytes(8, "little")  # entry 0's nbytes beyond the end
    with open(p, "wb") as f:
        f.write(bytes(data))
    err = tool_error(store)
    oz.check("c/0/0/0" in err and "outside" in err, "message does not name the shard: %s" % err)


@S.case
def zarrita_written_arrays_mount():
    """zarrita.js's own v3 writer (bytes little/big, transpose; it does not encode gzip, crc32c
    or sharding) in node: the mount equals numpy."""
    js = oz.ensure_zarrita()
    root = oz.tmpdir("z3js")
    for dt, endian, order in [("uint16", "little", None), ("uint16", "big", "2,0,1"), ("uint8", "little", "1,2,0")]:
        vol = oz.make_volume((21, 30, 35), np.dtype(dt), seed=17)
        raw = os.path.join(root, "in.raw")
        vol.astype(vol.dtype.newbyteorder("<")).tofile(raw)
        store = os.path.join(root, "%s_%s_%s.zarr" % (dt, endian, order or "none"))
        cmd = ["node", os.path.join(js, "write_v3.mjs"), store, raw, dt, "21,30,35", "8,16,16", endian]
        r = subprocess.run(cmd + ([order] if order else []), capture_output=True, text=True, timeout=300)
        oz.check(r.returncode == 0, "zarrita write failed: %s" % (r.stdout + r.stderr)[-2000:])
        meta = json.load(open(os.path.join(store, "zarr.json")))
        oz.check([c["name"] for c in meta["codecs"]] == (["transpose"] if order else []) + ["bytes"],
                 "zarrita wrote codecs %r" % meta["codecs"])
        check_equal(read_tool(store, vol.dtype, vol.shape), vol, store)
        with oz.Mount(store, {"levels": 2, "chunk": 16, "compression": "none"}) as m:
            oz.check_tree(m.path, oz.reference_pyramid(vol, 2, "mean"), "mean", 16)


@S.case
def unsupported_codecs_and_grids_refused_at_mount():
    root = oz.tmpdir("z3bad")
    vol = oz.make_volume((16, 16, 16), np.dtype("uint8"), seed=16)
    cases = {
        "c3d": [shard((8, 8, 8), [LE, {"name": "c3d", "configuration": {"quality": 3}}])],
        "h264": [LE, {"name": "h264"}],
    }
    for name, codecs in cases.items():
        store = os.path.join(root, name + ".zarr")
        os.makedirs(store)
        meta = zr.array_meta(vol.shape, vol.dtype, (16, 16, 16), codecs)
        with open(os.path.join(store, "zarr.json"), "w") as f:
            json.dump(meta, f)
        rc, err, mounted = oz.try_mount(store, {"levels": 1})
        oz.check(rc != 0 and not mounted, "%s: mounted" % name)
        oz.check(name in err and store in err and "convert" in err, "%s: message %r" % (name, err))
    store = os.path.join(root, "irregular.zarr")
    os.makedirs(store)
    meta = zr.array_meta(vol.shape, vol.dtype, (16, 16, 16), [LE])
    meta["chunk_grid"] = {"name": "rectilinear", "configuration": {"chunk_shapes": [[8, 8], [16], [16]]}}
    with open(os.path.join(store, "zarr.json"), "w") as f:
        json.dump(meta, f)
    rc, err, mounted = oz.try_mount(store, {"levels": 1})
    oz.check(rc != 0 and not mounted and "regular" in err and store in err, "irregular grid: %r" % err)
    store = os.path.join(root, "f64.zarr")
    zr.write_array(store, vol.astype(np.float64), (16, 16, 16), [LE])
    rc, err, mounted = oz.try_mount(store, {"levels": 1})
    oz.check(rc != 0 and not mounted and "float64" in err and store in err, "float64: %r" % err)


if __name__ == "__main__":
    S.main()
