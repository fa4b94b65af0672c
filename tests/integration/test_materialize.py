#!/usr/bin/python3
"""omezarr-materialize: DEST equals a mount byte for byte (recursive compare) and reads right with
zarr-python; kill -9 then resume gives the right tree; N parts in parallel give the same tree as
one run (16 parts too, concurrently in random order, each doing work, the levels above the parts'
finished from DEST by the last part or --finish); -o base=DEST
serves DEST's chunks without reading the source, and ignores a DEST of other options (saying so)
or a changed file; dry-run writes nothing; a foreign DEST is refused; --delete and --verify work; --levels
A-B builds on DEST's own lower levels without reading the source; a mount's cache is shared
read-only (while mounted too), its chunks copied, not recomputed; on a terminal (a pty), log lines
printed during a run land above the progress bar, never inside it."""
import filecmp
import os
import random
import re
import shutil
import signal
import subprocess
import time

import numpy as np

import oztest as oz

S = oz.Suite("materialize")


def tool():
    return os.path.join(os.path.dirname(oz.binary()), "..", "cli", "omezarr-materialize")


def run(args, check=True, timeout=300):
    res = subprocess.run([tool()] + args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=timeout)
    if check:
        oz.check(res.returncode == 0, "materialize %s failed (%d): %s" % (args, res.returncode, res.stderr[-800:]))
    return res


def tree_diff(a, b):
    """Differences between two directory trees (names and bytes), ignoring the state dir."""
    out = []

    def walk(rel):
        da, db = os.path.join(a, rel), os.path.join(b, rel)
        na = set(os.listdir(da)) - {".omezarr-materialize"}
        nb = set(os.listdir(db)) - {".omezarr-materialize"}
        for n in sorted(na ^ nb):
            out.append("only in %s: %s" % (a if n in na else b, os.path.join(rel, n)))
        for n in sorted(na & nb):
            pa, pb = os.path.join(da, n), os.path.join(db, n)
            if os.path.isdir(pa) != os.path.isdir(pb):
                out.append("type differs: " + os.path.join(rel, n))
            elif os.path.isdir(pa):
                walk(os.path.join(rel, n))
            elif not filecmp.cmp(pa, pb, shallow=False):
                out.append("bytes differ: " + os.path.join(rel, n))
    walk("")
    return out


def opts_list(o):
    return ["-o", oz.format_options(o)] if o else []


def stack(shape=(37, 70, 90), seed=5):
    d = oz.tmpdir("mat-src")
    return d, oz.make_stack(d, shape, np.uint16, seed=seed)


def same_as_mount(options, shape=(37, 70, 90)):
    def case():
        d, vol = stack(shape)
        dest = os.path.join(oz.tmpdir("mat-dst"), "out.zarr")
        run([d, dest, "--quiet"] + opts_list(options))
        with oz.Mount(d, options) as m:
            diff = tree_diff(m.path, dest)
            oz.check(not diff, "DEST differs from the mount: %s" % diff[:5])
        levels = int((options or {}).get("levels", 6))
        plain_view = not any(k in (options or {}) for k in ("window", "shift", "bytes"))
        if levels > 1 and plain_view:
            want = oz.reference_pyramid(vol, levels, (options or {}).get("algorithm", "mean"))
            for lvl in range(levels):
                oz.assert_array_equal(oz.read_level(dest, lvl, levels), want[lvl], "DEST level %d" % lvl)
    return case


S.add("same_as_mount_defaults_small_chunk", same_as_mount({"chunk": 16, "levels": 3}))
S.add("same_as_mount_odd_chunk_max", same_as_mount({"chunk": 13, "levels": 4, "algorithm": "max"}))
S.add("same_as_mount_blosc_keep", same_as_mount({"chunk": 32, "levels": 2, "compression": "blosc",
                                                 "blosc_cname": "zstd", "empty": "keep"}))
S.add("same_as_mount_levels1", same_as_mount({"chunk": 32, "levels": 1}))
S.add("same_as_mount_window_shift_bytes1", same_as_mount({"chunk": 16, "levels": 3,
                                                          "window": "5:80/:60/2:", "shift": "3/-2/1",
                                                          "bytes": 1}))


