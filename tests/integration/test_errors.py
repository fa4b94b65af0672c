#!/usr/bin/python3
"""Mount-time errors (non-zero exit, message on stderr naming the culprit, nothing mounted) and,
on a good mount, EROFS for every mutation and ENOENT for names outside the tree; the daemon
exits on unmount; -f stays in the foreground."""

import errno
import functools
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oztest as oz  # noqa: E402
import numpy as np  # noqa: E402
import tifffile  # noqa: E402

S = oz.Suite(__file__)
SHAPE = (6, 40, 50)


@functools.lru_cache(None)
def good_stack():
    d = oz.tmpdir("good")
    return d, oz.make_stack(d, SHAPE, np.uint16, seed=51)


def expect_mount_error(source, options=None, mention=(), mention_any=()):
    rc, err, mounted = oz.try_mount(source, options)
    problems = []
    if rc == 0 or not isinstance(rc, int):
        problems.append("exit status %r (expected non-zero)" % (rc,))
    if mounted:
        problems.append("mountpoint was mounted")
    if not err.strip():
        problems.append("nothing on stderr")
    low = err.lower()
    for s in mention:
        if s.lower() not in low:
            problems.append("stderr does not mention %r" % s)
    if mention_any and not any(s.lower() in low for s in mention_any):
        problems.append("stderr mentions none of %r" % (list(mention_any),))
    if problems:
        raise oz.CheckFailed("%s; stderr: %r" % ("; ".join(problems), err.strip()[:400]))


@S.case
def source_missing():
    p = os.path.join(oz.tmpdir("x"), "no-such-stack")
    expect_mount_error(p, {"chunk": 16}, mention=["no-such-stack"])


@S.case
def multipage_slice_file_among_slices_refused():
    # tifffile writes a 3-D array as one page per z. Among other slice files (or with page=) it is
    # a slice file with several pages: served as its first page this would drop the rest. Alone
    # in its directory, or as SOURCE, it is a multi-page stack (test_multipage.py).
    d = oz.tmpdir("mp")
    vol = oz.make_volume((5, 20, 30), np.uint16, seed=3)
    tifffile.imwrite(os.path.join(d, "0000.tif"), vol)
    tifffile.imwrite(os.path.join(d, "0001.tif"), vol[0])
    expect_mount_error(d, {"chunk": 16}, mention=["0000.tif", "multi-page", "5 full-resolution pages", "page=N",
                                                  "tiffsplit"])
    # page= picks a page of every slice file; 0001.tif has only one.
    expect_mount_error(d, {"chunk": 16, "page": 3}, mention=["0001.tif", "1 full-resolution page", "no page 3"])
    # The file itself as SOURCE: page= does not apply.
    expect_mount_error(os.path.join(d, "0000.tif"), {"chunk": 16, "page": 1}, mention=["0000.tif", "page=1"])


