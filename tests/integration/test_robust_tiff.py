#!/usr/bin/python3
"""Robustness, TIFF sources (docs/ROBUSTNESS.md, item 1; item 8 for hostile input).

Every case ends the same way: no crash, nothing blocked, one clear log line naming the slice, no
cache entry for a failed chunk, and the mount (or the next mount) still usable.
  - malformed headers (bad magic, IFD loops, offsets past the end, zero or huge sizes, unknown
    codecs, ...) at z=2 of a good stack: the mount is refused naming 2.tif; with
    bad_slices=zero it mounts, z=2 reads as zeros and one warning names it;
  - a deflate bomb (a small file whose one strip inflates to hundreds of MiB): refused beyond the
    strip budget, and within it peak RSS stays under -o memory= plus a fixed overhead;
  - chmod 000 of a slice with the daemon running as `nobody`;
  - a FIFO or a symlink to /dev/zero named like a slice;
  - a slice rewritten in place, replaced, deleted or added while mounted: EIO (never a chunk
    mixing old and new data), the old cache never served after a remount.
"""

import errno
import os
import threading
import time
import zlib

import numpy as np

import oztest as oz
import robust_util as ru

S = oz.Suite("robust_tiff")
SHAPE = (8, 40, 48)
OPTS = {"chunk": 16, "levels": 2}


def good_stack(seed=61):
    d = oz.tmpdir("src")
    return d, oz.make_stack(d, SHAPE, np.uint16, seed=seed)


def expect_refused(source, options, mention):
    rc, err, mounted = oz.try_mount(source, options)
    oz.check(rc != 0 and not mounted, "mount was not refused (exit %r, mounted %s)" % (rc, mounted))
    for m in mention:
        oz.check(m.lower() in err.lower(), "stderr does not mention %r: %r" % (m, err.strip()[-400:]))


def level0_equals(mnt, want):
    oz.assert_array_equal(oz.read_level(mnt, 0, OPTS["levels"]), want, "level 0")


# ---------------------------------------------------------------------------------- malformed

W, H = SHAPE[2], SHAPE[1]
PIX = bytes(W * H * 2)
BIG = 2 ** 32 - 1

MALFORMED = [
    ("empty_file", b""),
    ("header_only", b"II*\x00\x08\x00\x00\x00"),
    ("bad_magic", ru.tiff(W, H, magic=b"IX*\x00")),
    ("bigtiff_magic_in_classic_header", ru.tiff(W, H, magic=b"II+\x00")),
    ("motorola_magic_little_endian_body", ru.tiff(W, H, magic=b"MM\x00*")),
    ("ifd_offset_past_end", ru.tiff(W, H, ifd_offset=10 ** 8)),
    ("ifd_offset_odd_into_pixels", ru.tiff(W, H, ifd_offset=9)),
    ("ifd_count_past_end", ru.tiff(W, H, ntags_override=65535)),
    ("ifd_count_zero", ru.tiff(W, H, ntags_override=0)),
    ("strip_offset_past_end", ru.tiff(W, H, strip_offsets=[10 ** 9])),
    ("strip_offset_huge", ru.tiff(W, H, strip_offsets=[BIG])),
    ("strip_tags_missing", ru.tiff(W, H, drop_tags=(273, 279))),
    ("width_zero", ru.tiff(0, H, pixels=PIX)),
    ("height_zero", ru.tiff(W, 0, pixels=PIX)),
    ("width_missing", ru.tiff(W, H, drop_tags=(256,))),
    ("width_huge", ru.tiff(BIG, H, pixels=PIX)),
    ("both_huge_compressed", ru.tiff(65535, 65535, compression=8, pixels=zlib.compress(b"\0" * 64))),
    ("bits_12", ru.tiff(W, H, bits=12, pixels=PIX)),
    ("bits_zero", ru.tiff(W, H, extra_tags=[(258, ru.SHORT, [0])])),
    ("two_samples", ru.tiff(W, H, extra_tags=[(277, ru.SHORT, [2])])),
    ("signed_samples", ru.tiff(W, H, extra_tags=[(339, ru.SHORT, [2])])),
    ("min_is_white", ru.tiff(W, H, extra_tags=[(262, ru.SHORT, [0])])),
    ("codec_jpeg2000", ru.tiff(W, H, compression=34712)),
    ("codec_unknown_65000", ru.tiff(W, H, compression=65000)),
    ("tiles_missing_offsets", ru.tiff(W, H, extra_tags=[(322, ru.LONG, [16]), (323, ru.LONG, [16])],
                                      drop_tags=(273, 279))),
    ("tile_size_zero", ru.tiff(W, H, extra_tags=[(322, ru.LONG, [0]), (323, ru.LONG, [0]),
                                                 (324, ru.LONG, [8]), (325, ru.LONG, [4])],
                               drop_tags=(273, 279))),
    ("random_bytes", bytes(np.random.default_rng(5).integers(0, 256, 4000, dtype=np.uint8))),
]