@S.case
def kill9_then_resume():
    d, vol = stack((64, 96, 96), seed=9)
    dest = os.path.join(oz.tmpdir("mat-dst"), "out.zarr")
    o = {"chunk": 8, "levels": 3}
    units = os.path.join(dest, ".omezarr-materialize", "units")
    kills = 0
    for attempt in range(5):
        p = subprocess.Popen([tool(), d, dest, "--quiet"] + opts_list(o), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        before = len(os.listdir(units)) if os.path.isdir(units) else 0
        while p.poll() is None and time.monotonic() < deadline:
            n = len(os.listdir(units)) if os.path.isdir(units) else 0
            if n > before:
                break
            time.sleep(0.002)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait()
    res = run([d, dest] + opts_list(o))
    with oz.Mount(d, o) as m:
        diff = tree_diff(m.path, dest)
        oz.check(not diff, "after %d kills and a resume DEST differs from the mount: %s" % (kills, diff[:5]))
    oz.check(kills == 0 or "skipped" in res.stderr, "no summary: %s" % res.stderr)
    stray = [f for r, _, fs in os.walk(dest) for f in fs if f.startswith(".tmp.")]
    # Temp files of killed runs are harmless (never at final names); count them for the record.
    print("  kills=%d, leftover temp files=%d" % (kills, len(stray)))


@S.case
def parts_in_parallel_equal_one_run():
    d, vol = stack((70, 50, 60), seed=3)
    o = {"chunk": 8, "levels": 3}
    one = os.path.join(oz.tmpdir("mat-one"), "out.zarr")
    run([d, one, "--quiet"] + opts_list(o))
    many = os.path.join(oz.tmpdir("mat-many"), "out.zarr")
    procs = [subprocess.Popen([tool(), d, many, "--quiet", "--part", "%d/3" % i] + opts_list(o),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for i in (3, 1, 2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        oz.check(p.returncode == 0, "a part failed: %s" % err[-500:])
    diff = tree_diff(one, many)
    oz.check(not diff, "3 parts differ from one run: %s" % diff[:5])


def written_count(stderr):
    m = re.search(r"(\d+) chunks: (\d+) written", stderr)
    oz.check(m, "no summary line: %r" % stderr[-500:])
    return int(m.group(2))


@S.case
def sixteen_parts_in_random_order_equal_one_run():
    # 3 levels of chunk 8: level 2 has only 6 units (z-slabs x y-bands), so 16 parts share level
    # 1's 20 units and level 2 is computed from DEST by the part that completes the set.
    d, _ = stack((70, 50, 60), seed=11)
    o = {"chunk": 8, "levels": 3}
    one = os.path.join(oz.tmpdir("mat-one16"), "out.zarr")
    run([d, one, "--quiet"] + opts_list(o))
    dry = run([d, one, "--dry-run", "--part", "1/16"] + opts_list(o)).stdout
    oz.check("levels 0-1" in dry and "levels 2-2 are computed" in dry, "dry-run of a part: %r" % dry)
    many = os.path.join(oz.tmpdir("mat-many16"), "out.zarr")
    order = list(range(1, 17))
    random.Random(16).shuffle(order)
    procs = [(i, subprocess.Popen([tool(), d, many, "--quiet", "--part", "%d/16" % i] + opts_list(o),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True)) for i in order]
    for i, p in procs:
        _, err = p.communicate(timeout=300)
        oz.check(p.returncode == 0, "part %d/16 failed: %s" % (i, err[-500:]))
        oz.check(written_count(err) > 0, "part %d/16 wrote nothing: %s" % (i, err[-300:]))
    diff = tree_diff(one, many)
    oz.check(not diff, "16 parts differ from one run: %s" % diff[:5])
    # --finish (a final job after an array of parts) computes the levels above again from DEST,
    # reading nothing from the source.
    shutil.rmtree(os.path.join(many, "2"))
    units = os.path.join(many, ".omezarr-materialize", "units")
    for n in os.listdir(units):
        if n.startswith("L2-"):
            os.unlink(os.path.join(units, n))
    res = run([d, many, "--finish"] + opts_list(o))
    oz.check("source bytes read: 0" in res.stderr, "--finish read the source: %s" % res.stderr[-500:])
    diff = tree_diff(one, many)
    oz.check(not diff, "after --finish DEST differs from one run: %s" % diff[:5])
    # --finish before every part is done is refused, naming the fix.
    partial = os.path.join(oz.tmpdir("mat-partial16"), "out.zarr")
    run([d, partial, "--quiet", "--part", "5/16"] + opts_list(o))
    res = run([d, partial, "--finish"] + opts_list(o), check=False)
    oz.check(res.returncode != 0 and "--part" in res.stderr, "--finish of an incomplete DEST: %s" % res.stderr)


def read_level(path, level):
    import zarr
    return zarr.open(os.path.join(path, str(level)), mode="r")[...]


@S.case
def base_serves_dest_chunks_without_reading_the_source():
    d, vol = stack((37, 70, 90), seed=21)
    o = {"chunk": 16, "levels": 3}
    dest = os.path.join(oz.tmpdir("mat-base"), "out.zarr")
    run([d, dest, "--quiet"] + opts_list(o))
    ref = oz.reference_pyramid(vol, 3, "mean")
    for k in range(3):
        oz.assert_array_equal(read_level(dest, k), ref[k], "DEST level %d" % k)
    with oz.Mount(d, dict(o, base=dest)) as m:
        diff = tree_diff(m.path, dest)  # reads every file of the tree through the mount
        st = oz.stats(m.path)
        oz.check(not diff, "base mount differs from DEST: %s" % diff[:5])
        oz.check(st["source_bytes_read"] == 0, "base mount read the source: %r" % st)
        oz.check(st["chunks_from_base"] > 0 and st["chunks_computed"] == 0, "stats: %r" % st)
    # Other options: the base is not used (one warning naming why) and the right bytes are served.
    with oz.Mount(d, dict(o, algorithm="max", base=dest)) as m:
        oz.check("is not used" in m.stderr and "other options" in m.stderr, "no mismatch warning: %r" % m.stderr)
        ref_max = oz.reference_pyramid(vol, 3, "max")
        for k in range(3):
            oz.assert_array_equal(read_level(m.path, k), ref_max[k], "max mount over a mean base, level %d" % k)
        st = oz.stats(m.path)
        oz.check(st["chunks_from_base"] == 0 and st["source_bytes_read"] > 0, "stats: %r" % st)
    # A changed file in the base (same size) fails its manifest check: computed, not served.
    victim = sorted(os.path.join(r, f) for r, _, fs in os.walk(os.path.join(dest, "1"))
                    for f in fs if not f.startswith("."))[0]
    with open(victim, "r+b") as f:
        b = bytearray(f.read())
        b[100] ^= 0xFF
        f.seek(0)
        f.write(b)
    with oz.Mount(d, dict(o, base=dest)) as m:
        oz.assert_array_equal(read_level(m.path, 1), ref[1], "level 1 over a changed base file")
        st = oz.stats(m.path)
        oz.check(st["source_bytes_read"] > 0, "the changed file was served: %r" % st)
    # Not a materialize destination: not used, said so.
    with oz.Mount(d, dict(o, base=oz.tmpdir("mat-nobase"))) as m:
        oz.check("is not used" in m.stderr, "no warning for a foreign base: %r" % m.stderr)
        oz.assert_array_equal(read_level(m.path, 0), ref[0], "level 0 over a foreign base")


@S.case
def dry_run_writes_nothing():
    d, _ = stack()
    dest = os.path.join(oz.tmpdir("mat-dst"), "out.zarr")
    res = run([d, dest, "--dry-run", "-o", "chunk=16,levels=3"])
    oz.check(not os.path.exists(dest), "--dry-run created DEST")
    oz.check("total" in res.stdout and "(37, 70, 90)" in res.stdout, "dry-run output: %r" % res.stdout)


@S.case
def foreign_dest_refused_unless_overwrite():
    d, _ = stack()
    dest = oz.tmpdir("mat-foreign")
    with open(os.path.join(dest, "precious.txt"), "w") as f:
        f.write("keep me")
    res = run([d, dest, "-o", "chunk=16,levels=2"], check=False)
    oz.check(res.returncode != 0 and "--overwrite" in res.stderr, "foreign DEST not refused: %s" % res.stderr)
    run([d, dest, "--quiet", "--overwrite", "-o", "chunk=16,levels=2"])
    oz.check(os.path.exists(os.path.join(dest, "precious.txt")), "--overwrite removed an unrelated file")
    run([d, dest, "--quiet", "--delete", "-o", "chunk=16,levels=2"])
    oz.check(not os.path.exists(os.path.join(dest, "precious.txt")), "--delete kept a file outside the tree")
    oz.check(os.path.exists(os.path.join(dest, ".zattrs")), "--delete removed tree metadata")


@S.case
def verify_catches_same_size_corruption():
    d, _ = stack()
    o = {"chunk": 16, "levels": 2}
    dest = os.path.join(oz.tmpdir("mat-dst"), "out.zarr")
    run([d, dest, "--quiet"] + opts_list(o))
    victim = None
    for r, _, fs in os.walk(os.path.join(dest, "0")):
        for f in fs:
            if not f.startswith("."):
                victim = os.path.join(r, f)
                break
        if victim:
            break
    data = bytearray(open(victim, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(victim, "wb").write(bytes(data))
    res = run([d, dest, "--quiet"] + opts_list(o))
    oz.check(open(victim, "rb").read() == bytes(data), "a run without --verify rewrote a done unit")
    run([d, dest, "--quiet", "--verify"] + opts_list(o))
    with oz.Mount(d, o) as m:
        diff = tree_diff(m.path, dest)
        oz.check(not diff, "--verify did not repair: %s" % diff[:5])


def summary(res):
    """The counts of the run's summary lines."""
    m = re.search(r"(\d+) chunks: (\d+) written \((\d+) copied from the cache\), (\d+) kept", res.stderr)
    oz.check(m, "no summary in: %s" % res.stderr[-600:])
    out = {"total": int(m.group(1)), "written": int(m.group(2)), "from_cache": int(m.group(3)),
           "kept": int(m.group(4))}
    m = re.search(r"source bytes read: (\d+)", res.stderr)
    oz.check(m, "no source bytes in: %s" % res.stderr[-600:])
    out["source_bytes"] = int(m.group(1))
    m = re.search(r"read from DEST: (\d+), from the cache: (\d+)", res.stderr)
    out["lower_from_dest"], out["lower_from_cache"] = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    return out


def swap_source(d, seed):
    """Moves the stack at d aside and puts another one there with the same names, sizes and mtimes
    (so the same fingerprint) but other pixels: a run that reads it writes other bytes. Returns a
    function that puts the original back."""
    orig = d + ".orig"
    os.rename(d, orig)
    names = sorted(os.listdir(orig))
    import tifffile
    shape = tifffile.imread(os.path.join(orig, names[0])).shape
    other = oz.make_stack(d, (len(names),) + shape, np.uint16, seed=seed)
    oz.check(not np.array_equal(other, tifffile.imread([os.path.join(orig, n) for n in names])),
             "the swapped stack has the same pixels")
    for n in names:
        a, b = os.stat(os.path.join(orig, n)), os.stat(os.path.join(d, n))
        oz.check(a.st_size == b.st_size, "swapped slice %s has another size" % n)
        os.utime(os.path.join(d, n), ns=(a.st_atime_ns, a.st_mtime_ns))

    def restore():
        shutil.rmtree(d)
        os.rename(orig, d)
    return restore


def levels_split(options, first, second):
    def case():
        d, _ = stack((37, 70, 90), seed=5)
        full = os.path.join(oz.tmpdir("mat-full"), "out.zarr")
        run([d, full, "--quiet"] + opts_list(options))
        dest = os.path.join(oz.tmpdir("mat-dst"), "out.zarr")
        run([d, dest, "--quiet", "--levels", first] + opts_list(options))
        # The second run must not read the source: it gets other pixels behind the same fingerprint.
        restore = swap_source(d, seed=6)
        try:
            res = run([d, dest, "--quiet", "--levels", second] + opts_list(options))
        finally:
            restore()
        c = summary(res)
        oz.check(c["source_bytes"] == 0, "the source was read: %s" % res.stderr)
        oz.check(c["lower_from_dest"] > 0, "nothing read from DEST: %s" % res.stderr)
        diff = tree_diff(full, dest)
        oz.check(not diff, "--levels %s then %s differs from one run: %s" % (first, second, diff[:5]))
        with oz.Mount(d, options) as m:
            diff = tree_diff(m.path, dest)
            oz.check(not diff, "DEST differs from the mount: %s" % diff[:5])
        # Another range over levels DEST has: the files are checked and kept, not rewritten.
        top = int(options["levels"]) - 1
        probe = os.path.join(dest, str(top), "0", "0", "0")
        before = os.stat(probe)
        c = summary(run([d, dest, "--quiet", "--levels", "%d-%d" % (top, top)] + opts_list(options)))
        oz.check(c["written"] == 0 and c["kept"] > 0 and c["source_bytes"] == 0, "rerun: %s" % c)
        oz.check(os.stat(probe).st_ino == before.st_ino, "a kept file was rewritten")
        oz.check(not tree_diff(full, dest), "rerun changed DEST")
    return case


S.add("levels_0_then_1_up_builds_on_dest_not_source", levels_split({"chunk": 16, "levels": 4}, "0-0", "1-3"))
S.add("levels_01_then_2_up_blosc_odd_chunk", levels_split({"chunk": 13, "levels": 4, "compression": "blosc",
                                                          "blosc_cname": "zstd", "empty": "keep"}, "0-1", "2-3"))


@S.case
def levels_split_missing_or_bad_lower_level_falls_back_to_source():
    d, _ = stack((40, 70, 90), seed=8)
    o = {"chunk": 8, "levels": 4}
    dest = os.path.join(oz.tmpdir("mat-dst"), "out.zarr")
    run([d, dest, "--quiet", "--levels", "0-0"] + opts_list(o))
    units = os.path.join(dest, ".omezarr-materialize", "units")
    # One level-0 row never written (as if its part never ran): manifest and files gone.
    gone = "L0-z1-y2-levels0-0"
    os.remove(os.path.join(units, gone))
    shutil.rmtree(os.path.join(dest, "0", "1", "2"))
    # One level-0 file changed after its run (same size): not used.
    victim = os.path.join(dest, "0", "3", "4", "5")
    data = bytearray(open(victim, "rb").read())
    data[100] ^= 0xFF
    open(victim, "wb").write(bytes(data))
    res = run([d, dest, "--quiet", "--levels", "1-3"] + opts_list(o))
    c = summary(res)
    oz.check(c["source_bytes"] > 0 and c["lower_from_dest"] > 0, "expected some of each: %s" % c)
    oz.check("0/3/4/5 does not match its manifest entry" in res.stderr, "no warning: %s" % res.stderr[-600:])
    with oz.Mount(d, o) as m:
        for lvl in (1, 2, 3):
            diff = tree_diff(os.path.join(m.path, str(lvl)), os.path.join(dest, str(lvl)))
            oz.check(not diff, "level %d differs from the mount: %s" % (lvl, diff[:5]))
    # Without any level 0 in DEST: computed from the source, as before.
    empty_dest = os.path.join(oz.tmpdir("mat-dst"), "out.zarr")
    c = summary(run([d, empty_dest, "--quiet", "--levels", "1-3"] + opts_list(o)))
    oz.check(c["source_bytes"] > 0 and c["lower_from_dest"] == 0, "empty DEST: %s" % c)
    oz.check(not tree_diff(os.path.join(dest, "2"), os.path.join(empty_dest, "2")), "differs")


@S.case
def levels_split_with_other_options_refused_naming_the_difference():
    d, _ = stack()
    dest = os.path.join(oz.tmpdir("mat-dst"), "out.zarr")
    run([d, dest, "--quiet", "--levels", "0-0", "-o", "chunk=16,levels=3,compression=blosc"])
    res = run([d, dest, "--quiet", "--levels", "1-2", "-o", "chunk=16,levels=3"], check=False)
    oz.check(res.returncode != 0 and "0/.zarray: compressor is" in res.stderr and "--overwrite" in res.stderr,
             "other options not refused clearly: %s" % res.stderr)
    # Same options, but a level's .zarray edited since: refused too, naming it.
    path = os.path.join(dest, "0", ".zarray")
    text = open(path).read()
    open(path, "w").write(text.replace('"fill_value": 0', '"fill_value": 7'))
    res = run([d, dest, "--quiet", "--levels", "1-2", "-o", "chunk=16,levels=3,compression=blosc"], check=False)
    oz.check(res.returncode != 0 and "fill_value is 7 in DEST, 0 in this run" in res.stderr,
             "edited .zarray not refused clearly: %s" % res.stderr)
    # The same members in another layout are the same document.
    import json
    open(path, "w").write(json.dumps(json.loads(text), indent=1, sort_keys=True))
    c = summary(run([d, dest, "--quiet", "--levels", "1-2", "-o", "chunk=16,levels=3,compression=blosc"]))
    oz.check(c["source_bytes"] == 0, "level 0 not reused: %s" % c)
    oz.check(open(path).read() == text, "the .zarray was not rewritten as the tree's")


def cache_files(cache, while_written=False):
    """name -> (size, mtime_ns) of every file under the cache directory.

    while_written: a daemon is writing into the cache, renaming its temp files away meanwhile;
    only entry files are listed, and one gone between the listing and the stat is skipped."""
    out = {}
    for r, _, fs in os.walk(cache):
        for f in fs:
            if while_written and f.startswith(".tmp."):
                continue
            try:
                st = os.stat(os.path.join(r, f))
            except FileNotFoundError:
                if while_written:
                    continue
                raise
            out[os.path.join(r, f)] = (st.st_size, st.st_mtime_ns)
    return out


@S.case
def shares_a_mount_cache_read_only():
    d, _ = stack((37, 70, 90), seed=4)
    o = {"chunk": 16, "levels": 4}
    cache = oz.tmpdir("cache")
    copt = ["-o", "cache=%s,%s" % (cache, oz.format_options(o))]
    one = os.path.join(oz.tmpdir("mat-one"), "out.zarr")
    with oz.Mount(d, o, cache=cache) as m:
        # The top level's computation puts levels 2 and 3 into the cache (written in the background).
        for r, _, fs in os.walk(os.path.join(m.path, "3")):
            for f in fs:
                open(os.path.join(r, f), "rb").read()
        deadline = time.monotonic() + 30
        while len(cache_files(os.path.join(cache, "v1"), True)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        # The mount holds the cache's lock: materialize reads it without one.
        c = summary(run([d, one, "--quiet"] + copt))
        oz.check(c["from_cache"] > 0, "nothing copied from the cache while mounted: %s" % c)
        diff = tree_diff(m.path, one)
        oz.check(not diff, "DEST differs from the mount: %s" % diff[:5])
        oz.check(len(os.listdir(os.path.join(m.path, "0"))) > 0, "the mount stopped working")
    # Unmounted (its writes drained): all of levels 2-3 are in the cache.
    before = cache_files(cache)
    two = os.path.join(oz.tmpdir("mat-two"), "out.zarr")
    c = summary(run([d, two, "--quiet"] + copt))
    oz.check(c["from_cache"] > 0, "nothing copied from the cache: %s" % c)
    oz.check(not tree_diff(one, two), "DEST differs from the first one")
    top = os.path.join(oz.tmpdir("mat-top"), "out.zarr")
    c = summary(run([d, top, "--quiet", "--levels", "2-3"] + copt))
    oz.check(c["source_bytes"] == 0 and c["written"] == c["from_cache"] > 0, "levels 2-3: %s" % c)
    for lvl in ("2", "3"):
        oz.check(not tree_diff(os.path.join(one, lvl), os.path.join(top, lvl)), "level %s differs" % lvl)
    oz.check(cache_files(cache) == before, "materialize changed the cache directory")
    # Other options: the cache is not hit, and the tree is still right.
    other = dict(o, compression="blosc")
    three = os.path.join(oz.tmpdir("mat-three"), "out.zarr")
    c = summary(run([d, three, "--quiet", "-o", "cache=%s,%s" % (cache, oz.format_options(other))]))
    oz.check(c["from_cache"] == 0, "a cache of other options was hit: %s" % c)
    with oz.Mount(d, other) as m:
        diff = tree_diff(m.path, three)
        oz.check(not diff, "DEST (other options) differs from the mount: %s" % diff[:5])
    # A directory without a cache: a warning, and everything computed.
    res = run([d, os.path.join(oz.tmpdir("mat-four"), "out.zarr"), "--quiet",
               "-o", "cache=%s,%s" % (oz.tmpdir("nocache"), oz.format_options(o))])
    oz.check("is not used" in res.stderr and summary(res)["from_cache"] == 0, "no warning: %s" % res.stderr)



# ------------------------------------------------------------------ progress bar on a terminal

BAR = re.compile(r"\[[#-]{30}\] \d+/\d+ chunks [0-9.]+ MB/s( ETA \S+)?")
LOG = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d omezarrfs (debug|info|warning|error): ")


def run_on_terminal(args, width, env=None, timeout=300):
    """Runs the tool with stdout and stderr on a pty of `width` columns; returns (status, bytes)."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, width, 0, 0))
    p = subprocess.Popen([tool()] + args, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                         env=dict(os.environ, **(env or {})))
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 1.0)[0]:
                if p.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the last writer closed the slave side
                break
            if not data:
                break
            out += data
    finally:
        os.close(master)
        if p.poll() is None:
            p.kill()
    return p.wait(60), out


def terminal_screen(data, width):
    """What a terminal of `width` columns shows for `data`, as logical lines: [(text, rows)], a
    line that autowrapped over several rows joined again. \r, \n, ESC[K (erase to the end of the
    line) and autowrap are interpreted; any other escape sequence stays as text, so a test sees
    it."""
    rows, wrapped, row, col = [[]], [False], 0, 0  # wrapped[r]: row r continues row r - 1
    s = data.decode("utf-8", errors="replace")
    i = 0
    while i < len(s):
        if s.startswith("\x1b[K", i):
            del rows[row][col:]
            i += 3
            continue
        ch = s[i]
        i += 1
        if ch == "\r":
            col = 0
        elif ch == "\n" or col >= width:
            row, col = row + 1, 0
            if row == len(rows):
                rows.append([])
                wrapped.append(ch != "\n")
            if ch == "\n":
                continue
        if ch not in "\r\n":
            line = rows[row]
            if col >= len(line):
                line.extend(" " * (col - len(line) + 1))
            line[col] = ch
            col += 1
    lines = []
    for r, w in zip(rows, wrapped):
        text = "".join(r)
        if w and lines:
            lines[-1] = (lines[-1][0] + text, lines[-1][1] + 1)
        else:
            lines.append((text, 1))
    return [(t.rstrip(), n) for t, n in lines]


def _progress_case(width):
    def case():
        import robust_util as ru
        d = oz.tmpdir("mat-src")
        oz.make_stack(d, (96, 64, 64), np.uint16, seed=17, compression="zlib", rowsperstrip=16)
        bad = [20, 52, 84]  # headers fine, strip data not deflate: each fails its units mid-run
        for z in bad:
            ru.write_bytes(os.path.join(d, "%d.tif" % z), ru.tiff(64, 64, compression=8, pixels=b"\xff" * 700))
        dest = os.path.join(oz.tmpdir("mat-dst"), "out.zarr")
        rc, out = run_on_terminal([d, dest, "-o", "chunk=16,levels=1,threads=2"], width,
                                  env={"OMEZARRFS_FAULT": "source.read:delay=15"})
        lines = terminal_screen(out, width)
        rows = [t for t, _ in lines]
        text = "\n".join(rows)
        oz.check(rc == 1, "exit %s (expected 1: some units fail); screen:\n%s" % (rc, text[-1500:]))
        bars = [r for r in rows if r.startswith("[")]
        logs = [r for r in rows if LOG.match(r)]
        bad_rows = []
        for r, n in lines:
            if r.startswith("["):
                if n > 1:
                    bad_rows.append(r)  # a bar that wrapped: erasing it would leave a part
                    continue
                # a bar row is a bar and nothing else: whole, or cut to the terminal's width - 1
                # (no wrap; trailing blanks are not on screen); a bar has no ":", a log line has
                whole = BAR.fullmatch(r) and len(r) < width
                cut = len(r) <= width - 1 and re.fullmatch(r"\[[#-]{0,30}\]?[^:]*", r)
                if not (whole or cut):
                    bad_rows.append(r)
            elif BAR.search(r) or re.search(r"\[[#-]{10,}", r):
                bad_rows.append(r)  # a bar inside another line, or a line written into a bar
        oz.check(not bad_rows, "log text and progress bar share a line: %r" % bad_rows[:3])
        failed_logged = [r for r in logs if " error: unit " in r and " failed: " in r]
        oz.check(len(failed_logged) >= 3, "expected a logged failure per failed unit, screen:\n%s" % text[-2000:])
        oz.check(len(bars) == 1, "expected one bar left on screen (the final one), got %d: %s" % (len(bars), bars))
        # The bar was drawn before the failures were logged (they landed while it was shown).
        oz.check(out.count(b"\r\x1b[K2") >= len(failed_logged),
                 "log lines were not printed over a shown bar (erase + line): %r" % out[:600])
        oz.check(rows.index(bars[0]) > max(rows.index(r) for r in failed_logged), "final bar above the log lines")
    return case


S.add("progress_bar_keeps_log_lines_above_it", _progress_case(100))
S.add("progress_bar_narrow_terminal_is_cut_not_wrapped", _progress_case(40))


if __name__ == "__main__":
    S.main()
