#!/usr/bin/python3
"""Empty chunks: absent with empty=omit (not listed, stat/open ENOENT, zarr reads zeros), listed
with empty=keep; readdir, stat and read agree over the whole tree (sizes from stat taken on a
fresh mount before any read, then compared with the bytes read; partial reads consistent)."""

import errno
import functools
import itertools
import os
import stat as statmod
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oztest as oz  # noqa: E402
import numpy as np  # noqa: E402

S = oz.Suite(__file__)
SHAPE = (40, 100, 130)
CHUNK = 16
LEVELS = 3


@functools.lru_cache(None)
def stack():
    d = oz.tmpdir("src")
    return d, oz.make_stack(d, SHAPE, np.uint16, seed=31, rowsperstrip=9)


def expected_files(levels_arrays, chunk, empty):
    """Relative paths of every file the tree must list."""
    n = len(levels_arrays)
    files = {".zgroup", ".zattrs"} if n > 1 else set()
    chunks = {}
    for lvl, a in enumerate(levels_arrays):
        prefix = "%d/" % lvl if n > 1 else ""
        files.add(prefix + ".zarray")
        for ci in itertools.product(*[range(g) for g in oz.chunk_grid(a.shape, [chunk] * 3)]):
            e = oz.chunk_is_empty(a, ci, chunk)
            rel = prefix + "/".join(str(i) for i in ci)
            chunks[rel] = e
            if not e or empty == "keep":
                files.add(rel)
    return files, chunks


ALLOWED_EXTRA = {".zmetadata"}


def _listing_problems(got_files, want_files):
    p = []
    missing = sorted(want_files - set(got_files))
    extra = sorted(set(got_files) - want_files - ALLOWED_EXTRA)
    if missing:
        p.append("%d expected files not listed, e.g. %s" % (len(missing), missing[:5]))
    if extra:
        p.append("%d unexpected files listed, e.g. %s" % (len(extra), extra[:5]))
    return p


