#!/usr/bin/python3
"""-o format=ome-zarr-0.5 (zarr v3, OME-NGFF 0.5, sharding_indexed): every level read by an
independent spec-based reader (zarr3_ref.py) equals the OME-Zarr 0.4 mount of the same source
(read by zarr-python) and the numpy reference; every shard's index is well formed (crc32c,
absent = 2^64-1 pairs exactly where the 0.4 mount has no chunk file, an all-empty shard has no
file) and its inner chunks are the 0.4 chunk files' bytes; range reads of a shard equal the
whole file; materialize writes the mount's bytes (also in --part pieces, and resumed); the
root metadata carries the 0.4 tree's multiscales; bad options are refused with the fix."""
import os
import random

import numpy as np

import oztest as oz
import ozserve
import zarr3_ref

S = oz.Suite("zarr3_output", case_timeout=600)
SHAPE = (37, 70, 90)


def stack(seed=21):
    src = oz.tmpdir("src")
    return src, oz.make_stack(src, SHAPE, np.uint16, seed=seed)


def levels_v3(mnt, levels):
    if levels == 1:
        return [zarr3_ref.read_array(mnt)]
    return [zarr3_ref.read_array(os.path.join(mnt, str(lv))) for lv in range(levels)]


def compare_with_v2(src, opts, vol, window=None, shift=(0, 0, 0), bytes1=False):
    levels = opts["levels"]
    want = oz.reference_pyramid(oz.reference_level0(vol, window, shift, bytes1), levels,
                                opts.get("algorithm", "mean"))
    v2 = {k: v for k, v in opts.items() if k not in ("format", "shard")}
    with oz.Mount(src, dict(opts, format="ome-zarr-0.5")) as m3, oz.Mount(src, v2) as m2:
        got3 = levels_v3(m3.path, levels)
        for lv in range(levels):
            got2 = oz.read_level(m2.path, lv, levels)
            oz.assert_array_equal(got3[lv], got2, "level %d: 0.5 vs 0.4 mount" % lv)
            oz.assert_array_equal(got3[lv], want[lv], "level %d: 0.5 vs numpy reference" % lv)
        return m3, m2


@S.case
def raw_unsharded_equals_v2():
    src, vol = stack()
    compare_with_v2(src, {"chunk": 16, "levels": 4, "shard": 1}, vol)


@S.case
def blosc_shard2_equals_v2():
    src, vol = stack()
    compare_with_v2(src, {"chunk": 16, "levels": 4, "shard": 2, "compression": "blosc"}, vol)


@S.case
def gzip_default_shard_equals_v2():
    src, vol = stack()
    compare_with_v2(src, {"chunk": 16, "levels": 3, "compression": "gzip"}, vol)


@S.case
def zstd_shard2_equals_v2():
    # compression=zstd: the 0.4 side is read by zarr-python through numcodecs' Zstd.
    src, vol = stack()
    compare_with_v2(src, {"chunk": 16, "levels": 3, "shard": 2, "compression": "zstd", "zstd_level": 5}, vol)


@S.case
def blosc_zstd_window_shift_bytes1_shard4():
    src, vol = stack()
    window = ((2, 30), (None, 60), (5, None))
    compare_with_v2(src, {"chunk": 8, "levels": 4, "shard": 4, "compression": "blosc", "blosc_cname": "zstd",
                          "blosc_shuffle": 2, "bytes": 1, "window": oz.window_opt(window),
                          "shift": oz.xyz((1, 0, 3))}, vol, window=window, shift=(1, 0, 3), bytes1=True)


@S.case
def plain_array_nearest():
    src, vol = stack()
    compare_with_v2(src, {"chunk": 16, "levels": 1, "shard": 2, "algorithm": "nearest"}, vol)


