#!/usr/bin/python3
"""Robustness, the disk cache (docs/ROBUSTNESS.md, item 2).

  - kill -9 of the daemon at each step of a cache write (OMEZARRFS_FAULT=cache.STEP:kill@N),
    then a remount: temp files swept, every entry on disk valid and equal to the reference, the
    whole tree right, 0 corrupt entries;
  - kill -9 at random moments under load, many times (ROBUST_KILLS, default 200; x $OZ_SOAK),
    remounting the same cache each time: every read that succeeded was right, and the cache
    after the last kill holds only valid entries equal to the reference;
  - offline damage (bit flips in every header field, the key and the data, truncation, swapped
    and duplicated entries, stray files and directories): detected, counted, logged, recomputed;
  - ENOSPC (a 256 KiB tmpfs), a cache directory made read-only or deleted while mounted: every
    read still right, a bounded number of warnings;
  - the size bound under load (sampled), and its overshoot reported.
"""

import errno
import os
import random
import shutil
import subprocess
import threading
import time

import numpy as np

import oztest as oz
import robust_util as ru

S = oz.Suite("robust_cache", case_timeout=900 + int(int(os.environ.get("ROBUST_KILLS", "200")) * ru.soak_scale()))
SHAPE = (40, 72, 88)
CHUNK = 16
LEVELS = 3
OPTS = {"chunk": CHUNK, "levels": LEVELS}
DEAD = (errno.ENOTCONN, errno.ECONNABORTED)

_STACK = {}


def stack():
    if "d" not in _STACK:
        d = oz.tmpdir("src")
        vol = oz.make_stack(d, SHAPE, np.uint16, seed=71, compression="zlib", rowsperstrip=8)
        _STACK["d"], _STACK["vol"] = d, vol
    return _STACK["d"], _STACK["vol"]


# The option sets a cache is shared by: reads of one never hit the entries of another, so cycling
# through them keeps the writer busy (and, under a small cache_size, evicting).
VARIANTS = [
    ("mean", False), ("max", False), ("nearest", False), ("mean", True), ("max", True),
]


def variant_opts(i, **extra):
    alg, b1 = VARIANTS[i % len(VARIANTS)]
    o = dict(OPTS, algorithm=alg, **extra)
    if b1:
        o["bytes"] = 1
    return o


_REFS = {}


def reference(i):
    i %= len(VARIANTS)
    if i not in _REFS:
        _, vol = stack()
        alg, b1 = VARIANTS[i]
        _REFS[i] = oz.reference_pyramid(oz.reference_level0(vol, bytes1=b1), LEVELS, alg)
    return _REFS[i]


def expected(i, rel):
    """Bytes of chunk file `rel` ("L/z/y/x") for variant i (all zeros: absent with empty=omit)."""
    lvl, *idx = (int(v) for v in rel.split("/"))
    return ru.padded_chunk(reference(i), lvl, tuple(idx), CHUNK)


def all_chunks():
    return [rel for _, _, rel in ru.chunk_paths(reference(0), CHUNK)]


def check_read(mnt, i, rel):
    """Reads one chunk; returns None if right, a problem string if wrong, or raises OSError."""
    want = expected(i, rel)
    try:
        got = ru.read_file(os.path.join(mnt, rel))
    except FileNotFoundError:
        return None if not any(want) else "%s: ENOENT for a non-empty chunk" % rel
    return None if got == want else "%s: %d bytes, not the reference" % (rel, len(got))


def full_check(mnt, i, ck, label):
    for lvl in range(LEVELS):
        ck.run("%s level %d" % (label, lvl),
               lambda lvl=lvl: oz.assert_array_equal(oz.read_level(mnt, lvl, LEVELS), reference(i)[lvl], "data"))


def offline_verify(cache):
    """Every entry file parses, checksums, is named by its key's hash, and holds the reference
    bytes of its chunk. Returns (entries, problems)."""
    entries, _, _ = ru.cache_files(cache)
    problems = []
    for p in entries:
        why, key, flags, data = ru.read_cache_entry(p)
        if why:
            problems.append("%s: %s" % (p, why))
            continue
        i = next(j for j, (alg, b1) in enumerate(VARIANTS)
                 if ("bytes1=1" in key) == b1 and ("alg=%s|" % alg in key or "alg=-|" in key))
        lvl, idx = ru.key_chunk(key)
        want = ru.padded_chunk(reference(i), lvl, idx, CHUNK)
        if flags & 1:
            if any(want):
                problems.append("%s: marked empty, but chunk %d/%s is not" % (p, lvl, idx))
        elif data != want:
            problems.append("%s: chunk %d/%s bytes differ from the reference" % (p, lvl, idx))
    return len(entries), problems