def _malformed_case(content, name):
    def run():
        d, vol = good_stack()
        bad = os.path.join(d, "2.tif")
        ru.write_bytes(bad, content)
        expect_refused(d, OPTS, ["2.tif"])
        want = vol.copy()
        want[2] = 0
        with ru.LoggedMount(d, dict(OPTS, bad_slices="zero")) as m:
            level0_equals(m.path, want)
            oz.assert_array_equal(oz.read_level(m.path, 1, 2), oz.reference_pyramid(want, 2)[1], "level 1")
            warn = m.log_lines("warning", "2.tif")
            oz.check(len(warn) == 1, "expected one warning naming 2.tif, got %d: %s" % (len(warn), warn))
            rss = m.status("VmHWM")
            oz.check(rss is not None and rss < (256 << 20), "peak RSS %s after a malformed slice" % rss)
    return run


for _name, _content in MALFORMED:
    S.add("malformed_" + _name, _malformed_case(_content, _name))

# Byte counts libtiff repairs for a single uncompressed strip (as every TIFF reader does: it
# estimates them from the image size when they are zero, too large or too small): the mount
# serves the pixels that are in the file.
REPAIRED = [("strip_count_zero", [0]), ("strip_count_huge", [BIG]), ("strip_count_short", [100])]


def _repaired_case(counts):
    def run():
        d, vol = good_stack()
        px = np.ascontiguousarray(vol[2]).astype("<u2").tobytes()
        ru.write_bytes(os.path.join(d, "2.tif"), ru.tiff(W, H, pixels=px, strip_counts=counts))
        with ru.LoggedMount(d, OPTS) as m:
            level0_equals(m.path, vol)
    return run


for _name, _counts in REPAIRED:
    S.add("repaired_" + _name, _repaired_case(_counts))


@S.case
def ifd_loop_second_page():
    """A next-IFD pointer back to the first IFD (a loop): the first page is read, the loop never
    followed."""
    d, vol = good_stack()
    px = np.ascontiguousarray(vol[2]).astype("<u2").tobytes()
    ru.write_bytes(os.path.join(d, "2.tif"), ru.tiff(W, H, pixels=px, ifd_next="self"))
    with ru.LoggedMount(d, OPTS) as m:
        level0_equals(m.path, vol)


@S.case
def wrong_size_first_slice_is_the_one_named():
    d, vol = good_stack()
    oz.write_slice(os.path.join(d, "0.tif"), oz.make_volume((1, H, W + 9), np.uint16, seed=3)[0])
    expect_refused(d, OPTS, ["0.tif", "%dx%d" % (W + 9, H)])
    want = vol.copy()
    want[0] = 0
    with ru.LoggedMount(d, dict(OPTS, bad_slices="zero")) as m:
        level0_equals(m.path, want)


