#!/usr/bin/python3
"""-o format=precomputed (Neuroglancer precomputed): every chunk of every level read by an
independent spec-based reader (precomputed_ref.py: numpy, jpeg through djpeg) equals the OME-Zarr
0.4 mount of the same source (read by zarr-python) and the numpy reference, for raw and gzip and
with the view options; jpeg stays within its PSNR bound on scroll-like data at every level; the
info document (sizes, chunk sizes, resolutions in nm, encodings); chunks are clipped at the edge,
all-zero chunks are files by default and absent with empty=omit exactly where 0.4 has no file;
materialize writes the mount's bytes (also in --part pieces, resumed, --verify); a remount serves
jpeg files from the cache; omezarr-serve answers gzip-holding chunks with Content-Encoding:
gzip; options the format cannot express are refused with the fix."""
import gzip
import os
import subprocess

import numpy as np

import oztest as oz
import ozserve
import precomputed_ref as ref

S = oz.Suite("precomputed_output", case_timeout=600)
SHAPE = (37, 70, 90)
JPEG_PSNR_DB = 40.0  # the README's bound for the default jpeg_quality on scroll-like data


def stack(seed=21):
    src = oz.tmpdir("src")
    return src, oz.make_stack(src, SHAPE, np.uint16, seed=seed)


def scroll_like(shape=(48, 160, 160), seed=3):
    """uint16 CT-like slices: a rolled sheet (an Archimedean spiral of bright layers wobbling with
    z) in a disc, Gaussian noise, zeros outside the disc (the same kind as bench/gen_stack.py)."""
    Z, Y, X = shape
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:Y, 0:X].astype(np.float64)
    dy, dx = yy - (Y - 1) / 2.0, xx - (X - 1) / 2.0
    r, th = np.hypot(dx, dy), np.arctan2(dy, dx)
    period = max(X / 80.0, 4.0)
    vol = np.zeros(shape, np.uint16)
    for z in range(Z):
        phase = (r + period * th / (2 * np.pi) + 3.0 * np.sin(z / 17.0 + th * 3)) / period
        img = 18000.0 + 22000.0 * np.cos(2 * np.pi * phase) ** 8 + rng.normal(0.0, 900.0, (Y, X))
        vol[z] = np.where(r <= 0.45 * X, np.clip(img, 1, 65535), 0).astype(np.uint16)
    return vol


def v2_options(opts):
    return {k: v for k, v in opts.items() if k not in ("format", "jpeg_quality", "empty")}


def read_all(root, gunzip=False):
    info = ref.read_info(root)
    return info, [ref.read_scale(root, info, i, gunzip=gunzip) for i in range(len(info["scales"]))]


def compare_with_v2(src, opts, vol, window=None, shift=(0, 0, 0), bytes1=False):
    """Every level of the precomputed mount equals the 0.4 mount and the numpy reference; returns
    (info, [(array, absent, sizes)])."""
    levels = opts["levels"]
    want = oz.reference_pyramid(oz.reference_level0(vol, window, shift, bytes1), levels,
                                opts.get("algorithm", "mean"))
    gz = opts.get("compression") == "gzip"
    with oz.Mount(src, dict(opts, format="precomputed")) as mp, oz.Mount(src, v2_options(opts)) as m2:
        info, scales = read_all(mp.path, gunzip=gz)
        oz.check(len(scales) == levels, "%d scales for %d levels" % (len(scales), levels))
        for lv in range(levels):
            got = scales[lv][0]
            oz.assert_array_equal(got, oz.read_level(m2.path, lv, levels), "level %d: precomputed vs 0.4" % lv)
            oz.assert_array_equal(got, want[lv], "level %d: precomputed vs numpy" % lv)
        return info, scales


def check_sizes(info, scales, gz):
    """Every chunk file is clipped: raw files are exactly the clipped box (x*y*z*bytes)."""
    item = 2 if info["data_type"] == "uint16" else 1
    for i, (arr, absent, sizes) in enumerate(scales):
        for name, (x0, x1), (y0, y1), (z0, z1) in ref.chunk_boxes(info["scales"][i]):
            if name in sizes and not gz:
                oz.check(sizes[name] == (x1 - x0) * (y1 - y0) * (z1 - z0) * item,
                         "scale %d %s: %d bytes" % (i, name, sizes[name]))


