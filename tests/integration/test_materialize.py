#!/usr/bin/python3
"""omezarr-materialize: DEST equals a mount byte for byte (recursive compare) and reads right with
zarr-python; kill -9 then resume gives the right tree; N parts in parallel give the same tree as
one run; dry-run writes nothing; a foreign DEST is refused; --delete and --verify work."""
import filecmp
import os
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


if __name__ == "__main__":
    S.main()
