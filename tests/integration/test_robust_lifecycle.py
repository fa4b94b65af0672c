#!/usr/bin/python3
"""Robustness, lifecycle and errno semantics (docs/ROBUSTNESS.md, item 4).

Reads are held in flight with OMEZARRFS_FAULT=source.read:delay (every strip read of the source
sleeps), so a coarse chunk takes tens of seconds to compute:
  - SIGTERM with reads in flight: the computations are cancelled at their next unit, the daemon
    unmounts and exits within a bound far below the computation's length; the readers get an
    error (ECONNABORTED), never wrong bytes; the cache stays valid and a remount serves;
  - fusermount3 -u with reads in flight: refused (EBUSY, files are open), the mount and the
    reads carry on; fusermount3 -u -z: detached at once, the reads in flight complete with the
    right bytes, then the daemon exits;
  - a reader killed (SIGKILL) while blocked: it is reaped when the computation it waits for ends
    (the kernel waits for a request already sent to the daemon); the daemon finishes the
    computation, the mount stays usable, the next reader gets the chunk without a second one;
  - back-to-back remounts on one cache: fusermount3 -u then an immediate mount waits for the old
    daemon to exit (it is shutting down: its mount is gone) instead of failing on the cache lock;
    a mount on a cache that a live mount serves is refused at once, naming the holder;
  - an errno matrix in the style of pjdfstest: EROFS for every mutation, ENOENT, ENOTDIR,
    ENAMETOOLONG, EISDIR, EACCES, each exactly.
"""

import errno
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np

import oztest as oz
import robust_util as ru

S = oz.Suite("robust_lifecycle", case_timeout=600)
OPTS = {"chunk": 16, "levels": 4, "threads": 2}
SLOW = {"OMEZARRFS_FAULT": "source.read:delay=100"}
# Reading 3/0/0/0 from the source takes 96 slices x 8 strips x 100 ms / 2 threads = 38 s;
# a cancelled computation stops after its current level-0 unit (16 slices x 1 strip: < 1 s).
COARSE = "3/0/0/0"
BOUND = 10.0  # seconds: the documented bound (one unit) with a 10x margin

_STACK = {}


def stack():
    if "d" not in _STACK:
        d = oz.tmpdir("src")
        _STACK["d"] = d
        _STACK["vol"] = oz.make_stack(d, (96, 128, 128), np.uint16, seed=91, compression="zlib", rowsperstrip=16)
        _STACK["levels"] = oz.reference_pyramid(_STACK["vol"], 4)
    return _STACK["d"], _STACK["levels"]


def want(rel):
    lvl, *idx = (int(v) for v in rel.split("/"))
    return ru.padded_chunk(stack()[1], lvl, tuple(idx), 16)


def start_readers(m, rels):
    res = {}
    t0 = time.monotonic()

    def rd(rel):
        try:
            r = ru.read_file(os.path.join(m.path, rel))
        except OSError as e:
            r = e
        res[rel] = (r, time.monotonic() - t0)
    ts = [threading.Thread(target=rd, args=(r,)) for r in rels]
    for t in ts:
        t.start()
    return res, ts


def wait_exit(pid, limit):
    t0 = time.monotonic()
    while oz._alive(pid) and time.monotonic() - t0 < limit:
        time.sleep(0.02)
    return time.monotonic() - t0