def _agree(mnt, ck):
    """Walk with readdir, stat every entry (before any read), then read every file and compare
    the sizes; also partial preads against the full content."""
    files, dirs = oz.walk_files(mnt)
    sizes = {}
    for rel in dirs:
        try:
            st = os.lstat(os.path.join(mnt, rel))
            ck.expect(statmod.S_ISDIR(st.st_mode), "%s listed as dir, stat mode %o" % (
                rel, st.st_mode))
        except OSError as e:
            ck.expect(False, "listed dir %s: stat fails: %s" % (rel, e))
    for rel in files:
        try:
            st = os.lstat(os.path.join(mnt, rel))
        except OSError as e:
            ck.expect(False, "listed file %s: stat fails: %s" % (rel, e))
            continue
        ck.expect(statmod.S_ISREG(st.st_mode), "%s: mode %o not a regular file" % (
            rel, st.st_mode))
        sizes[rel] = st.st_size
    bad = []
    for rel, size in sizes.items():
        p = os.path.join(mnt, rel)
        try:
            with open(p, "rb") as f:
                data = f.read()
            if len(data) != size:
                bad.append("%s: stat size %d, read %d bytes" % (rel, size, len(data)))
                continue
            st2 = os.stat(p)
            if st2.st_size != size:
                bad.append("%s: stat size changed %d -> %d after read" % (rel, size,
                                                                          st2.st_size))
            fd = os.open(p, os.O_RDONLY)
            try:
                for off, n in ((0, 1), (size // 3, 4097), (max(0, size - 5), 100),
                               (size, 10), (size + 1000, 10)):
                    got = os.pread(fd, n, off)
                    if got != data[off:off + n]:
                        bad.append("%s: pread(%d, off %d) gave %d bytes != content" % (
                            rel, n, off, len(got)))
                        break
            finally:
                os.close(fd)
        except OSError as e:
            bad.append("%s: read fails: %s" % (rel, e))
    if bad:
        ck.expect(False, "%d files disagree, e.g. %s" % (len(bad), "; ".join(bad[:4])))
    return files


def _empty_case(empty, compression=None, algo="mean"):
    def run():
        d, vol = stack()
        want = oz.reference_pyramid(vol, LEVELS, algo)
        opts = {"chunk": CHUNK, "levels": LEVELS, "algorithm": algo}
        comp = None
        if empty:
            opts["empty"] = empty
        if compression == "blosc":
            opts.update({"compression": "blosc", "blosc_cname": "zstd"})
            comp = {"id": "blosc", "cname": "zstd"}
        want_files, chunks = expected_files(want, CHUNK, empty or "omit")
        n_empty = sum(chunks.values())
        oz.check(n_empty > 0, "fixture has no empty chunks")
        with oz.Mount(d, opts) as m:
            ck = oz.Checks()
            files = ck.run("readdir/stat/read agreement", _agree, m.path, ck) or []
            ck.extend("listing", _listing_problems(files, want_files))
            # absent chunks: stat and open give ENOENT (omit); present and all-zero (keep)
            wrong = []
            for rel, is_empty in sorted(chunks.items()):
                if not is_empty:
                    continue
                p = os.path.join(m.path, rel)
                if (empty or "omit") == "omit":
                    for what, fn in (("stat", os.stat), ("open", lambda q: open(q, "rb"))):
                        try:
                            r = fn(p)
                            if hasattr(r, "close"):
                                r.close()
                            wrong.append("%s %s succeeded" % (what, rel))
                        except OSError as e:
                            if e.errno != errno.ENOENT:
                                wrong.append("%s %s: errno %s" % (what, rel, e.errno))
                else:
                    try:
                        with open(p, "rb") as f:
                            raw = f.read()
                        meta = oz.read_json(os.path.join(m.path, rel.split("/")[0],
                                                         ".zarray"))
                        if oz.decode_chunk(raw, meta).any():
                            wrong.append("%s: kept empty chunk is not all zero" % rel)
                    except OSError as e:
                        wrong.append("%s: %s" % (rel, e))
            if wrong:
                ck.expect(False, "%d of %d empty chunks wrong, e.g. %s" % (
                    len(wrong), n_empty, "; ".join(wrong[:4])))
            for lvl in range(LEVELS):
                ck.run("level %d zarr" % lvl, lambda lvl=lvl: oz.assert_array_equal(
                    oz.read_level(m.path, lvl, LEVELS), want[lvl], "data"))
            for lvl in range(LEVELS):
                meta = oz.read_json(os.path.join(m.path, str(lvl), ".zarray"))
                ck.extend("level %d .zarray" % lvl, oz.zarray_problems(
                    meta, want[lvl].shape, CHUNK, want[lvl].dtype, comp))
            # the reads above must not have changed the listing
            ck.extend("listing after reads", _listing_problems(oz.walk_files(m.path)[0],
                                                               want_files))
            ck.done()
    return run


S.add("omit_default", _empty_case(None))
S.add("omit_explicit_max", _empty_case("omit", algo="max"))
S.add("omit_blosc", _empty_case(None, compression="blosc"))
S.add("keep", _empty_case("keep"))
S.add("keep_blosc_nearest", _empty_case("keep", compression="blosc", algo="nearest"))


@S.case
def stat_empty_chunk_first_on_fresh_mount():
    """The very first operation on a fresh mount is a stat of an empty chunk deep in the tree
    (no readdir before): ENOENT; and of a non-empty one: its size."""
    d, vol = stack()
    want = oz.reference_pyramid(vol, LEVELS, "mean")
    _, chunks = expected_files(want, CHUNK, "omit")
    empty = sorted(k for k, v in chunks.items() if v and k.startswith("1/"))[0]
    full = sorted(k for k, v in chunks.items() if not v and k.startswith("2/"))[0]
    with oz.Mount(d, {"chunk": CHUNK, "levels": LEVELS}) as m:
        try:
            os.stat(os.path.join(m.path, empty))
            raise oz.CheckFailed("stat %s succeeded, expected ENOENT" % empty)
        except FileNotFoundError:
            pass
        st = os.stat(os.path.join(m.path, full))
        oz.check(st.st_size == CHUNK ** 3 * 2, "%s size %d" % (full, st.st_size))


@S.case
def mmap_and_statvfs():
    """Beyond the contract's list but what real clients do: mmap a chunk file, statvfs."""
    import mmap
    d, vol = stack()
    with oz.Mount(d, {"chunk": CHUNK, "levels": LEVELS}) as m:
        os.statvfs(m.path)
        files, _ = oz.walk_files(m.path)
        chunk = next(f for f in files if f.startswith("0/") and not f.endswith(".zarray"))
        p = os.path.join(m.path, chunk)
        with open(p, "rb") as f:
            data = f.read()
        with open(p, "rb") as f:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                oz.check(mm[:] == data, "mmap content differs from read()")


@S.case
def all_zero_volume():
    d = oz.tmpdir("zero")
    vol = oz.make_stack(d, (5, 30, 40), np.uint16, volume=np.zeros((5, 30, 40), np.uint16))
    with oz.Mount(d, {"chunk": CHUNK, "levels": 2}) as m:
        files, _ = oz.walk_files(m.path)
        oz.check(set(files) - ALLOWED_EXTRA == {".zgroup", ".zattrs", "0/.zarray", "1/.zarray"},
                 "listing %s" % files)
        oz.assert_array_equal(oz.read_level(m.path, 0, 2), vol, "level 0")


if __name__ == "__main__":
    S.main()