@S.case
def metadata_documents():
    src, vol = stack()
    with oz.Mount(src, {"chunk": 16, "levels": 3, "format": "ome-zarr-0.5", "shard": 2, "compression": "blosc",
                        "voxel_size": "7.91", "unit": "micrometer"}) as m3, \
            oz.Mount(src, {"chunk": 16, "levels": 3, "voxel_size": "7.91", "unit": "micrometer"}) as m2:
        root = oz.read_json(os.path.join(m3.path, "zarr.json"))
        oz.check(root["zarr_format"] == 3 and root["node_type"] == "group", "root: %r" % root)
        ome = root["attributes"]["ome"]
        oz.check(ome["version"] == "0.5", "ome.version %r" % ome.get("version"))
        ms3 = ome["multiscales"][0]
        ms2 = oz.read_json(os.path.join(m2.path, ".zattrs"))["multiscales"][0]
        oz.check("version" not in ms3, "0.5 multiscales entries carry no version")
        for key in ("axes", "datasets", "type", "name"):
            oz.check(ms3[key] == ms2[key], "multiscales %s differs from 0.4: %r vs %r" % (key, ms3[key], ms2[key]))
        a = oz.read_json(os.path.join(m3.path, "0", "zarr.json"))
        oz.check(a["node_type"] == "array" and a["data_type"] == "uint16" and a["fill_value"] == 0 and
                 a["dimension_names"] == ["z", "y", "x"] and a["shape"] == list(SHAPE), "array doc: %r" % a)
        oz.check(a["chunk_grid"] == {"name": "regular", "configuration": {"chunk_shape": [32, 32, 32]}},
                 "chunk_grid %r" % a["chunk_grid"])
        oz.check(a["chunk_key_encoding"] == {"name": "default", "configuration": {"separator": "/"}},
                 "chunk_key_encoding %r" % a["chunk_key_encoding"])
        sh = a["codecs"][0]
        oz.check(len(a["codecs"]) == 1 and sh["name"] == "sharding_indexed", "codecs %r" % a["codecs"])
        cfg = sh["configuration"]
        oz.check(cfg["chunk_shape"] == [16, 16, 16] and cfg["index_location"] == "end" and
                 [c["name"] for c in cfg["index_codecs"]] == ["bytes", "crc32c"], "sharding config %r" % cfg)
        blosc = cfg["codecs"][1]
        oz.check(cfg["codecs"][0] == {"name": "bytes", "configuration": {"endian": "little"}} and
                 blosc["name"] == "blosc" and blosc["configuration"]["shuffle"] == "shuffle" and
                 blosc["configuration"]["typesize"] == 2 and blosc["configuration"]["cname"] == "lz4",
                 "inner codecs %r" % cfg["codecs"])
        names = set(os.listdir(m3.path))
        oz.check(names == {"zarr.json", "0", "1", "2"}, "root lists %r" % names)
        oz.check(set(os.listdir(os.path.join(m3.path, "0"))) == {"zarr.json", "c"}, "level dir")


def v2_chunk_bytes(m2, level, idx):
    p = os.path.join(m2, str(level), *[str(i) for i in idx])
    if not os.path.exists(p):
        return None
    with open(p, "rb") as f:
        return f.read()


@S.case
def shard_layout_matches_v2_chunks():
    """Each shard's inner chunks are exactly the 0.4 chunk files (same codec), in C order, and
    absent where 0.4 has no file; an all-empty shard has no file; stat size == bytes read."""
    src, vol = stack()
    n, c, levels = 2, 16, 3
    opts = {"chunk": c, "levels": levels, "compression": "blosc"}
    with oz.Mount(src, dict(opts, format="ome-zarr-0.5", shard=n)) as m3, oz.Mount(src, opts) as m2:
        absent_shards = present = 0
        for lv in range(levels):
            report = zarr3_ref.shard_report(os.path.join(m3.path, str(lv)))
            for sidx, size, entries in report:
                p = os.path.join(m3.path, str(lv), "c", *[str(i) for i in sidx])
                inner_idx = [tuple(s * n + d for s, d in zip(sidx, np.unravel_index(i, (n, n, n))))
                             for i in range(n ** 3)]
                want = [v2_chunk_bytes(m2.path, lv, ix) for ix in inner_idx]
                if size is None:
                    oz.check(all(w is None for w in want), "level %d shard %r absent but has data" % (lv, sidx))
                    absent_shards += 1
                    continue
                oz.check(os.stat(p).st_size == size, "stat size of %s" % p)
                with open(p, "rb") as f:
                    data = f.read()
                for i, (off, nb) in enumerate(entries):
                    if want[i] is None:
                        oz.check((off, nb) == (zarr3_ref.ABSENT, zarr3_ref.ABSENT),
                                 "level %d shard %r inner %d: should be absent, is (%d, %d)" % (lv, sidx, i, off, nb))
                    else:
                        oz.check(data[off:off + nb] == want[i],
                                 "level %d shard %r inner %d differs from the 0.4 chunk" % (lv, sidx, i))
                        present += 1
        oz.check(absent_shards > 0, "the data has an all-empty shard (fixture: zero regions)")
        oz.check(present > 0, "no inner chunk present")