@S.case
def sigterm_with_reads_in_flight():
    d, _ = stack()
    cache = oz.tmpdir("cache")
    rels = [COARSE, "2/0/1/1", "1/1/3/3", "0/5/7/7"]
    with ru.LoggedMount(d, OPTS, cache=cache, env=SLOW) as m:
        pid = m.pid()
        res, ts = start_readers(m, rels)
        time.sleep(1.5)
        os.kill(pid, signal.SIGTERM)
        took = wait_exit(pid, 120)
        for t in ts:
            t.join(60)
        oz.check(not oz._alive(pid), "daemon still running 120 s after SIGTERM")
        oz.check(not oz.is_mounted(m.path), "still mounted after SIGTERM")
    ru.figure("sigterm_exit_seconds_with_reads_in_flight", "%.2f" % took)
    bad = []
    for rel, (r, _) in res.items():
        if isinstance(r, bytes):
            if r != want(rel):
                bad.append("%s: wrong bytes" % rel)
        elif r.errno not in (errno.ECONNABORTED, errno.ENOTCONN):  # not EINTR: callers would retry
            bad.append("%s: %s" % (rel, r))
    oz.check(not bad, "; ".join(bad))
    oz.check(took < BOUND, "exit took %.1f s after SIGTERM (bound %.0f s; uncancelled ~38 s)" % (took, BOUND))
    _, temps, _ = ru.cache_files(cache)
    oz.check(not temps, "temp files left by a clean shutdown: %s" % temps[:3])
    for p in ru.cache_files(cache)[0]:
        why, key, _, data = ru.read_cache_entry(p)
        oz.check(why is None, "%s: %s" % (p, why))
        lvl, idx = ru.key_chunk(key)
        oz.check(data == ru.padded_chunk(stack()[1], lvl, idx, 16) or not data, "entry %s wrong" % key)
    with ru.LoggedMount(d, OPTS, cache=cache) as m:
        for rel in rels:
            oz.check(ru.read_file(os.path.join(m.path, rel)) == want(rel), "%s after remount" % rel)


@S.case
def fusermount_u_with_reads_in_flight_is_busy_then_lazy_detaches():
    d, _ = stack()
    rels = ["2/0/1/1", "1/1/3/3", "0/5/7/7"]
    with ru.LoggedMount(d, OPTS, env=SLOW) as m:
        pid = m.pid()
        res, ts = start_readers(m, rels)
        time.sleep(0.5)
        r = subprocess.run(["fusermount3", "-u", m.path], capture_output=True, text=True)
        busy = r.returncode != 0
        if busy:
            oz.check("busy" in r.stderr.lower(), "fusermount3 -u failed otherwise: %s" % r.stderr)
            oz.check(oz.is_mounted(m.path), "unmounted although fusermount3 -u failed")
            oz.check(os.stat(os.path.join(m.path, ".zattrs")).st_size > 0, "mount unusable after EBUSY")
        res2, ts2 = start_readers(m, [COARSE])
        time.sleep(0.5)
        r = subprocess.run(["fusermount3", "-u", "-z", m.path], capture_output=True, text=True)
        oz.check(r.returncode == 0, "fusermount3 -u -z: %s" % r.stderr)
        oz.check(not oz.is_mounted(m.path), "still in /proc/mounts after -z")
        for t in ts + ts2:
            t.join(120)
        took = wait_exit(pid, 60)
        oz.check(not oz._alive(pid), "daemon still running 60 s after the last reader of a lazy unmount")
    res.update(res2)
    bad = ["%s: %s" % (rel, r if isinstance(r, OSError) else "wrong bytes") for rel, (r, _) in res.items()
           if not isinstance(r, bytes) or r != want(rel)]
    oz.check(not bad, "reads in flight over a lazy unmount: %s" % bad)
    ru.figure("fusermount_u_with_open_files", "EBUSY" if busy else "unmounted")
    ru.figure("lazy_unmount_daemon_exit_after_last_read_seconds", "%.2f" % took)


