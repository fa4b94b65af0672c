#!/usr/bin/python3
"""Byte-identity of the zarr v2 / OME-Zarr 0.4 tree across refactors: omezarr-materialize of a
fixed generated stack with several option sets must give exactly the tree digests recorded in
tests/golden/zarr2_digests.json (recorded with the binaries before the output-format seam).

The digest of a tree is the SHA-256 of the sorted list of (relative path, SHA-256 of the file)
over every file (the state dir excluded); in .zattrs the two members that name the run rather
than the data (metadata.source, the source path, and metadata.version) are normalized first.

To record new digests (only when a change of bytes is intended and documented):
  OZ_GOLDEN_RECORD=1 /usr/bin/python3 tests/integration/test_golden.py"""
import hashlib
import json
import os
import subprocess

import oztest as oz

S = oz.Suite("golden")
HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "golden", "zarr2_digests.json")

# name -> -o options. Covers every v2 codec, both empty policies, all three kernels, window,
# shift, bytes=1, an odd chunk edge and the plain-array layout (levels=1).
CASES = {
    "default": "chunk=16,levels=4",
    "blosc_lz4_keep": "chunk=20,levels=3,compression=blosc,empty=keep",
    "blosc_zstd_bitshuffle_max": "chunk=16,levels=4,compression=blosc,blosc_cname=zstd,blosc_shuffle=2,"
                                 "blosc_clevel=3,algorithm=max",
    "zlib_window_shift": "chunk=16,levels=3,compression=zlib,zlib_level=6,window=3:80/5:/:30,shift=2/-3/1",
    "gzip_bytes1_nearest": "chunk=24,levels=3,compression=gzip,bytes=1,algorithm=nearest,unit=micrometer,"
                           "voxel_size=7.91",
    "plain_array": "chunk=32,levels=1",
}


def tool():
    return os.path.join(os.path.dirname(oz.binary()), "..", "cli", "omezarr-materialize")


def tree_digest(root):
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != ".omezarr-materialize")
        for f in filenames:
            p = os.path.join(dirpath, f)
            rel = os.path.relpath(p, root)
            with open(p, "rb") as fh:
                data = fh.read()
            if f == ".zattrs":
                doc = json.loads(data)
                for ms in doc.get("multiscales", []):
                    meta = ms.get("metadata", {})
                    meta["source"] = "<source>"
                    meta["version"] = "<version>"
                data = json.dumps(doc, sort_keys=True).encode()
            entries.append("%s %s" % (rel, hashlib.sha256(data).hexdigest()))
    entries.sort()
    return hashlib.sha256("\n".join(entries).encode()).hexdigest(), len(entries)


def digests():
    src = os.path.join(oz.tmpdir("golden-src"), "stack")
    oz.make_stack(src, shape_zyx=(37, 70, 90), seed=11, compression="zlib")
    out = {}
    for name, opts in CASES.items():
        dest = os.path.join(oz.tmpdir("golden-" + name), "out.zarr")
        res = subprocess.run([tool(), src, dest, "-o", opts + ",cache_size=0"], stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=300)
        oz.check(res.returncode == 0, "materialize %s failed: %s" % (name, res.stderr[-800:]))
        out[name] = tree_digest(dest)
    return out


@S.case
def zarr2_tree_bytes_unchanged():
    got = digests()
    if os.environ.get("OZ_GOLDEN_RECORD"):
        with open(GOLDEN, "w") as f:
            json.dump({k: {"sha256": v[0], "files": v[1]} for k, v in got.items()}, f, indent=2, sort_keys=True)
            f.write("\n")
        print("recorded", GOLDEN)
        return
    with open(GOLDEN) as f:
        want = json.load(f)
    oz.check(set(want) == set(CASES), "golden cases differ from CASES: %s" % sorted(set(want) ^ set(CASES)))
    bad = ["%s: %s (%d files), recorded %s (%d files)" % (k, got[k][0][:16], got[k][1], want[k]["sha256"][:16],
                                                           want[k]["files"])
           for k in CASES if (got[k][0], got[k][1]) != (want[k]["sha256"], want[k]["files"])]
    oz.check(not bad, "zarr v2 tree bytes changed:\n  " + "\n  ".join(bad))


if __name__ == "__main__":
    S.main()