# ------------------------------------------------------------------------- kills at chosen steps

STEPS = ["created", "half_written", "written", "renamed"]


def _read_until_dead(m, i, limit_s=60):
    """Reads chunks (coarse levels first, so the writer gets work) until the daemon dies."""
    rels = sorted(all_chunks(), key=lambda r: -int(r[0]))
    bad = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        for rel in rels:
            try:
                p = check_read(m.path, i, rel)
                if p:
                    bad.append(p)
            except OSError as e:
                if e.errno in DEAD:
                    return bad
                raise
        if not any(oz._alive(p) for p in m.pids):
            return bad
    raise oz.CheckFailed("the daemon did not die at its fault point within %ss" % limit_s)


def _step_case(step, nth):
    def run():
        d, _ = stack()
        cache = oz.tmpdir("cache")
        m = ru.LoggedMount(d, variant_opts(0), cache=cache, env={"OMEZARRFS_FAULT": "cache.%s:kill@%d" % (step, nth)})
        with m:
            bad = _read_until_dead(m, 0)
            m.kill9()  # already dead: waits and clears the mount
        oz.check(not bad, "reads before the kill: %s" % bad[:3])
        _, temps, _ = ru.cache_files(cache)
        if step in ("created", "half_written", "written"):
            oz.check(temps, "no temp file left by a kill at %s (did the kill land?)" % step)
        n, problems = offline_verify(cache)
        oz.check(not problems, "after the kill: %s" % problems[:3])
        ck = oz.Checks()
        with ru.LoggedMount(d, variant_opts(0), cache=cache) as m2:
            _, temps_after, _ = ru.cache_files(cache)
            ck.expect(not temps_after, "temp files not swept at remount: %s" % temps_after[:3])
            full_check(m2.path, 0, ck, "remount")
            s = oz.stats(m2.path)
            ck.expect(s.get("cache_corrupt") == 0, "cache_corrupt = %s" % s.get("cache_corrupt"))
        n2, problems = offline_verify(cache)
        ck.expect(not problems, "after the remount: %s" % problems[:3])
        ck.done()
    return run


for _step in STEPS:
    for _n in (1, 5):
        S.add("kill_at_cache_%s_write_%d" % (_step, _n), _step_case(_step, _n))


# ----------------------------------------------------------------------- random kills under load


@S.case
def kill9_at_random_under_load():
    kills = int(int(os.environ.get("ROBUST_KILLS", "200")) * ru.soak_scale())
    d, _ = stack()
    cache = oz.tmpdir("cache")
    mnt = oz.tmpdir("mnt")
    rng = random.Random(7)
    rels = all_chunks()
    corrupt, reads, other_errors, landed = [], [0], [], 0
    t0 = time.monotonic()
    for k in range(kills):
        i = k % len(VARIANTS)
        # A budget about half of one variant's tree: evictions and writes in every cycle.
        os.makedirs(mnt, exist_ok=True)  # unmounting removes it
        # Every other cycle, cache writes pause 3 ms half-way through their temp file: more kills
        # land inside a write (a torn temp left behind), without changing what is written.
        env = {"OMEZARRFS_FAULT": "cache.half_written:delay=3"} if k % 2 else {}
        m = ru.LoggedMount(d, variant_opts(i, cache_size="600K", threads=2), cache=cache, mountpoint=mnt, env=env)
        with m:
            stop = threading.Event()

            def reader(seed):
                r = random.Random(seed)
                while not stop.is_set():
                    rel = r.choice(rels)
                    try:
                        p = check_read(m.path, i, rel)
                    except OSError as e:
                        if e.errno not in DEAD:
                            other_errors.append("%s: %s" % (rel, e))
                        return
                    reads[0] += 1
                    if p:
                        corrupt.append(p)
            ts = [threading.Thread(target=reader, args=(k * 10 + j,)) for j in range(4)]
            for t in ts:
                t.start()
            time.sleep(rng.uniform(0.0, 0.25))
            m.kill9(clear=False)
            landed += bool(ru.cache_files(cache)[1])  # a temp left: the kill landed in a write
            stop.set()
            for t in ts:
                t.join(30)
            m.clear_dead()
    elapsed = time.monotonic() - t0
    n, problems = offline_verify(cache)
    ck = oz.Checks()
    ck.expect(not corrupt, "%d corrupt reads, e.g. %s" % (len(corrupt), corrupt[:3]))
    ck.expect(not other_errors, "errors other than ENOTCONN: %s" % other_errors[:3])
    ck.expect(not problems, "%d bad entries on disk after %d kills: %s" % (len(problems), kills, problems[:3]))
    for i in range(len(VARIANTS)):
        with ru.LoggedMount(d, variant_opts(i, cache_size="600K"), cache=cache) as m:
            _, temps, _ = ru.cache_files(cache)
            ck.expect(not temps, "temp files after remount: %s" % temps[:3])
            full_check(m.path, i, ck, "variant %d after the kills" % i)
            s = oz.stats(m.path)
            ck.expect(s.get("cache_corrupt") == 0, "variant %d: cache_corrupt = %s" % (i, s.get("cache_corrupt")))
    ru.figure("random_kills", kills)
    ru.figure("random_kills_seconds", "%.0f" % elapsed)
    ru.figure("random_kills_reads_checked", reads[0])
    ru.figure("random_kills_corrupt_reads", len(corrupt))
    ru.figure("random_kills_with_temp_in_flight", landed)
    ru.figure("random_kills_entries_verified", n)
    ck.done()