@S.case
def raw_uint16_equals_v2_every_chunk_a_file():
    src, vol = stack()
    info, scales = compare_with_v2(src, {"chunk": 16, "levels": 4}, vol)
    check_sizes(info, scales, False)
    for i, (_, absent, _) in enumerate(scales):
        oz.check(not absent, "scale %d: absent chunks with the default empty=keep: %r" % (i, absent[:5]))
    oz.check(info["@type"] == "neuroglancer_multiscale_volume" and info["type"] == "image" and
             info["data_type"] == "uint16" and info["num_channels"] == 1, "info header %r" % info)
    s0 = info["scales"][0]
    oz.check(s0["size"] == [90, 70, 37] and s0["chunk_sizes"] == [[16, 16, 16]] and s0["key"] == "0" and
             s0["voxel_offset"] == [0, 0, 0] and s0["encoding"] == "raw" and s0["resolution"] == [1, 1, 1],
             "scale 0 %r" % s0)
    oz.check(info["scales"][3]["size"] == [12, 9, 5] and info["scales"][3]["resolution"] == [8, 8, 8],
             "scale 3 %r" % info["scales"][3])
    oz.check("content_encoding" not in info["omezarrfs"], "raw tree says content_encoding")


@S.case
def gzip_window_shift_bytes1_max_equals_v2():
    src, vol = stack()
    window = ((2, 30), (None, 60), (5, None))
    info, scales = compare_with_v2(src, {"chunk": 8, "levels": 4, "compression": "gzip", "zlib_level": 6,
                                         "bytes": 1, "algorithm": "max", "window": oz.window_opt(window),
                                         "shift": oz.xyz((1, 0, 3))},
                                   vol, window=window, shift=(1, 0, 3), bytes1=True)
    oz.check(info["data_type"] == "uint8" and info["omezarrfs"]["content_encoding"] == "gzip",
             "info %r" % {k: info[k] for k in ("data_type", "omezarrfs")})


