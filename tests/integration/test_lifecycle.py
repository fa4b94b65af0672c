#!/usr/bin/python3
"""Daemon lifecycle: SIGTERM unmounts cleanly; a daemon killed with SIGKILL leaves a stale
mountpoint, and a new mount on it says exactly how to clear it; the mount serves again after."""
import os
import signal
import subprocess
import time

import numpy as np

import oztest as oz

S = oz.Suite("lifecycle")


def stack():
    d = oz.tmpdir("life")
    return d, oz.make_stack(d, (9, 40, 50), np.uint16, seed=77)


def wait(pred, seconds, what):
    deadline = time.monotonic() + seconds
    while not pred():
        oz.check(time.monotonic() < deadline, "timed out waiting for " + what)
        time.sleep(0.05)


@S.case
def sigterm_unmounts_and_exits():
    d, vol = stack()
    m = oz.Mount(d, {"chunk": 16, "levels": 2})
    with m:
        oz.check(m.pids, "daemon pid not found")
        data = oz.read_level(m.path, 0)
        oz.assert_array_equal(data, vol, "level 0 before SIGTERM")
        for p in m.pids:
            os.kill(p, signal.SIGTERM)
        wait(lambda: not oz.is_mounted(m.path), 15, "the mount to go away after SIGTERM")
        wait(lambda: not any(oz._alive(p) for p in m.pids), 15, "the daemon to exit after SIGTERM")


@S.case
def stale_mount_after_sigkill_gets_a_remedy():
    d, vol = stack()
    m = oz.Mount(d, {"chunk": 16, "levels": 2})
    with m:
        for p in m.pids:
            os.kill(p, signal.SIGKILL)
        wait(lambda: not any(oz._alive(p) for p in m.pids), 15, "the daemon to die")
        try:
            os.stat(os.path.join(m.path, ".zgroup"))
            oz.check(False, "stat on a dead mount succeeded")
        except OSError as e:
            oz.check(e.errno in (107, 103), "expected ENOTCONN/ECONNABORTED, got %r" % e)
        res = subprocess.run([oz.binary(), d, m.path, "-o", "cache=%s" % oz.tmpdir("cache")],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        oz.check(res.returncode != 0, "mount on a stale mountpoint succeeded")
        oz.check("fusermount3 -u " + m.path in res.stderr,
                 "no remedy in the message: %r" % res.stderr)
        subprocess.run(["fusermount3", "-u", "-z", m.path], check=False)
        with oz.Mount(d, {"chunk": 16, "levels": 2}, mountpoint=m.path) as m2:
            oz.assert_array_equal(oz.read_level(m2.path, 0), vol, "level 0 after remedy")


if __name__ == "__main__":
    S.main()
