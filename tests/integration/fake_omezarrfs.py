#!/usr/bin/python3
"""HARNESS FAKE, not a product: lets the integration tests be exercised before the real binary
exists.  `fake_omezarrfs.py SOURCE MNT -o cache=DIR,...` computes the tree with oztest's own
reference (so data checks are tautological here), writes it below the cache dir and bind-mounts
it read-only at MNT.  Only the plumbing of the tests is validated this way (option formatting,
readers, metadata checks, tree walks, error-path handling).  No caching, no laziness.

    OMEZARRFS_BIN=tests/integration/fake_omezarrfs.py /usr/bin/python3 tests/integration/test_view.py
"""

import hashlib
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oztest as oz  # noqa: E402
import numpy as np  # noqa: E402
import tifffile  # noqa: E402

KNOWN = {"chunk", "levels", "algorithm", "window", "shift", "bytes", "compression", "blosc_cname",
         "blosc_clevel", "blosc_shuffle", "empty", "cache", "cache_size", "memory", "threads",
         "voxel_size", "unit", "bad_slices"}


def die(msg):
    sys.stderr.write("omezarrfs(fake): %s\n" % msg)
    sys.exit(2)


def split_opts(s):
    out, cur, i = [], "", 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s) and s[i + 1] == ",":
            cur += ","
            i += 2
            continue
        if s[i] == ",":
            out.append(cur)
            cur = ""
        else:
            cur += s[i]
        i += 1
    out.append(cur)
    return [o for o in out if o]


def parse_triple(v, name):
    parts = re.split(r"[,/]", v)
    if len(parts) != 3:
        die("%s: expected x,y,z, got %r" % (name, v))
    return parts


def main():
    args = sys.argv[1:]
    pos, opts = [], {}
    i = 0
    while i < len(args):
        if args[i] == "-o":
            for o in split_opts(args[i + 1]):
                k, _, v = o.partition("=")
                if k not in KNOWN:
                    die("unknown option %r" % k)
                opts[k] = v
            i += 2
        elif args[i] in ("-f", "-d", "-s"):
            i += 1
        else:
            pos.append(args[i])
            i += 1
    src, mnt = pos
    try:
        chunk = int(opts.get("chunk", 128))
        levels = int(opts.get("levels", 6))
    except ValueError as e:
        die("malformed option value: %s" % e)
    if chunk <= 0 or levels < 1:
        die("chunk must be > 0 and levels >= 1")
    algo = opts.get("algorithm", "mean")
    window = [None, None, None]
    if "window" in opts:
        for a, part in enumerate(parse_triple(opts["window"], "window")):
            bits = part.split(":")
            if len(bits) != 2:
                die("window: malformed slice %r" % part)
            window[2 - a] = tuple(int(b) if b else None for b in bits)
    shift = [0, 0, 0]
    if "shift" in opts:
        shift = [int(v) for v in reversed(parse_triple(opts["shift"], "shift"))]
    vox = [1.0, 1.0, 1.0]
    if "voxel_size" in opts:
        p = re.split(r"[,/]", opts["voxel_size"])
        vox = [float(p[0])] * 3 if len(p) == 1 else [float(v) for v in reversed(p)]
    if not os.path.isdir(src):
        die("source directory %s does not exist" % src)
    slices = {}
    for n in os.listdir(src):
        m = re.fullmatch(r"(\d+)\.tiff?", n, re.I)
        if m:
            z = int(m.group(1))
            if z in slices:
                die("two files for z=%d: %s and %s" % (z, slices[z], n))
            slices[z] = n
    if not slices:
        die("no slice files in %s" % src)
    planes, shape, dtype = {}, None, None
    for z, n in sorted(slices.items()):
        with tifffile.TiffFile(os.path.join(src, n)) as t:
            p = t.pages[0]
            if p.dtype not in (np.uint8, np.uint16) or p.samplesperpixel != 1:
                die("%s: unsupported sample format %s x%d" % (n, p.dtype, p.samplesperpixel))
            s = (p.imagelength, p.imagewidth)
        if shape is None:
            shape, dtype, first = s, p.dtype, n
        elif s != shape:
            if opts.get("bad_slices") == "zero":
                continue
            die("%s is %dx%d but %s is %dx%d" % (n, s[1], s[0], first, shape[1], shape[0]))
        planes[z] = oz.libtiff_read(os.path.join(src, n))
    vol = np.zeros((max(slices) + 1,) + tuple(shape), dtype)
    for z, a in planes.items():
        vol[z] = a
    l0 = oz.reference_level0(vol, window, shift, opts.get("bytes") == "1")
    arrays = oz.reference_pyramid(l0, levels, algo)
    bug = os.environ.get("FAKE_BUG", "")  # deliberate defects to prove the tests catch them
    if bug == "floor" and algo == "mean":
        arrays = [l0]
        for _ in range(1, levels):
            a = arrays[-1]
            arrays.append((oz._blocks(a).sum(axis=(1, 3, 5)) // oz._counts(a.shape))
                          .astype(a.dtype))
    if bug == "offbyone":
        arrays[0] = arrays[0].copy()
        arrays[0][-1, -1, -1] ^= 1
    comp = None
    if opts.get("compression") == "blosc":
        comp = {"id": "blosc", "cname": opts.get("blosc_cname", "lz4"),
                "clevel": int(opts.get("blosc_clevel", 5)),
                "shuffle": int(opts.get("blosc_shuffle", 1)), "blocksize": 0}
    key = hashlib.sha1(repr((sorted(opts.items()), src)).encode()).hexdigest()[:12]
    tree = os.path.join(opts.get("cache", "/tmp"), "fake-tree-" + key)
    oz.materialize_tree(tree, arrays, algo, chunk, comp, opts.get("empty", "omit"), vox,
                        opts.get("unit") or None)
    n = sum(len(f) for _, _, f in os.walk(tree))
    os.setxattr(tree, "user.omezarrfs.stats",
                ("chunks_computed %d\ncache_hits 0\ncache_misses %d\nsource_bytes_read %d\n"
                 "source_files_opened %d\n" % (n, n, vol.nbytes, len(planes))).encode())
    subprocess.run(["mount", "--bind", tree, mnt], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", mnt], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