@S.case
def empty_omit_absent_exactly_where_v2_has_no_file():
    src, vol = stack()
    opts = {"chunk": 16, "levels": 3, "empty": "omit"}
    info, scales = compare_with_v2(src, opts, vol)
    with oz.Mount(src, v2_options(opts)) as m2:
        for lv in range(3):
            names = {b[0]: b for b in ref.chunk_boxes(info["scales"][lv])}
            absent = scales[lv][1]
            v2_absent = []
            for name, (x0, _), (y0, _), (z0, _) in names.values():
                p = os.path.join(m2.path, str(lv), str(z0 // 16), str(y0 // 16), str(x0 // 16))
                if not os.path.exists(p):
                    v2_absent.append(name)
            oz.check(sorted(v2_absent) == absent, "level %d: absent %r, 0.4 has no file for %r" % (
                lv, absent[:4], sorted(v2_absent)[:4]))
        oz.check(any(scales[lv][1] for lv in range(3)), "the fixture has empty chunks")


@S.case
def zarr_source_nearest_levels1():
    """A zarr source with a blosc compressor: precomputed serves raw (its compressor is no
    precomputed encoding); levels=1 is one scale; nearest."""
    import numcodecs
    d = os.path.join(oz.tmpdir("zsrc"), "s.zarr")
    vol = oz.make_zarr(d, oz.make_volume(SHAPE, np.uint16, seed=4), (16, 16, 16),
                       compressor=numcodecs.Blosc(cname="lz4"))
    info, scales = compare_with_v2(d, {"chunk": 16, "levels": 1, "algorithm": "nearest"}, vol)
    oz.check(len(info["scales"]) == 1 and info["scales"][0]["encoding"] == "raw", "info %r" % info["scales"])
    info, scales = compare_with_v2(d, {"chunk": 32, "levels": 3}, vol)


@S.case
def resolution_in_nanometres():
    src, vol = stack()
    for unit, nm in (("micrometer", 1000), ("millimeter", 1e6), ("nanometer", 1), ("angstrom", 0.1)):
        with oz.Mount(src, {"chunk": 32, "levels": 2, "format": "precomputed", "voxel_size": "7.91/7.91/2.5",
                            "unit": unit}) as m:
            info = ref.read_info(m.path)
            want = [round(v * nm, 9) for v in (7.91, 7.91, 2.5)]
            got = info["scales"][0]["resolution"]
            oz.check(all(abs(g - w) <= 1e-9 * max(1, w) for g, w in zip(got, want)),
                     "unit=%s: resolution %r, want %r" % (unit, got, want))
            got1 = info["scales"][1]["resolution"]
            oz.check(all(abs(g - 2 * w) <= 1e-9 * max(1, w) for g, w in zip(got1, want)),
                     "unit=%s: level 1 resolution %r" % (unit, got1))


@S.case
def jpeg_within_psnr_at_every_level_scroll_like():
    """compression=jpeg with the default quality on scroll-like data: every level within
    JPEG_PSNR_DB of the exact uint8 data (the 0.4 mount with bytes=1); each chunk is one JPEG
    x wide and y*z high; smaller than raw."""
    src = oz.tmpdir("src")
    vol = oz.make_stack(src, volume=scroll_like())
    levels = 4
    opts = {"chunk": 32, "levels": levels, "bytes": 1}
    with oz.Mount(src, dict(opts, format="precomputed", compression="jpeg")) as mj, oz.Mount(src, opts) as m2:
        info, scales = read_all(mj.path)
        oz.check(all(s["encoding"] == "jpeg" for s in info["scales"]) and info["data_type"] == "uint8",
                 "info %r" % info["scales"])
        want0 = oz.reference_level0(vol, bytes1=True)
        for lv in range(levels):
            exact = oz.read_level(m2.path, lv, levels)
            if lv == 0:
                oz.assert_array_equal(exact, want0, "0.4 bytes=1 level 0 vs numpy")
            got, absent, sizes = scales[lv]
            p = ref.psnr(got, exact)
            oz.check(p >= JPEG_PSNR_DB, "level %d: PSNR %.2f dB < %.1f" % (lv, p, JPEG_PSNR_DB))
            raw = sum((x1 - x0) * (y1 - y0) * (z1 - z0) for _, (x0, x1), (y0, y1), (z0, z1) in
                      ref.chunk_boxes(info["scales"][lv]))
            oz.check(sum(sizes.values()) < raw, "level %d: jpeg %d bytes >= raw %d" % (lv, sum(sizes.values()), raw))
        # The image layout: width x, height y*z (djpeg's header).
        name, (x0, x1), (y0, y1), (z0, z1) = ref.chunk_boxes(info["scales"][0])[-1]
        with open(os.path.join(mj.path, "0", name), "rb") as f:
            w, h, _ = ref.djpeg_gray(f.read())
        oz.check((w, h) == (x1 - x0, (y1 - y0) * (z1 - z0)), "%s: image %dx%d" % (name, w, h))


@S.case
def jpeg_remount_serves_from_the_cache():
    src = oz.tmpdir("src")
    oz.make_stack(src, volume=scroll_like((20, 64, 64)))
    cache = oz.tmpdir("cache")
    opts = {"chunk": 16, "levels": 3, "format": "precomputed", "compression": "jpeg", "bytes": 1}
    with oz.Mount(src, opts, cache=cache) as m:
        first = oz.tree_files(m.path)
    with oz.Mount(src, opts, cache=cache) as m:
        second = oz.tree_files(m.path)
        st = oz.stats(m.path)
    oz.check(first and first == second, "jpeg files differ after a remount")
    oz.check(st["chunks_computed"] == 0 and st["source_bytes_read"] == 0,
             "remount computed %d chunks and read %d source bytes" % (st["chunks_computed"], st["source_bytes_read"]))


@S.case
def materialize_equals_mount_parts_resume():
    src, vol = stack()
    for opts in ({"chunk": 16, "levels": 4, "format": "precomputed"},
                 {"chunk": 8, "levels": 3, "format": "precomputed", "compression": "gzip", "empty": "omit"},
                 {"chunk": 16, "levels": 3, "format": "precomputed", "compression": "jpeg", "bytes": 1,
                  "jpeg_quality": 90}):
        one = os.path.join(oz.tmpdir("mat"), "one")
        oz.materialize(src, one, opts)
        with oz.Mount(src, opts) as m:
            mounted = oz.tree_files(m.path)
        written = oz.tree_files(one)
        oz.check(set(mounted) == set(written), "%r: files differ: %r" % (
            opts, sorted(set(mounted) ^ set(written))[:10]))
        bad = [k for k in mounted if mounted[k] != written[k]]
        oz.check(not bad, "%r: bytes differ: %r" % (opts, bad[:10]))
        # Three parts, in reverse order, into one DEST: the same tree; a rerun skips everything.
        parts = os.path.join(oz.tmpdir("mat"), "parts")
        for i in (3, 1, 2):
            oz.materialize(src, parts, opts, "--part", "%d/3" % i)
        oz.check(oz.tree_files(parts) == written, "%r: --part 1..3/3 tree differs from one run" % opts)
        again = oz.materialize(src, one, opts, "--verify")
        oz.check(" 0 written" in again.stderr and "source bytes read: 0" in again.stderr,
                 "%r: a verified rerun of a finished DEST wrote or read something: %s" % (opts, again.stderr[-600:]))
        # A chunk file deleted from DEST is noticed by --verify and written again, the same bytes.
        victim = sorted(k for k in written if k != "info")[0]
        os.unlink(os.path.join(one, victim))
        oz.materialize(src, one, opts, "--verify")
        oz.check(oz.tree_files(one) == written, "%r: --verify did not restore %s" % (opts, victim))
    # Parts running at the same time write into the same level directories.
    opts = {"chunk": 8, "levels": 3, "format": "precomputed", "compression": "gzip"}
    together = os.path.join(oz.tmpdir("mat"), "together")
    procs = [subprocess.Popen([oz.materialize_tool(), src, together, "-o", oz.format_options(opts), "--part", "%d/3" % i],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for i in (1, 2, 3)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    oz.check(all(p.returncode == 0 for p in procs), "concurrent parts failed: %r" % [e[-300:] for e in errs])
    with oz.Mount(src, opts) as m:
        oz.check(oz.tree_files(together) == oz.tree_files(m.path), "concurrent --part tree differs from the mount")


@S.case
def bad_options_refused():
    src, vol = stack()
    cases = [
        ({"format": "precomputed", "compression": "jpeg"}, ["compression=jpeg", "bytes=1"]),
        ({"format": "precomputed", "compression": "jpeg", "bytes": 1, "chunk": 256}, ["chunk=256", "255"]),
        ({"format": "precomputed", "compression": "jpeg", "bytes": 1, "jpeg_quality": 0}, ["jpeg_quality=0", "1 to 100"]),
        ({"format": "precomputed", "compression": "jpeg", "bytes": 1, "jpeg_quality": 101}, ["jpeg_quality=101"]),
        ({"format": "precomputed", "compression": "blosc"}, ["compression=blosc", "compression=none", "gzip", "jpeg"]),
        ({"format": "precomputed", "compression": "zlib"}, ["compression=zlib", "gzip"]),
        ({"format": "precomputed", "compression": "zstd"}, ["compression=zstd", "gzip"]),
        ({"format": "precomputed", "shard": 2}, ["shard=2", "sharded precomputed", "not implemented"]),
        ({"compression": "jpeg", "bytes": 1}, ["compression=jpeg", "format=precomputed"]),
        ({"format": "ome-zarr-0.5", "compression": "jpeg", "bytes": 1}, ["compression=jpeg", "format=precomputed"]),
    ]
    for opts, mention in cases:
        rc, err, mounted = oz.try_mount(src, dict(opts, chunk=opts.get("chunk", 16)))
        oz.check(rc != 0 and not mounted, "%r: mounted (rc %r)" % (opts, rc))
        for word in mention:
            oz.check(word.lower() in err.lower(), "%r: stderr does not name %r: %r" % (opts, word, err[-400:]))
    r = subprocess.run([oz.materialize_tool(), src, os.path.join(oz.tmpdir("mat"), "x"), "-o",
                        "format=precomputed,compression=jpeg"], capture_output=True, text=True, timeout=60)
    oz.check(r.returncode != 0 and "bytes=1" in r.stderr, "materialize accepted jpeg on uint16: %s" % r.stderr)


@S.case
def served_info_and_gzip_content_encoding():
    src, vol = stack()
    www = oz.tmpdir("www")
    for name, opts in (("gz", {"compression": "gzip"}), ("raw", {}), ("jp", {"compression": "jpeg", "bytes": 1})):
        os.mkdir(os.path.join(www, name))
    mounts = [oz.Mount(src, dict(o, chunk=16, levels=2, format="precomputed"), mountpoint=os.path.join(www, n))
              for n, o in (("gz", {"compression": "gzip"}), ("raw", {}), ("jp", {"compression": "jpeg", "bytes": 1}))]
    for m in mounts:
        m.__enter__()
    try:
        with ozserve.Server(www) as srv:
            st, h, body = srv.get("/gz/info")
            oz.check(st == 200 and h.get("content-type", "").startswith("application/json"),
                     "info: %d %r" % (st, h.get("content-type")))
            info = ref.read_info(os.path.join(www, "gz"))
            name = ref.chunk_boxes(info["scales"][1])[-1][0]
            with open(os.path.join(www, "gz", "1", name), "rb") as f:
                whole = f.read()
            st, h, body = srv.get("/gz/1/" + name)
            oz.check(st == 200 and h.get("content-encoding") == "gzip" and body == whole,
                     "gzip chunk: %d %r" % (st, h))
            oz.check(len(gzip.decompress(body)) > 0, "gzip body")
            st, h, body = srv.get("/gz/1/" + name, method="HEAD")
            oz.check(st == 200 and h.get("content-encoding") == "gzip", "HEAD of a gzip chunk: %d %r" % (st, h))
            for other in ("raw", "jp"):
                st, h, body = srv.get("/%s/1/%s" % (other, name))
                oz.check(st == 200 and "content-encoding" not in h, "%s chunk: %d %r" % (other, st, h))
            st, h, body = srv.get("/gz/info", method="GET")
            oz.check("content-encoding" not in h, "info sent with Content-Encoding")
            st, h, body = srv.get("/gz/1/0-8_0-8_0-8")
            oz.check(st == 404, "a name outside the grid: %d" % st)
    finally:
        for m in reversed(mounts):
            m.__exit__(None, None, None)


if __name__ == "__main__":
    S.main()