@S.case
def wrong_dtype_slice_uint8_among_uint16():
    d, vol = good_stack()
    oz.write_slice(os.path.join(d, "5.tif"), (vol[5] // 256).astype(np.uint8))
    expect_refused(d, OPTS, ["5.tif", "uint8"])
    want = vol.copy()
    want[5] = 0
    with ru.LoggedMount(d, dict(OPTS, bad_slices="zero")) as m:
        level0_equals(m.path, want)


@S.case
def fifo_named_like_a_slice():
    d, vol = good_stack()
    os.unlink(os.path.join(d, "3.tif"))
    os.mkfifo(os.path.join(d, "3.tif"))
    t0 = time.monotonic()
    expect_refused(d, OPTS, ["3.tif", "FIFO"])
    oz.check(time.monotonic() - t0 < 30, "a FIFO slice delayed the refusal")
    want = vol.copy()
    want[3] = 0
    with ru.LoggedMount(d, dict(OPTS, bad_slices="zero")) as m:
        level0_equals(m.path, want)


@S.case
def symlink_to_dev_zero_named_like_a_slice():
    d, vol = good_stack()
    os.unlink(os.path.join(d, "4.tif"))
    os.symlink("/dev/zero", os.path.join(d, "4.tif"))
    expect_refused(d, OPTS, ["4.tif", "device"])
    want = vol.copy()
    want[4] = 0
    with ru.LoggedMount(d, dict(OPTS, bad_slices="zero")) as m:
        level0_equals(m.path, want)


# ------------------------------------------------------------------------------- deflate bombs


def _bomb(path, side):
    comp = zlib.compressobj(9)
    row = bytes(side * 2)
    data = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ru.write_bytes(path, ru.tiff(side, side, compression=8, pixels=data))
    return len(data)


@S.case
def deflate_bomb_refused_beyond_the_strip_budget():
    d = oz.tmpdir("bomb")
    for z in range(2):
        _bomb(os.path.join(d, "%d.tif" % z), 8192)  # 128 MiB per strip, a 130 KB file
    expect_refused(d, {"chunk": 64, "levels": 1, "memory": "64M"}, ["0.tif", "decodes to 128.0 MiB"])


@S.case
def deflate_bombs_within_budget_keep_rss_bounded():
    """Four 8192x8192 single-strip slices (128 MiB decoded each, 130 KB on disk) under
    memory=512M (192 MiB of strips): decodes wait for room instead of running side by side."""
    d = oz.tmpdir("bomb")
    for z in range(4):
        size = _bomb(os.path.join(d, "%d.tif" % z), 8192)
    memory = 512 << 20
    with ru.LoggedMount(d, {"chunk": 32, "levels": 1, "memory": "512M", "threads": 4}) as m:
        base = m.status("VmRSS")
        got = []

        def read(rel):
            try:
                got.append(len(ru.read_file(os.path.join(m.path, rel))))
            except OSError as e:
                got.append(e)
        ts = [threading.Thread(target=read, args=(r,)) for r in ("0/0/0", "0/100/100", "0/255/3")]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        peak = m.status("VmHWM")
    ru.figure("bomb_file_bytes", size)
    ru.figure("bomb_peak_rss_mib", peak >> 20)
    ru.figure("bomb_memory_option_mib", memory >> 20)
    oz.check(all(isinstance(g, OSError) and g.errno == errno.ENOENT for g in got),
             "all-zero chunks must be absent: %s" % got)
    oz.check(peak <= memory + (64 << 20), "peak RSS %d MiB > memory=512M + 64 MiB (base %d MiB)"
             % (peak >> 20, base >> 20))


# --------------------------------------------------------------------- chmod 000 as non-root


@S.case
def chmod_000_slice_nonroot_daemon():
    with ru.NonRootSetup() as env:
        src = env.dir("src")
        vol = oz.make_stack(src, SHAPE, np.uint16, seed=62)
        for n in os.listdir(src):
            os.chmod(os.path.join(src, n), 0o644)
        victim = os.path.join(src, "6.tif")
        opts = dict(OPTS, allow_other=None)

        def mount(extra=None, **kw):
            m = ru.NobodyMount(src, dict(opts, **(extra or {})), cache=env.dir("cache-%d" % len(os.listdir(env.root)),
                                                                           owner_nobody=True),
                            mountpoint=env.dir("mnt-%d" % len(os.listdir(env.root)), owner_nobody=True), **kw)
            os.chmod(os.path.dirname(m.log_path), 0o777)
            return m

        # At mount time: refused naming the slice and the cause; zeros with bad_slices=zero.
        os.chmod(victim, 0)
        m = mount()
        try:
            with m:
                raise oz.CheckFailed("mounted although 6.tif is unreadable")
        except oz.MountError as e:
            oz.check("6.tif" in str(e) and "ermission" in str(e), "refusal does not name 6.tif and the "
                     "cause: %s" % str(e)[-300:])
        want = vol.copy()
        want[6] = 0
        with mount({"bad_slices": "zero"}) as m:
            level0_equals(m.path, want)

        # While mounted: EIO for chunks that need the slice, one log line, nothing cached for
        # them, the rest served; after chmod back the same chunk reads right.
        os.chmod(victim, 0o644)
        with mount() as m:
            oz.check(os.stat(os.path.join(m.path, ".zgroup")).st_size > 0, "mount unusable")
            os.chmod(victim, 0)
            rel = "0/0/1/1"
            err = ru.expect_errno(lambda: ru.read_file(os.path.join(m.path, rel)), (errno.EIO,))
            oz.check(err is None, "read of %s with 6.tif unreadable: %s" % (rel, err))
            lines = m.log_lines("error", "6.tif")
            oz.check(len(lines) == 1 and "Permission denied" in lines[0],
                     "expected one error line naming 6.tif and the cause, got %s" % lines)
            time.sleep(0.3)  # the background cache writer, if it had anything
            keys = [ru.read_cache_entry(p)[1] for p in ru.cache_files(m.cache)[0]]
            oz.check(not any(k and k.endswith("|0/0/1/1") for k in keys), "a failed chunk was cached")
            os.chmod(victim, 0o644)
            levels = oz.reference_pyramid(vol, 2)
            got = ru.read_file(os.path.join(m.path, rel))
            oz.check(got == ru.padded_chunk(levels, 0, (0, 1, 1), 16), "chunk wrong after chmod back")
            oz.assert_array_equal(oz.read_level(m.path, 1, 2), levels[1], "level 1")


# ------------------------------------------------------------------ source changes while mounted


def _new_data(vol, z, seed):
    new = vol.copy()
    new[z] = oz.make_volume((1,) + vol.shape[1:], vol.dtype, seed=seed, mask=False)[0]
    return new


def _rewrite_in_place(path, plane):
    """Same size, same inode: overwrite the pixel bytes where the strips are."""
    import tifffile
    with tifffile.TiffFile(path) as t:
        page = t.pages[0]
        offs, counts = list(page.dataoffsets), list(page.databytecounts)
    raw = np.ascontiguousarray(plane).astype("<u2").tobytes()
    with open(path, "r+b") as f:
        pos = 0
        for o, c in zip(offs, counts):
            f.seek(o)
            f.write(raw[pos:pos + c])
            pos += c


def _change_case(change, label):
    """Mount, read chunk 1/0/0/0 (computes and caches it), change slice 5, then: chunks computed
    before the change are what the mount already served; a chunk computed after it fails with EIO
    naming the slice (or, for an added slice, the mount does not see it); a remount on the same
    cache serves the new source, never the old cache."""
    def run():
        # 8-row deflate strips: reading 1/0/0/0 caches the strips of rows 0-31 only, so 0/0/2/2
        # (rows 32-39) must go to the file after the change.
        d = oz.tmpdir("src")
        vol = oz.make_stack(d, SHAPE, np.uint16, seed=63, compression="zlib", rowsperstrip=8)
        cache = oz.tmpdir("cache")
        old = oz.reference_pyramid(vol, 2)
        with ru.LoggedMount(d, OPTS, cache=cache) as m:
            served = ru.read_file(os.path.join(m.path, "1/0/0/0"))  # computes 0/0/{0,1}/{0,1}
            oz.check(served == ru.padded_chunk(old, 1, (0, 0, 0), 16), "1/0/0/0 before the change")
            new_vol, expect_eio = change(d, vol)
            rel = "0/0/2/2"  # not below 1/0/0/0: computed only now, after the change
            if expect_eio:
                err = ru.expect_errno(lambda: ru.read_file(os.path.join(m.path, rel)), (errno.EIO,))
                oz.check(err is None, "%s: read after the change: %s" % (label, err))
                lines = m.log_lines("error", "5.tif")
                oz.check(len(lines) == 1, "%s: expected one error line naming 5.tif, got %s" % (label, lines))
                time.sleep(0.2)  # let the background cache writer finish anything it had
                oz.check(rel not in ru.cached_chunks(cache), "%s: the failed chunk was cached" % label)
            else:
                got = ru.read_file(os.path.join(m.path, rel))
                oz.check(got == ru.padded_chunk(old, 0, (0, 2, 2), 16), "%s: served data differs" % label)
            # Served before the change: the same bytes again (immutable for the mount's life).
            oz.check(ru.read_file(os.path.join(m.path, "1/0/0/0")) == served, "%s: 1/0/0/0 changed" % label)
            oz.check(os.stat(os.path.join(m.path, ".zattrs")).st_size > 0, "mount unusable")
        remount_opts = OPTS
        if new_vol is None:  # the slice is no TIFF any more: refused, or zeros
            expect_refused(d, OPTS, ["5.tif"])
            new_vol = vol.copy()
            new_vol[5] = 0
            remount_opts = dict(OPTS, bad_slices="zero")
        new = oz.reference_pyramid(new_vol, 2)
        with ru.LoggedMount(d, remount_opts, cache=cache) as m:
            for lvl in range(2):
                oz.assert_array_equal(oz.read_level(m.path, lvl, 2), new[lvl],
                                      "%s: level %d after remount" % (label, lvl))
    return run


def _in_place(d, vol):
    """Same inode, new content (what cp or an editor saving in place does)."""
    new = _new_data(vol, 5, 99)
    tmp = os.path.join(oz.tmpdir("tmp"), "5.tif")
    oz.write_slice(tmp, new[5], compression="zlib", rowsperstrip=8)
    with open(os.path.join(d, "5.tif"), "r+b") as f:
        f.write(ru.read_file(tmp))
        f.truncate()
    return new, True


def _replaced(d, vol):
    new = _new_data(vol, 5, 98)
    tmp = os.path.join(d, "new.tmp")
    oz.write_slice(tmp, new[5])
    os.rename(tmp, os.path.join(d, "5.tif"))
    return new, True


def _deleted(d, vol):
    os.unlink(os.path.join(d, "5.tif"))
    new = vol.copy()
    new[5] = 0  # a gap after the remount
    return new, True


def _added(d, vol):
    extra = oz.make_volume((1,) + vol.shape[1:], vol.dtype, seed=97)[0]
    oz.write_slice(os.path.join(d, "%d.tif" % vol.shape[0]), extra)
    return np.concatenate([vol, extra[None]]), False


def _fifo(d, vol):
    os.unlink(os.path.join(d, "5.tif"))
    os.mkfifo(os.path.join(d, "5.tif"))
    return None, True


def _dev_zero(d, vol):
    os.unlink(os.path.join(d, "5.tif"))
    os.symlink("/dev/zero", os.path.join(d, "5.tif"))
    return None, True


S.add("slice_replaced_by_fifo_while_mounted", _change_case(_fifo, "replaced by a FIFO"))
S.add("slice_replaced_by_dev_zero_link_while_mounted", _change_case(_dev_zero, "replaced by a link to /dev/zero"))
S.add("slice_rewritten_in_place_while_mounted", _change_case(_in_place, "rewritten in place"))
S.add("slice_replaced_while_mounted", _change_case(_replaced, "replaced (rename over)"))
S.add("slice_deleted_while_mounted", _change_case(_deleted, "deleted"))
S.add("slice_added_while_mounted", _change_case(_added, "added"))


@S.case
def rewrite_during_a_read_never_mixes():
    """OMEZARRFS_FAULT=source.read:delay holds every strip read for 300 ms after the slice was
    opened and checked; slice 0 is rewritten in place during that window. The chunk must fail
    (EIO) or be entirely old data; never a mix (slice 0 new, the rest old)."""
    results = []
    for attempt in range(3):
        d, vol = good_stack(64 + attempt)
        old = oz.reference_pyramid(vol, 2)
        new_vol = _new_data(vol, 0, 96 + attempt)
        with ru.LoggedMount(d, dict(OPTS, threads=2), env={"OMEZARRFS_FAULT": "source.read:delay=300"}) as m:
            out = {}

            def reader():
                try:
                    out["data"] = ru.read_file(os.path.join(m.path, "0/0/0/2"))
                except OSError as e:
                    out["err"] = e.errno
            t = threading.Thread(target=reader)
            t.start()
            time.sleep(0.1 + 0.1 * attempt)
            _rewrite_in_place(os.path.join(d, "0.tif"), new_vol[0])
            t.join(60)
            oz.check(not t.is_alive(), "read blocked past 60 s")
            if "data" in out:
                oz.check(out["data"] == ru.padded_chunk(old, 0, (0, 0, 2), 16),
                         "attempt %d: served a chunk that is not the old data (mixed?)" % attempt)
                results.append("old")
            else:
                oz.check(out["err"] == errno.EIO, "attempt %d: errno %s" % (attempt, out["err"]))
                results.append("EIO")
                oz.check(m.log_lines("error", "0.tif"), "no log line naming 0.tif")
    ru.figure("rewrite_during_read_outcomes", "/".join(results))


if __name__ == "__main__":
    S.main()