# ------------------------------------------------------------------------------ offline damage


def _flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x10]))


@S.case
def offline_damage_detected_and_recomputed():
    d, _ = stack()
    cache = oz.tmpdir("cache")
    with ru.LoggedMount(d, variant_opts(0, empty="keep"), cache=cache) as m:
        for rel in all_chunks():
            ru.read_file(os.path.join(m.path, rel))
    time.sleep(0.2)
    entries = [p for p in ru.cache_files(cache)[0] if os.path.getsize(p) > CHUNK ** 3 * 2]  # not empty ones
    oz.check(len(entries) >= 30, "only %d non-empty entries cached" % len(entries))
    random.Random(3).shuffle(entries)
    damage = {
        "magic": lambda p: _flip(p, 1),
        "version": lambda p: _flip(p, 4),
        "checksum": lambda p: _flip(p, 9),
        "flags": lambda p: _flip(p, 16),
        "key length": lambda p: _flip(p, 20),
        "data length": lambda p: _flip(p, 24),
        "key byte": lambda p: _flip(p, 40),
        "first data byte": lambda p: _flip(p, os.path.getsize(p) - CHUNK ** 3 * 2),
        "last data byte": lambda p: _flip(p, os.path.getsize(p) - 1),
        "truncated by one": lambda p: os.truncate(p, os.path.getsize(p) - 1),
        "truncated to the header": lambda p: os.truncate(p, 32),
        "emptied": lambda p: os.truncate(p, 0),
        "appended byte": lambda p: open(p, "ab").write(b"\0"),
    }
    damaged = []
    for (label, fn), p in zip(damage.items(), entries):
        fn(p)
        damaged.append(label)
    rest = entries[len(damage):]
    a, b, c, e = rest[0], rest[1], rest[2], rest[3]
    tmp = a + ".swap"
    os.rename(a, tmp)
    os.rename(b, a)
    os.rename(tmp, b)
    shutil.copy(c, e)  # a duplicate under another entry's name
    damaged += ["swapped", "swapped", "duplicated"]
    fan = os.path.dirname(entries[0])
    strays = [os.path.join(fan, "notes.txt"), os.path.join(fan, "A" * 30), os.path.join(fan, "0" * 29),
              os.path.join(fan, ".tmp.0000000000000000")]
    for s_ in strays:
        ru.write_bytes(s_, b"stray")
    os.symlink(entries[-1], os.path.join(fan, "f" * 30))
    os.makedirs(os.path.join(fan, "e" * 30))
    ck = oz.Checks()
    with ru.LoggedMount(d, variant_opts(0, empty="keep"), cache=cache) as m:
        full_check(m.path, 0, ck, "after damage")
        for rel in all_chunks():
            p = check_read(m.path, 0, rel)
            ck.expect(p is None, p)
        s = oz.stats(m.path)
        warn_corrupt = m.log_lines("warning", "corrupt entry")
        warn_strays = m.log_lines("warning", "not cache entries")
    for s_ in strays + [os.path.join(fan, "f" * 30)]:
        ck.expect(not os.path.lexists(s_), "stray %s not removed" % s_)
    ck.expect(os.path.isdir(os.path.join(fan, "e" * 30)), "a directory in the cache was removed")
    ck.expect(s.get("cache_corrupt") == len(damaged),
              "cache_corrupt = %s, expected %d (%s)" % (s.get("cache_corrupt"), len(damaged), damaged))
    ck.expect(1 <= len(warn_corrupt) <= 11, "%d corrupt-entry warnings (rate limit: 10 + a summary)"
              % len(warn_corrupt))
    ck.expect(len(warn_strays) == 1, "stray files: %d warning lines" % len(warn_strays))
    n, problems = offline_verify(cache)
    ck.expect(not problems, "after the remount: %s" % problems[:3])
    ru.figure("offline_damage_kinds", len(damage) + 3)
    ru.figure("offline_damage_detected", s.get("cache_corrupt"))
    ck.done()