@S.case
def remount_stats_shards_from_the_cache():
    """After a remount on the same cache, stat of every shard and a read of each needs no
    computation and no source read: the shard sizes come from one small cache entry per shard."""
    src, vol = stack()
    cache = oz.tmpdir("cache")
    opts = {"chunk": 8, "levels": 3, "format": "ome-zarr-0.5", "shard": 2, "compression": "blosc"}

    def all_shards(mnt):
        out = {}
        for lv in range(3):
            for sidx, size, entries in zarr3_ref.shard_report(os.path.join(mnt, str(lv))):
                if size is not None:
                    with open(os.path.join(mnt, str(lv), "c", *[str(i) for i in sidx]), "rb") as f:
                        out[(lv, sidx)] = f.read()
        return out

    with oz.Mount(src, opts, cache=cache) as m:
        first = all_shards(m.path)
    with oz.Mount(src, opts, cache=cache) as m:
        second = all_shards(m.path)
        st = oz.stats(m.path)
    oz.check(first and first == second, "shards differ after a remount")
    oz.check(st["chunks_computed"] == 0 and st["source_bytes_read"] == 0,
             "remount computed %d chunks and read %d source bytes" % (st["chunks_computed"], st["source_bytes_read"]))


@S.case
def range_reads_equal_whole_shard():
    src, vol = stack()
    with oz.Mount(src, {"chunk": 8, "levels": 2, "format": "ome-zarr-0.5", "shard": 4, "compression": "gzip"}) as m:
        rnd = random.Random(5)
        checked = 0
        for lv in range(2):
            for sidx, size, entries in zarr3_ref.shard_report(os.path.join(m.path, str(lv))):
                if size is None:
                    continue
                p = os.path.join(m.path, str(lv), "c", *[str(i) for i in sidx])
                with open(p, "rb") as f:
                    whole = f.read()
                fd = os.open(p, os.O_RDONLY)
                try:
                    for _ in range(6):
                        a = rnd.randrange(0, size)
                        k = rnd.randrange(1, 70000)
                        oz.check(os.pread(fd, k, a) == whole[a:a + k], "%s: pread(%d, %d) differs" % (p, k, a))
                    oz.check(os.pread(fd, 100, size) == b"", "read at EOF")
                finally:
                    os.close(fd)
                checked += 1
        oz.check(checked > 0, "no shard read")


