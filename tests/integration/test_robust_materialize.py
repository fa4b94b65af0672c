#!/usr/bin/python3
"""Robustness, omezarr-materialize (docs/ROBUSTNESS.md, item 5).

  - kill -9 at random moments, ROBUST_MAT_KILLS times (default 20, x $OZ_SOAK), each followed by
    a resume that is killed in turn; a last run finishes: DEST equals a mount byte for byte,
    --verify finds nothing to redo, no file at a final name is partial;
  - kill -9 at each step of a chunk write (OMEZARRFS_FAULT=materialize.STEP:kill@N), then resume;
  - a full destination (a small tmpfs): exit status 1 naming the failed units and the cause,
    every file at a final name right; after room is made, a re-run completes the tree;
  - stale files caught: a done unit's chunk overwritten with same-size bytes (--verify redoes the
    unit), and a slice of the source rewritten with the same size (the run refuses DEST until
    --overwrite, which rewrites it to the new source).
"""

import os
import random
import subprocess
import time

import numpy as np

import oztest as oz
import robust_util as ru
from test_materialize import tool, tree_diff, opts_list  # the tool's own test helpers

S = oz.Suite("robust_materialize", case_timeout=900 + 10 * int(int(os.environ.get("ROBUST_MAT_KILLS", "20")) * ru.soak_scale()))
OPTS = {"chunk": 8, "levels": 3}


def stack(shape=(64, 96, 96), seed=11):
    d = oz.tmpdir("mat-src")
    return d, oz.make_stack(d, shape, np.uint16, seed=seed, compression="zlib", rowsperstrip=16)


def run(args, check=True, env=None, timeout=600):
    e = dict(os.environ)
    e.update(env or {})
    res = subprocess.run([tool()] + args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=timeout, env=e)
    if check:
        oz.check(res.returncode == 0, "materialize %s failed (%d): %s" % (args, res.returncode, res.stderr[-600:]))
    return res


def final_files(dest):
    """Chunk and metadata files at final names (not temps, not the state dir)."""
    out = []
    for root, dirs, files in os.walk(dest):
        dirs[:] = [x for x in dirs if x != ".omezarr-materialize"]
        out += [os.path.join(root, f) for f in files if not f.startswith(".tmp.")]
    return out


def check_finals_against_mount(dest, mnt):
    """Every file at a final name in DEST (complete tree or not) equals the mount's file."""
    bad = []
    for p in final_files(dest):
        rel = os.path.relpath(p, dest)
        try:
            same = ru.read_file(p) == ru.read_file(os.path.join(mnt, rel))
        except FileNotFoundError:
            same = False
        if not same:
            bad.append(rel)
    return bad


def temps(dest, state=False):
    """Temp files in the tree (state=False) or in the tool's own state directory (state=True)."""
    out = []
    for r, dirs, fs in os.walk(dest):
        if not state and r == dest:
            dirs[:] = [x for x in dirs if x != ".omezarr-materialize"]
        out += [os.path.join(r, f) for f in fs if f.startswith(".tmp.") and
                (not state or "/.omezarr-materialize" in r)]
    return out


def check_complete(d, dest, o):
    """DEST is the mount's tree, apart from temp files (never at final names): a killed run's
    metadata and state temps are swept by a run a minute later, and --delete removes those in
    the tree."""
    with oz.Mount(d, o) as m:
        diff = [x for x in tree_diff(m.path, dest) if "/.tmp." not in x and ": .tmp." not in x]
        oz.check(not diff, "DEST differs from the mount: %s" % diff[:5])
    res = run([d, dest, "--verify"] + opts_list(o))
    oz.check("redone" not in res.stderr, "--verify redid units of a finished tree: %s" % res.stderr[-300:])
    left = len(temps(dest))
    run([d, dest, "--quiet", "--delete"] + opts_list(o))
    oz.check(not temps(dest), "temp files after --delete: %s" % temps(dest)[:3])
    return left


@S.case
def kill9_at_random_moments_then_resume():
    kills = int(int(os.environ.get("ROBUST_MAT_KILLS", "20")) * ru.soak_scale())
    d, _ = stack((96, 160, 160))
    dest = os.path.join(oz.tmpdir("mat-dst"), "out.zarr")
    o = dict(OPTS, threads=2)
    t0 = time.monotonic()
    run([d, os.path.join(oz.tmpdir("mat-time"), "t.zarr"), "--quiet"] + opts_list(o))
    full = time.monotonic() - t0
    rng = random.Random(5)
    landed = 0
    with oz.Mount(d, o) as m:
        for k in range(kills):
            p = subprocess.Popen([tool(), d, dest, "--quiet"] + opts_list(o), stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.0, full / 8))  # a few units per run: most kills land mid-run
            if p.poll() is None:
                p.kill()
                landed += 1
            p.wait()
            bad = check_finals_against_mount(dest, m.path)
            oz.check(not bad, "after kill %d, files at final names differ from the mount: %s" % (k, bad[:5]))
    run([d, dest, "--quiet"] + opts_list(o))
    left = check_complete(d, dest, o)
    ru.figure("materialize_random_kills", kills)
    ru.figure("materialize_temps_left_before_delete", left)
    ru.figure("materialize_state_dir_temps_left", len(temps(dest, state=True)))
    ru.figure("materialize_kills_landing_mid_run", landed)
    ru.figure("materialize_full_run_seconds", "%.2f" % full)