@S.case
def reader_killed_while_blocked():
    d, _ = stack()
    rel = "2/1/0/1"
    with ru.LoggedMount(d, OPTS, env=SLOW) as m:
        code = "import sys; open(sys.argv[1], 'rb').read()"
        p = subprocess.Popen([sys.executable, "-c", code, os.path.join(m.path, rel)])
        time.sleep(1.0)
        oz.check(p.poll() is None, "the reader was not blocked (exit %s)" % p.returncode)
        p.kill()
        t0 = time.monotonic()
        p.wait(60)
        ru.figure("killed_reader_reaped_seconds", "%.2f" % (time.monotonic() - t0))
        oz.check(oz._alive(m.pid()), "daemon died with its reader")
        oz.check(os.stat(os.path.join(m.path, ".zgroup")).st_size > 0, "mount unusable")
        got = ru.read_file(os.path.join(m.path, rel))
        oz.check(got == want(rel), "%s wrong after its first reader was killed" % rel)
        computed = oz.stats(m.path)["chunks_computed"]
    with ru.LoggedMount(d, OPTS) as m:
        ru.read_file(os.path.join(m.path, rel))
        once = oz.stats(m.path)["chunks_computed"]
    oz.check(computed == once, "chunks_computed = %d; one undisturbed read computes %d" % (computed, once))


# ------------------------------------------------------------------------ remounts, cache lock

REMOUNT_READS = ["3/0/0/0", "2/0/1/1", "1/1/3/3", "0/5/7/7", "0/2/3/4"]  # all non-empty


@S.case
def remount_back_to_back_on_one_cache():
    """20 x (mount, read chunks, fusermount3 -u, mount again at once): each mount succeeds and
    serves the right bytes. The old daemon is still draining its cache writes and tearing down
    when the next mount starts; the next mount waits for it (one log line) instead of failing."""
    d, _ = stack()
    cache = oz.tmpdir("cache")
    mnt = oz.tmpdir("mnt")
    mounts, waited, bad = [], 0, []
    try:
        for i in range(20):
            m = oz.Mount(d, OPTS, cache=cache, mountpoint=mnt)
            mounts.append(m)
            m.__enter__()  # raises MountError with the daemon's stderr if the mount fails
            if "is shutting down" in m.stderr and "waiting up to 30 s" in m.stderr:
                waited += 1
            for rel in REMOUNT_READS[i % 2:]:  # odd rounds: some chunks from the cache only
                if ru.read_file(os.path.join(mnt, rel)) != want(rel):
                    bad.append("round %d: %s wrong" % (i, rel))
            r = subprocess.run(["fusermount3", "-u", mnt], capture_output=True, text=True)
            oz.check(r.returncode == 0, "round %d: fusermount3 -u: %s" % (i, r.stderr.strip()))
    finally:
        for m in mounts:
            m._cleanup()
    ru.figure("back_to_back_remounts_that_waited_for_the_old_daemon", "%d/20" % waited)
    oz.check(not bad, "; ".join(bad))


@S.case
def mount_on_a_live_mounts_cache_is_refused_at_once():
    d, _ = stack()
    cache = oz.tmpdir("cache")
    with oz.Mount(d, OPTS, cache=cache) as a:
        oz.check(ru.read_file(os.path.join(a.path, "2/0/1/1")) == want("2/0/1/1"), "first mount wrong")
        rc, err, mounted = oz.try_mount(d, OPTS, cache=cache)
        oz.check(rc != 0 and not mounted, "second mount on a live mount's cache: exit %s, mounted %s" % (rc, mounted))
        oz.check("is in use by another omezarrfs process (pid %d, serving %s)" % (a.pids[0], os.path.realpath(a.path))
                 in err, "refusal does not name the holder and its mount: %r" % err.strip()[-400:])
        oz.check("waiting" not in err, "the refusal waited first: %r" % err.strip()[-400:])
        oz.check(ru.read_file(os.path.join(a.path, "1/1/3/3")) == want("1/1/3/3"), "first mount wrong after")


# --------------------------------------------------------------------------------- errno matrix