@S.case
def materialize_equals_mount_sharded_parts_resume():
    src, vol = stack()
    for opts in ({"chunk": 16, "levels": 4, "format": "ome-zarr-0.5", "shard": 2, "compression": "blosc"},
                 {"chunk": 8, "levels": 4, "format": "ome-zarr-0.5", "shard": 4},
                 {"chunk": 16, "levels": 3, "format": "ome-zarr-0.5", "shard": 1, "compression": "gzip"}):
        one = os.path.join(oz.tmpdir("mat"), "one.zarr")
        oz.materialize(src, one, opts)
        with oz.Mount(src, opts) as m:
            mounted = oz.tree_files(m.path)
        written = oz.tree_files(one)
        oz.check(set(mounted) == set(written), "%r: files differ: %r" % (
            opts, sorted(set(mounted) ^ set(written))[:10]))
        bad = [k for k in mounted if mounted[k] != written[k]]
        oz.check(not bad, "%r: bytes differ: %r" % (opts, bad[:10]))
        # Three parts, in reverse order, into one DEST: the same tree; a rerun skips everything.
        parts = os.path.join(oz.tmpdir("mat"), "parts.zarr")
        for i in (3, 1, 2):
            oz.materialize(src, parts, opts, "--part", "%d/3" % i)
        oz.check(oz.tree_files(parts) == written, "%r: --part 1..3/3 tree differs from one run" % opts)
        again = oz.materialize(src, one, opts, "--verify")
        oz.check(" 0 written" in again.stderr and "source bytes read: 0" in again.stderr,
                 "%r: a verified rerun of a finished DEST wrote or read something: %s" % (opts, again.stderr[-600:]))
        oz.check(oz.tree_files(one) == written, "rerun changed the tree")
        # A shard deleted from DEST is noticed by --verify and written again, the same bytes.
        victim = sorted(k for k in written if "/c/" in k)[0]
        os.unlink(os.path.join(one, victim))
        oz.materialize(src, one, opts, "--verify")
        oz.check(oz.tree_files(one) == written, "%r: --verify did not restore %s" % (opts, victim))


@S.case
def bad_options_refused():
    src, vol = stack()
    cases = [
        ({"format": "ome-zarr-0.5", "shard": 3}, ["shard=3", "power of two"]),
        ({"shard": 2}, ["shard=2", "format=ome-zarr-0.5"]),
        ({"format": "zarr9"}, ["format=zarr9", "ome-zarr-0.4", "ome-zarr-0.5"]),
        ({"format": "ome-zarr-0.5", "compression": "zlib"}, ["compression=zlib", "gzip"]),
        ({"format": "ome-zarr-0.5", "shard": 2, "empty": "keep"}, ["empty=keep", "shard=1"]),
        ({"format": "ome-zarr-0.5", "shard": 64, "chunk": 256}, ["shard=64", "memory="]),
    ]
    for opts, mention in cases:
        rc, err, mounted = oz.try_mount(src, dict(opts, chunk=opts.get("chunk", 16)))
        oz.check(rc != 0 and not mounted, "%r: mounted (rc %r)" % (opts, rc))
        for word in mention:
            oz.check(word.lower() in err.lower(), "%r: stderr does not name %r: %r" % (opts, word, err[-400:]))


@S.case
def served_zarr_json_and_shard_ranges():
    src, vol = stack()
    www = oz.tmpdir("www")
    mnt = os.path.join(www, "v.zarr")
    os.mkdir(mnt)
    with oz.Mount(src, {"chunk": 16, "levels": 2, "format": "ome-zarr-0.5", "shard": 2}, mountpoint=mnt), \
            ozserve.Server(www) as srv:
        st, h, body = srv.get("/v.zarr/zarr.json")
        oz.check(st == 200 and h.get("content-type", "").startswith("application/json"),
                 "zarr.json: %d %r" % (st, h.get("content-type")))
        shard = next(s for s, size, e in zarr3_ref.shard_report(os.path.join(mnt, "0")) if size)
        path = "/v.zarr/0/c/" + "/".join(str(i) for i in shard)
        with open(mnt + path[len("/v.zarr"):], "rb") as f:
            whole = f.read()
        st, h, body = srv.get(path, method="HEAD")
        oz.check(st == 200 and int(h["content-length"]) == len(whole), "HEAD %d %r" % (st, h))
        st, h, body = srv.get(path, headers={"Range": "bytes=-%d" % (16 * 8 + 4)})
        oz.check(st == 206 and body == whole[-(16 * 8 + 4):], "suffix range (the index): %d" % st)
        oz.check(h.get("content-range") == "bytes %d-%d/%d" % (len(whole) - 132, len(whole) - 1, len(whole)),
                 "content-range %r" % h.get("content-range"))
        st, h, body = srv.get(path, headers={"Range": "bytes=10-99"})
        oz.check(st == 206 and body == whole[10:100], "range 10-99: %d" % st)


if __name__ == "__main__":
    S.main()