def _step_case(step, nth):
    def run_case():
        d, _ = stack((40, 64, 64), seed=12)
        dest = os.path.join(oz.tmpdir("mat-dst"), "out.zarr")
        res = run([d, dest, "--quiet"] + opts_list(OPTS), check=False,
                  env={"OMEZARRFS_FAULT": "materialize.%s:kill@%d" % (step, nth)})
        oz.check(res.returncode == -9, "the fault point did not kill the run (exit %s)" % res.returncode)
        if step != "renamed":
            oz.check(temps(dest), "no temp file left by a kill at %s" % step)
        with oz.Mount(d, OPTS) as m:
            bad = check_finals_against_mount(dest, m.path)
            oz.check(not bad, "files at final names differ after the kill: %s" % bad[:5])
        run([d, dest, "--quiet"] + opts_list(OPTS))
        check_complete(d, dest, OPTS)
    return run_case


for _step in ("created", "half_written", "written", "renamed"):
    S.add("kill_at_materialize_%s" % _step, _step_case(_step, 7))


@S.case
def full_destination_then_room_made():
    if os.geteuid() != 0:
        raise oz.Skip("needs root (tmpfs)")
    d, _ = stack((48, 96, 96), seed=13)
    fs_ = oz.tmpdir("tmpfs")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", fs_], check=True)
    try:
        dest = os.path.join(fs_, "out.zarr")
        res = run([d, dest, "--quiet"] + opts_list(OPTS), check=False)
        oz.check(res.returncode == 1, "exit %s on a full DEST: %s" % (res.returncode, res.stderr[-300:]))
        oz.check("No space left on device" in res.stderr and "failed" in res.stderr,
                 "the message names neither the cause nor the failed units: %s" % res.stderr[-400:])
        with oz.Mount(d, OPTS) as m:
            bad = check_finals_against_mount(dest, m.path)
        oz.check(not bad, "files at final names on the full DEST differ from the mount: %s" % bad[:5])
        ru.figure("full_dest_failed_units", res.stderr.count("\n  "))
        subprocess.run(["mount", "-o", "remount,size=64m", fs_], check=True)
        run([d, dest, "--quiet"] + opts_list(OPTS))
        check_complete(d, dest, OPTS)
    finally:
        subprocess.run(["umount", "-l", fs_], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@S.case
def stale_same_size_chunks_caught_by_verify():
    d, _ = stack((40, 64, 64), seed=14)
    dest = os.path.join(oz.tmpdir("mat-dst"), "out.zarr")
    run([d, dest, "--quiet"] + opts_list(OPTS))
    chunks = [p for p in final_files(dest) if not os.path.basename(p).startswith(".")]
    rng = random.Random(2)
    victims = rng.sample(chunks, 5)
    for p in victims:  # same size, other bytes: a stale copy, a bit rot, a botched rsync
        b = bytearray(ru.read_file(p))
        b[rng.randrange(len(b))] ^= 0x40
        ru.write_bytes(p, bytes(b))
    res = run([d, dest, "--quiet", "--verify"] + opts_list(OPTS))
    check_complete(d, dest, OPTS)
    ru.figure("stale_same_size_files_repaired", len(victims))


@S.case
def source_rewritten_same_size_refused_until_overwrite():
    """Uncompressed slices: the rewritten slice has the same size, only its mtime and bytes
    differ. Every chunk file in DEST has the same size as its replacement, so only the source
    fingerprint (recorded in DEST's state) can tell."""
    d = oz.tmpdir("mat-src")
    vol = oz.make_stack(d, (40, 64, 64), np.uint16, seed=15)
    dest = os.path.join(oz.tmpdir("mat-dst"), "out.zarr")
    run([d, dest, "--quiet"] + opts_list(OPTS))
    p3 = os.path.join(d, "3.tif")
    before = os.path.getsize(p3)
    new = oz.make_volume((1,) + vol.shape[1:], np.uint16, seed=77, mask=False)[0]
    oz.write_slice(p3, new)
    oz.check(os.path.getsize(p3) == before, "fixture: the new slice has another size")
    res = run([d, dest, "--quiet"] + opts_list(OPTS), check=False)
    oz.check(res.returncode != 0 and "--overwrite" in res.stderr,
             "a DEST of the old source was not refused: %s" % res.stderr[-300:])
    run([d, dest, "--quiet", "--overwrite"] + opts_list(OPTS))
    check_complete(d, dest, OPTS)


if __name__ == "__main__":
    S.main()