# ------------------------------------------------------------------- full, read-only, deleted


def _needs_root():
    if os.geteuid() != 0:
        raise oz.Skip("needs root (mount)")


def _tmpfs(size):
    _needs_root()
    p = oz.tmpdir("tmpfs")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", p], check=True)
    return p


def _umount(p):
    subprocess.run(["umount", "-l", p], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@S.case
def enospc_cache_on_a_tiny_tmpfs():
    """Round 1: a 256 KiB tmpfs, smaller than cache_size: ENOSPC is met by evicting (the cache
    shrinks to what fits). Round 2: the tmpfs is filled by another file, so no put can succeed:
    every read still right, puts counted as failures, a bounded number of warnings."""
    d, _ = stack()
    fs_ = _tmpfs("256k")
    try:
        ck = oz.Checks()
        figures = {}
        for rnd in range(2):
            if rnd == 1:
                shutil.rmtree(os.path.join(fs_, "c", "v1"))
                fd = os.open(os.path.join(fs_, "ballast"), os.O_WRONLY | os.O_CREAT, 0o644)
                try:
                    while True:
                        os.write(fd, bytes(4096))
                except OSError as e:
                    oz.check(e.errno == errno.ENOSPC, "ballast: %s" % e)
                finally:
                    os.close(fd)
            with ru.LoggedMount(d, variant_opts(0), cache=os.path.join(fs_, "c")) as m:
                full_check(m.path, 0, ck, "round %d" % rnd)
                for rel in all_chunks():
                    p = check_read(m.path, 0, rel)
                    ck.expect(p is None, p)
                s = oz.stats(m.path)
                warns = m.log_lines("warning")
            figures[rnd] = (s.get("cache_evictions"), s.get("cache_put_failures"), len(warns))
        ck.expect(figures[0][0] > 0, "round 1: no evictions on a full tmpfs: %s" % (figures[0],))
        ck.expect(figures[1][1] > 0, "round 2: no put failed on a full tmpfs: %s" % (figures[1],))
        ck.expect(1 <= figures[1][2] <= 12, "round 2: %d warning lines for a full disk" % figures[1][2])
        ru.figure("enospc_evicting_evictions", figures[0][0])
        ru.figure("enospc_full_put_failures", figures[1][1])
        ru.figure("enospc_full_warning_lines", figures[1][2])
        ck.done()
    finally:
        _umount(fs_)


@S.case
def cache_dir_read_only_while_mounted():
    """The cache directory becomes read-only under the daemon (a read-only bind mount over it):
    every read still right; puts fail with a bounded number of warnings."""
    _needs_root()
    d, _ = stack()
    cache = oz.tmpdir("cache")
    ck = oz.Checks()
    with ru.LoggedMount(d, variant_opts(1), cache=cache) as m:
        oz.read_level(m.path, LEVELS - 1, LEVELS)
        subprocess.run(["mount", "--bind", cache, cache], check=True)
        try:
            # EBUSY while the background writer has a temp file open through the new mount.
            for _ in range(100):
                if subprocess.run(["mount", "-o", "remount,bind,ro", cache], stderr=subprocess.DEVNULL).returncode == 0:
                    break
                time.sleep(0.05)
            oz.check(ru.expect_errno(lambda: open(os.path.join(cache, "x"), "w"), (errno.EROFS,)) is None,
                     "the bind mount is not read-only")
            full_check(m.path, 1, ck, "read-only cache")
            # Puts are queued to the daemon's cache writer: the reads can all be answered before
            # it tries the first one, so wait (bounded) for it to have tried.
            deadline = time.monotonic() + 20
            s = oz.stats(m.path)
            while s.get("cache_put_failures", 0) == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
                s = oz.stats(m.path)
            warns = m.log_lines("warning")
        finally:
            _umount(cache)
    ck.expect(s.get("cache_put_failures", 0) > 0, "no put failed on a read-only cache: %s" % s)
    ck.expect(1 <= len(warns) <= 12, "%d warning lines" % len(warns))
    ru.figure("readonly_cache_put_failures", s.get("cache_put_failures"))
    ck.done()


@S.case
def cache_dir_read_only_at_mount_is_refused():
    _needs_root()
    d, _ = stack()
    fs_ = _tmpfs("1m")
    try:
        subprocess.run(["mount", "-o", "remount,ro", fs_], check=True)
        rc, err, mounted = oz.try_mount(d, variant_opts(0), cache=os.path.join(fs_, "c"))
        oz.check(rc != 0 and not mounted, "mounted with a read-only cache directory")
        oz.check(fs_ in err and "-o cache=DIR" in err, "message does not name the directory and the fix: %r"
                 % err.strip()[-300:])
    finally:
        _umount(fs_)


@S.case
def cache_dir_deleted_while_mounted():
    d, _ = stack()
    cache = oz.tmpdir("cache")
    ck = oz.Checks()
    with ru.LoggedMount(d, variant_opts(2), cache=cache) as m:
        oz.read_level(m.path, LEVELS - 1, LEVELS)
        for _ in range(100):  # the background writer may add a file while the tree goes
            try:
                shutil.rmtree(cache)
                break
            except OSError:
                time.sleep(0.02)
        oz.check(not os.path.exists(cache), "could not delete the cache directory")
        full_check(m.path, 2, ck, "deleted cache")
    time.sleep(0.1)
    n, problems = offline_verify(cache)
    ck.expect(n > 0, "the cache was not recreated")
    ck.expect(not problems, problems[:3])
    with ru.LoggedMount(d, variant_opts(2), cache=cache) as m:
        full_check(m.path, 2, ck, "remount")
    ck.done()


# ------------------------------------------------------------------------------ the size bound


@S.case
def size_bound_holds_under_load():
    d, _ = stack()
    cache = oz.tmpdir("cache")
    budget = 256 << 10
    seconds = 8 * ru.soak_scale()
    samples = []
    rels = all_chunks()
    with ru.LoggedMount(d, variant_opts(0, cache_size=budget), cache=cache) as m:
        stop = threading.Event()
        errors = []

        def sampler():
            while not stop.is_set():
                samples.append(ru.cache_bytes(cache))
                time.sleep(0.005)

        def reader(seed):
            r = random.Random(seed)
            while not stop.is_set():
                rel = r.choice(rels)
                try:
                    p = check_read(m.path, 0, rel)
                    if p:
                        errors.append(p)
                except OSError as e:
                    errors.append("%s: %s" % (rel, e))
        ts = [threading.Thread(target=sampler)] + [threading.Thread(target=reader, args=(j,)) for j in range(8)]
        for t in ts:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in ts:
            t.join()
        s = oz.stats(m.path)
    entry = CHUNK ** 3 * 2 + 400
    peak = max(samples)
    ru.figure("size_bound_budget_bytes", budget)
    ru.figure("size_bound_peak_bytes", peak)
    ru.figure("size_bound_overshoot_bytes", max(0, peak - budget))
    ru.figure("size_bound_samples", len(samples))
    ru.figure("size_bound_evictions", s.get("cache_evictions"))
    oz.check(not errors, "reads: %s" % errors[:3])
    oz.check(s.get("cache_evictions", 0) > 0, "no evictions: the test did not load the cache")
    # One background writer: at most one entry (its temp, then the renamed file) past the budget.
    oz.check(peak <= budget + 2 * entry, "peak %d bytes > budget %d + two entries" % (peak, budget))


if __name__ == "__main__":
    S.main()