@S.case
def slice_with_second_channel_page_refused():
    d = oz.tmpdir("mp2")
    vol = oz.make_stack(d, (4, 20, 30), np.uint16, seed=4)
    with tifffile.TiffWriter(os.path.join(d, "2.tif")) as w:  # slice 2: two full-size pages
        w.write(vol[2], photometric="minisblack")
        w.write(vol[2] // 2, photometric="minisblack")
    expect_mount_error(d, {"chunk": 16}, mention=["2.tif", "2 full-resolution pages"])


@S.case
def reduced_resolution_pages_are_not_pages():
    # A page marked NewSubfileType=1 (a thumbnail or overview) is not data: the slice mounts and
    # serves its full-resolution page.
    d = oz.tmpdir("mp3")
    vol = oz.make_stack(d, (3, 20, 30), np.uint16, seed=6)
    with tifffile.TiffWriter(os.path.join(d, "1.tif")) as w:
        w.write(vol[1], photometric="minisblack")
        w.write(vol[1][::2, ::2].copy(), photometric="minisblack", subfiletype=1)
    with oz.Mount(d, {"chunk": 16, "levels": 1}) as m:
        got = oz.read_level(m.path, 0, levels=1)
    oz.assert_array_equal(got, vol, "level 0 of a stack with a reduced-resolution page")


@S.case
def source_is_a_file():
    p = os.path.join(oz.tmpdir("x"), "plainfile")
    with open(p, "w") as f:
        f.write("x")
    expect_mount_error(p, {"chunk": 16}, mention=["plainfile"])


@S.case
def no_slice_files_empty_dir():
    expect_mount_error(oz.tmpdir("empty"), {"chunk": 16})


@S.case
def no_slice_files_only_strays():
    d = oz.tmpdir("strays")
    for n in ("notes.txt", "image.png", "scan.tif.bak"):
        with open(os.path.join(d, n), "w") as f:
            f.write("x")
    expect_mount_error(d, {"chunk": 16})


@S.case
def two_names_for_one_z():
    d = oz.tmpdir("dup")
    vol = oz.make_volume(SHAPE, np.uint16, seed=52)
    for z in range(SHAPE[0]):
        oz.write_slice(os.path.join(d, "%d.tif" % z), vol[z])
    oz.write_slice(os.path.join(d, "01.tif"), vol[1])
    expect_mount_error(d, {"chunk": 16}, mention=["01.tif", "1.tif"])


@S.case
def two_names_for_one_z_extension_case():
    d = oz.tmpdir("dup2")
    vol = oz.make_volume(SHAPE, np.uint16, seed=53)
    for z in range(SHAPE[0]):
        oz.write_slice(os.path.join(d, "%d.tif" % z), vol[z])
    oz.write_slice(os.path.join(d, "2.TIFF"), vol[2])
    expect_mount_error(d, {"chunk": 16}, mention=["2.TIFF", "2.tif"])


def _mismatch_stack(odd_shape):
    d = oz.tmpdir("mismatch")
    vol = oz.make_stack(d, SHAPE, np.uint16, seed=54)
    odd = oz.make_volume((1,) + odd_shape, np.uint16, seed=55)[0]
    oz.write_slice(os.path.join(d, "3.tif"), odd)
    return d, vol


@S.case
def slice_of_different_width():
    d, _ = _mismatch_stack((40, 51))
    expect_mount_error(d, {"chunk": 16}, mention=["3.tif", "51", "50", "40"])


@S.case
def slice_of_different_height():
    d, _ = _mismatch_stack((39, 50))
    expect_mount_error(d, {"chunk": 16}, mention=["3.tif", "39", "40", "50"])


@S.case
def bad_slices_zero_reads_zeros():
    d, vol = _mismatch_stack((40, 51))
    vol = vol.copy()
    vol[3] = 0
    want = oz.reference_pyramid(vol, 2, "mean")
    with oz.Mount(d, {"chunk": 16, "levels": 2, "bad_slices": "zero"}) as m:
        for lvl in range(2):
            oz.assert_array_equal(oz.read_level(m.path, lvl, 2), want[lvl], "level %d" % lvl)


def _write_all(d, planes):
    for z, p in enumerate(planes):
        tifffile.imwrite(os.path.join(d, "%d.tif" % z), p, photometric=(
            "rgb" if p.ndim == 3 else "minisblack"), metadata=None)


@S.case
def float64_slices():
    d = oz.tmpdir("f64")
    _write_all(d, [np.random.default_rng(z).random((40, 50), np.float64) for z in range(4)])
    expect_mount_error(d, {"chunk": 16},
                       mention_any=[".tif", "float", "sample", "type", "bits"])


@S.case
def rgb_slices():
    d = oz.tmpdir("rgb")
    _write_all(d, [np.full((40, 50, 3), z, np.uint8) for z in range(4)])
    expect_mount_error(d, {"chunk": 16},
                       mention_any=[".tif", "rgb", "sample", "channel", "type"])


@S.case
def one_float32_slice_among_uint16():
    d = oz.tmpdir("f32one")
    vol = oz.make_volume(SHAPE, np.uint16, seed=56)
    for z in range(SHAPE[0]):
        oz.write_slice(os.path.join(d, "%d.tif" % z), vol[z])
    tifffile.imwrite(os.path.join(d, "4.tif"), vol[4].astype(np.float32), metadata=None)
    expect_mount_error(d, {"chunk": 16}, mention=["4.tif"])


@S.case
def unknown_option():
    d, _ = good_stack()
    expect_mount_error(d, {"chunk": 16, "frobnicate": 1}, mention=["frobnicate"])


MALFORMED = [
    ("chunk_zero", "chunk", "0"),
    ("chunk_negative", "chunk", "-16"),
    ("chunk_text", "chunk", "big"),
    ("window_three_colons", "window", "1:2:3"),
    ("window_four_axes", "window", "1:2/3:4/5:6/7:8"),
    ("window_text", "window", "a:b/:/:"),
    ("levels_text", "levels", "abc"),
    ("levels_zero", "levels", "0"),
    ("algorithm_unknown", "algorithm", "median"),
    ("shift_two_values", "shift", "1/2"),
    ("compression_unknown", "compression", "lzma"),
    ("empty_unknown", "empty", "sometimes"),
    ("bad_slices_unknown", "bad_slices", "skip"),
    ("blosc_shuffle_out_of_range", "blosc_shuffle", "7"),
]


def _malformed(key, value):
    def run():
        d, _ = good_stack()
        opts = {"chunk": 16, "levels": 2}
        opts[key] = value
        expect_mount_error(d, opts, mention=[key])
    return run


for _n, _k, _v in MALFORMED:
    S.add("malformed_" + _n, _malformed(_k, _v))


# ---------------------------------------------------------------------------------- good mount

def _expect_errno(label, fn, codes, bad):
    try:
        fn()
    except OSError as e:
        if e.errno not in codes:
            bad.append("%s: errno %s (%s), expected %s" % (
                label, e.errno, errno.errorcode.get(e.errno), "/".join(
                    errno.errorcode[c] for c in codes)))
        return
    bad.append("%s: succeeded" % label)


@S.case
def erofs_for_every_mutation():
    d, _ = good_stack()
    with oz.Mount(d, {"chunk": 16, "levels": 2}) as m:
        p = m.path
        files, _ = oz.walk_files(p)
        chunk = next(f for f in files if f.startswith("0/") and not f.endswith(".zarray"))
        before = {f: open(os.path.join(p, f), "rb").read() for f in (".zgroup", chunk)}
        j = functools.partial(os.path.join, p)
        E = (errno.EROFS,)
        bad = []
        ops = [
            ("create new file", lambda: os.close(os.open(j("new.txt"),
                                                         os.O_CREAT | os.O_WRONLY, 0o644))),
            ("create in level dir", lambda: os.close(os.open(j("0", "9999"),
                                                             os.O_CREAT | os.O_WRONLY, 0o644))),
            ("mkdir", lambda: os.mkdir(j("newdir"))),
            ("mkdir in level", lambda: os.mkdir(j("0", "777"))),
            ("unlink .zgroup", lambda: os.unlink(j(".zgroup"))),
            ("unlink chunk", lambda: os.unlink(j(chunk))),
            ("rmdir level", lambda: os.rmdir(j("1"))),
            ("rename file", lambda: os.rename(j(".zattrs"), j("attrs.bak"))),
            ("rename level", lambda: os.rename(j("0"), j("zero"))),
            ("open O_WRONLY", lambda: os.close(os.open(j(".zgroup"), os.O_WRONLY))),
            ("open O_RDWR", lambda: os.close(os.open(j(chunk), os.O_RDWR))),
            ("open O_TRUNC", lambda: os.close(os.open(j(".zattrs"),
                                                      os.O_WRONLY | os.O_TRUNC))),
            ("open append", lambda: open(j(chunk), "ab").close()),
            ("chmod file", lambda: os.chmod(j(".zgroup"), 0o777)),
            ("chmod dir", lambda: os.chmod(j("0"), 0o700)),
            ("chown", lambda: os.chown(j(".zgroup"), 1, 1)),
            ("truncate", lambda: os.truncate(j(chunk), 0)),
            ("utime", lambda: os.utime(j(".zgroup"), (1, 1))),
            ("setxattr root", lambda: os.setxattr(p, "user.test", b"1")),
            ("setxattr file", lambda: os.setxattr(j(".zgroup"), "user.test", b"1")),
            ("removexattr stats", lambda: os.removexattr(p, "user.omezarrfs.stats")),
            ("symlink", lambda: os.symlink(".zgroup", j("link"))),
            ("hard link", lambda: os.link(j(".zgroup"), j("hard"))),
        ]
        for label, fn in ops:
            _expect_errno(label, fn, E, bad)
        after_files, _ = oz.walk_files(p)
        if after_files != files:
            bad.append("listing changed: +%s -%s" % (sorted(set(after_files) - set(files))[:3],
                                                      sorted(set(files) - set(after_files))[:3]))
        for f, content in before.items():
            if open(os.path.join(p, f), "rb").read() != content:
                bad.append("%s content changed" % f)
        oz.check(not bad, "; ".join(bad))


@S.case
def enoent_outside_tree():
    d, _ = good_stack()
    with oz.Mount(d, {"chunk": 16, "levels": 2}) as m:
        # grid: level 0 = 6x40x50 -> 1x3x4 chunks; level 1 = 3x20x25 -> 1x2x2
        names = ["nope", ".zarray", "0/.zgroup", "0/.zattrs", "2", "9", "0/1", "0/0/3",
                 "0/0/0/4", "1/0/2", "1/0/0/2", "00", "0/00", "0/0/00/0", "0/0/0/00", "+0",
                 "-1", "0/-0", "0/0/0/+1", "0x0", "1.0", "0/0/0/1.0", "0/0/0/1 ", " 0",
                 ".zgroup/x", "0/.zarray/x", "zarr.json", ".zmetadata_"]
        bad = []
        for n in names:
            codes = (errno.ENOENT, errno.ENOTDIR) if n.endswith("/x") else (errno.ENOENT,)
            _expect_errno("stat " + n, lambda n=n: os.stat(os.path.join(m.path, n)), codes, bad)
            _expect_errno("open " + n, lambda n=n: open(os.path.join(m.path, n), "rb").close(),
                          codes, bad)
        listing = sorted(os.listdir(m.path))
        if set(listing) - {".zmetadata"} != {".zgroup", ".zattrs", "0", "1"}:
            bad.append("root listing %s" % listing)
        oz.check(not bad, "; ".join(bad))


@S.case
def corrupt_slice_data_gives_eio_not_zeros():
    """Beyond the contract's list: a slice whose header is fine but whose strip data cannot be
    decoded.  Chunks that need it must fail with EIO (never ENOENT, which zarr reads as zeros,
    never made-up data); chunks that do not need it read correctly."""
    d = oz.tmpdir("corrupt")
    vol = oz.make_stack(d, (20, 40, 50), np.uint16, seed=57, compression="zlib")
    p = os.path.join(d, "2.tif")
    with tifffile.TiffFile(p) as t:
        off, n = t.pages[0].dataoffsets[0], t.pages[0].databytecounts[0]
    with open(p, "r+b") as f:
        f.seek(off)
        f.write(bytes(n))  # zlib stream of zeros: undecodable
    want = oz.reference_pyramid(vol, 2, "mean")
    bad = []
    with oz.Mount(d, {"chunk": 8, "levels": 2}) as m:
        for rel, needs in (("0/0/1/1", True), ("0/0/4/6", True), ("1/0/0/0", True),
                           ("0/1/4/5", False), ("0/2/4/6", False), ("0/1/1/1", False)):
            block = None
            if not needs:
                lvl, ci = int(rel[0]), [int(x) for x in rel.split("/")[1:]]
                src = want[lvl][tuple(slice(i * 8, (i + 1) * 8) for i in ci)]
                block = np.zeros((8, 8, 8), np.uint16)
                block[tuple(slice(0, s) for s in src.shape)] = src
            q = os.path.join(m.path, rel)
            try:
                with open(q, "rb") as f:
                    data = f.read()
            except OSError as e:
                absent_ok = block is not None and not block.any() and e.errno == errno.ENOENT
                if not absent_ok and (not needs or e.errno != errno.EIO):
                    bad.append("%s: %s" % (rel, errno.errorcode.get(e.errno, e.errno)))
                continue
            if needs:
                bad.append("%s: read %d bytes although slice 2 is undecodable" % (rel, len(data)))
            elif data != block.tobytes():
                bad.append("%s: wrong data" % rel)
        try:
            oz.read_level(m.path, 0, 2)
            bad.append("whole level 0 read without error")
        except OSError as e:
            if e.errno != errno.EIO:
                bad.append("level 0 read: %s" % e)
    oz.check(not bad, "; ".join(bad))


@S.case
def daemon_exits_on_unmount():
    d, _ = good_stack()
    m = oz.Mount(d, {"chunk": 16, "levels": 2})
    with m:
        pids = list(m.pids)
        oz.read_json(os.path.join(m.path, ".zgroup"))
    oz.check(not oz.is_mounted(m.path), "still mounted after fusermount3 -u")
    if not pids:
        raise oz.Skip("daemon process not identifiable (no process with the binary's exe "
                      "and the mountpoint in argv)")
    oz.check(not m.daemon_lingered, "daemon %s still running 15 s after fusermount3 -u "
             "(had to be killed)" % pids)


@S.case
def foreground_mode():
    d, vol = good_stack()
    mnt = oz.tmpdir("fgmnt")
    cache = oz.tmpdir("cache")
    log = os.path.join(oz.tmpdir("fglog"), "stderr")
    with open(log, "wb") as fe:
        p = subprocess.Popen([oz.binary(), d, mnt, "-f", "-o", "cache=%s,chunk=16,levels=2"
                              % cache], stdin=subprocess.DEVNULL, stdout=fe, stderr=fe)
    try:
        deadline = time.monotonic() + 60
        while not oz.is_mounted(mnt):
            oz.check(p.poll() is None, "-f process exited with %s before mounting: %s" % (
                p.returncode, open(log, errors="replace").read()[-300:]))
            oz.check(time.monotonic() < deadline, "-f: not mounted after 60 s")
            time.sleep(0.05)
        oz.assert_array_equal(oz.read_level(mnt, 0, 2), vol, "level 0 in -f mode")
        r = subprocess.run(["fusermount3", "-u", mnt], capture_output=True, text=True)
        oz.check(r.returncode == 0, "fusermount3 -u: %s" % r.stderr)
        try:
            rc = p.wait(20)
        except subprocess.TimeoutExpired:
            raise oz.CheckFailed("-f process still running 20 s after unmount")
        oz.check(rc == 0, "-f process exit status %s after unmount" % rc)
    finally:
        if oz.is_mounted(mnt):
            subprocess.run(["fusermount3", "-u", "-z", mnt], capture_output=True)
        if p.poll() is None:
            p.kill()
            p.wait()


if __name__ == "__main__":
    S.main()