def _matrix(mnt, chunk, empty):
    """(label, function, expected errno) rows; chunk: an existing chunk file, empty: an absent
    (all-zero) chunk."""
    j = lambda *p: os.path.join(mnt, *p)  # noqa: E731
    row = chunk.rsplit("/", 1)[0]
    ro = lambda p: os.open(p, os.O_RDONLY)  # noqa: E731

    def close_after(fn):
        def run():
            fd = fn()
            os.close(fd)
        return run

    def ftruncate_ro():
        fd = os.open(j(chunk), os.O_RDONLY)
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)

    def read_dir():
        fd = os.open(j("0"), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.read(fd, 10)
        finally:
            os.close(fd)
    long = "x" * 256
    rows = [
        # EROFS: every mutation, on the root, a level, a row directory, metadata and a chunk
        ("creat new at root", close_after(lambda: os.open(j("new"), os.O_CREAT | os.O_WRONLY, 0o644)), errno.EROFS),
        ("creat new in a row", close_after(lambda: os.open(j(row, "99"), os.O_CREAT | os.O_WRONLY)), errno.EROFS),
        ("open O_WRONLY chunk", close_after(lambda: os.open(j(chunk), os.O_WRONLY)), errno.EROFS),
        ("open O_RDWR .zarray", close_after(lambda: os.open(j("0/.zarray"), os.O_RDWR)), errno.EROFS),
        ("open O_TRUNC .zgroup", close_after(lambda: os.open(j(".zgroup"), os.O_RDONLY | os.O_TRUNC)), errno.EROFS),
        ("open O_APPEND chunk", close_after(lambda: os.open(j(chunk), os.O_WRONLY | os.O_APPEND)), errno.EROFS),
        ("mkdir at root", lambda: os.mkdir(j("d")), errno.EROFS),
        ("mkdir in a row", lambda: os.mkdir(j(row, "d")), errno.EROFS),
        ("mknod fifo", lambda: os.mkfifo(j("fifo")), errno.EROFS),
        ("mknod regular", lambda: os.mknod(j("node")), errno.EROFS),
        ("symlink", lambda: os.symlink("0", j("link")), errno.EROFS),
        ("link chunk", lambda: os.link(j(chunk), j("hard")), errno.EROFS),
        ("unlink chunk", lambda: os.unlink(j(chunk)), errno.EROFS),
        ("unlink .zattrs", lambda: os.unlink(j(".zattrs")), errno.EROFS),
        ("rmdir level", lambda: os.rmdir(j("3")), errno.EROFS),
        ("rmdir row", lambda: os.rmdir(j(row)), errno.EROFS),
        ("rename chunk to new", lambda: os.rename(j(chunk), j(row, "x")), errno.EROFS),
        ("rename chunk over .zgroup", lambda: os.rename(j(chunk), j(".zgroup")), errno.EROFS),
        ("rename level dir", lambda: os.rename(j("1"), j("one")), errno.EROFS),
        ("chmod chunk", lambda: os.chmod(j(chunk), 0o600), errno.EROFS),
        ("chmod root", lambda: os.chmod(mnt, 0o700), errno.EROFS),
        ("chown chunk", lambda: os.chown(j(chunk), 1, 1), errno.EROFS),
        ("truncate chunk", lambda: os.truncate(j(chunk), 0), errno.EROFS),
        ("utime chunk", lambda: os.utime(j(chunk), (0, 0)), errno.EROFS),
        ("utime level", lambda: os.utime(j("0"), None), errno.EROFS),
        ("setxattr chunk", lambda: os.setxattr(j(chunk), "user.x", b"1"), errno.EROFS),
        ("setxattr stats", lambda: os.setxattr(mnt, "user.omezarrfs.stats", b"1"), errno.EROFS),
        ("removexattr root", lambda: os.removexattr(mnt, "user.omezarrfs.stats"), errno.EROFS),
        ("ftruncate O_RDONLY fd", ftruncate_ro, errno.EINVAL),
        # ENOENT: names outside the tree, at every depth, and absent (empty) chunks
        ("stat absent root name", lambda: os.stat(j("nope")), errno.ENOENT),
        ("stat level past the last", lambda: os.stat(j("4")), errno.ENOENT),
        ("stat z past the grid", lambda: os.stat(j("0/6")), errno.ENOENT),
        ("stat y past the grid", lambda: os.stat(j("0/0/8")), errno.ENOENT),
        ("stat x past the grid", lambda: os.stat(j("0/0/0/8")), errno.ENOENT),
        ("stat non-canonical index", lambda: os.stat(j("0/01")), errno.ENOENT),
        ("stat empty chunk", lambda: os.stat(j(empty)), errno.ENOENT),
        ("open empty chunk", close_after(lambda: ro(j(empty))), errno.ENOENT),
        ("listdir absent", lambda: os.listdir(j("0/9")), errno.ENOENT),
        ("getxattr absent path", lambda: os.getxattr(j("nope"), "user.x"), errno.ENOENT),
        # ENOTDIR: a path through a file
        ("stat below .zgroup", lambda: os.stat(j(".zgroup", "x")), errno.ENOTDIR),
        ("stat below .zarray", lambda: os.stat(j("0/.zarray", "x")), errno.ENOTDIR),
        ("stat below a chunk", lambda: os.stat(j(chunk, "x")), errno.ENOTDIR),
        ("opendir a chunk", close_after(lambda: os.open(j(chunk), os.O_RDONLY | os.O_DIRECTORY)), errno.ENOTDIR),
        ("listdir a chunk", lambda: os.listdir(j(chunk)), errno.ENOTDIR),
        # ENAMETOOLONG: a 256-byte component, a path longer than PATH_MAX
        ("stat 256-byte name at root", lambda: os.stat(j(long)), errno.ENAMETOOLONG),
        ("stat 256-byte name in a row", lambda: os.stat(j(row, long)), errno.ENAMETOOLONG),
        ("open 256-byte name", close_after(lambda: ro(j(long))), errno.ENAMETOOLONG),
        ("creat 256-byte name", close_after(lambda: os.open(j(long), os.O_CREAT | os.O_WRONLY)),
         errno.ENAMETOOLONG),
        ("mkdir 256-byte name", lambda: os.mkdir(j(long)), errno.ENAMETOOLONG),
        ("stat 255-byte name", lambda: os.stat(j("y" * 255)), errno.ENOENT),
        ("stat path over PATH_MAX", lambda: os.stat(j(*(["0"] + ["a" * 200] * 21))), errno.ENAMETOOLONG),
        # EISDIR, EACCES
        ("open level O_WRONLY", close_after(lambda: os.open(j("0"), os.O_WRONLY)), errno.EISDIR),
        ("read a directory fd", read_dir, errno.EISDIR),
        ("access X_OK chunk", lambda: (_ for _ in ()).throw(OSError(errno.EACCES, "x"))
         if not os.access(j(chunk), os.X_OK) else None, errno.EACCES),
        ("execute a chunk", lambda: subprocess.run([j(chunk)], capture_output=True), errno.EACCES),
    ]
    return rows


@S.case
def errno_matrix():
    d, levels = stack()
    paths = ru.chunk_paths(levels, 16)
    chunk = next(rel for lvl, idx, rel in paths if lvl == 0 and any(ru.padded_chunk(levels, 0, idx, 16)))
    empty = next(rel for lvl, idx, rel in paths if lvl == 0 and not any(ru.padded_chunk(levels, 0, idx, 16)))
    with ru.LoggedMount(d, {"chunk": 16, "levels": 4}) as m:
        before = oz.walk_files(m.path)
        rows = _matrix(m.path, chunk, empty)
        bad = []
        for label, fn, code in rows:
            p = ru.expect_errno(fn, (code,))
            if p:
                bad.append("%s: %s, expected %s" % (label, p, errno.errorcode[code]))
        oz.check(oz.walk_files(m.path) == before, "the tree changed")
        errors = m.log_lines("error")
    ru.figure("errno_matrix_cases", len(rows))
    ru.figure("errno_matrix_passed", len(rows) - len(bad))
    oz.check(not bad, "%d of %d: %s" % (len(bad), len(rows), "; ".join(bad)))
    oz.check(not errors, "user mistakes logged as errors: %s" % errors[:3])


if __name__ == "__main__":
    S.main()
