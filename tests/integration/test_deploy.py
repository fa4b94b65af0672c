#!/usr/bin/python3
"""Deployment, for real: `cmake --install` into a fresh prefix (binaries, man pages, systemd units,
examples, and the mount(8) helper in /sbin), then
- mount(8): `mount -t fuse.omezarrfs` through the installed helper and fuse3's mount.fuse3 (the
  prefix is not on PATH), options with commas in all three spellings, umount; failures give the
  reason and a non-zero status; a stale mount point gets its remedy; auto_unmount releases the
  mount point of a daemon killed with SIGKILL;
- fstab: the documented lines (systemd/fstab.example as installed) with this test's paths, read
  by the real parsers: findmnt --verify, `mount -T FILE`, systemd-fstab-generator;
- systemd: the installed units pass `systemd-analyze verify` (no output at all) and its offline
  security review; each unit's ExecStart, expanded as systemd expands it from the documented
  example.conf, runs under `env -i` (no HOME, no PATH) inside the unit's capability bounding set,
  no_new_privs and seccomp filters (setpriv + sandbox_exec.py, as systemd is not PID 1 here),
  reports READY=1 only once the mount answers, stops cleanly on SIGTERM, and restarts after a
  SIGKILL; omezarr-serve@ runs as an unprivileged user and serves the mount.
The test owns /sbin/mount.fuse.omezarrfs while it runs: an existing one is put back at the end.
"""
import atexit
import errno
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time

import numpy as np

import oztest as oz
import ozserve

S = oz.Suite("deploy", case_timeout=400)
HELPER = "/sbin/mount.fuse.omezarrfs"
SAVED_HELPER = HELPER + ".oztest-saved"
SANDBOX = os.path.join(oz.HERE, "sandbox_exec.py")
_INSTALL = {}


# ----------------------------------------------------------------------------------------------
# The installation (once per run)


def _restore_helper():
    prefix = _INSTALL.get("prefix")
    try:
        with open(HELPER) as f:
            ours = prefix is not None and prefix in f.read()
    except OSError:
        ours = False
    if ours:
        os.unlink(HELPER)
    if os.path.lexists(SAVED_HELPER):
        os.replace(SAVED_HELPER, HELPER)


def installed():
    """cmake --install BUILD --prefix P (once). Returns a dict of the installed paths."""
    if _INSTALL:
        return _INSTALL
    build = os.environ.get("OMEZARRFS_BUILD") or os.path.join(oz.REPO, "build")
    prefix = oz.tmpdir("prefix")
    for d in (os.path.dirname(prefix), prefix):  # as /usr/local is: other users run from it
        os.chmod(d, 0o755)
    if os.path.lexists(HELPER) and not os.path.lexists(SAVED_HELPER):
        os.replace(HELPER, SAVED_HELPER)
    atexit.register(_restore_helper)
    _INSTALL["prefix"] = prefix
    res = subprocess.run(["cmake", "--install", build, "--prefix", prefix], capture_output=True,
                         text=True, timeout=300)
    oz.check(res.returncode == 0, "cmake --install failed: %s %s" % (res.stdout, res.stderr))
    _INSTALL.update(
        log=res.stdout,
        bin=os.path.join(prefix, "bin"),
        man=os.path.join(prefix, "share", "man"),
        units=os.path.join(prefix, "lib", "systemd", "system"),
        examples=os.path.join(prefix, "share", "doc", "omezarrfs", "examples"),
        manifest=os.path.join(build, "install_manifest.txt"))
    _INSTALL["omezarrfs"] = os.path.join(_INSTALL["bin"], "omezarrfs")
    return _INSTALL


def stack(shape=(9, 40, 50), seed=3):
    d = oz.tmpdir("src")
    return d, oz.make_stack(d, shape, np.uint16, seed=seed)


def run(cmd, timeout=120, env=None):
    """Run a command that may start a daemon (output to files, so a daemon holding the pipe
    cannot hang us)."""
    r = oz.run_binary(cmd, timeout) if env is None else _run_env(cmd, timeout, env)
    return r.returncode, r.stdout + r.stderr


def _run_env(cmd, timeout, env):
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout, env=env)
    return oz.RunResult(p.returncode, p.stdout, p.stderr)


def wait_for(pred, seconds, what):
    deadline = time.monotonic() + seconds
    while not pred():
        oz.check(time.monotonic() < deadline, "timed out after %ss waiting for %s" % (seconds, what))
        time.sleep(0.05)


def daemon_pids(mnt):
    return oz._daemon_pids(mnt, installed()["omezarrfs"])


class Mount8:
    """mount -t fuse.omezarrfs SRC MNT -o OPTS; always unmounted (and its daemon reaped)."""

    def __init__(self, src, opts, mnt=None, kind=("-t", "fuse.omezarrfs")):
        self.src, self.opts = src, opts
        self.path = mnt or oz.tmpdir("mnt")
        self.kind = list(kind)

    def __enter__(self):
        installed()
        rc, out = run(["mount"] + self.kind + [self.src, self.path, "-o", self.opts])
        self.pids = daemon_pids(self.path)
        if rc != 0 or not oz.is_mounted(self.path):
            self.__exit__()
            raise oz.CheckFailed("mount -t fuse.omezarrfs %s %s -o %s: exit %s, mounted=%s: %s"
                                 % (self.src, self.path, self.opts, rc,
                                    oz.is_mounted(self.path), out.strip()))
        return self

    def __exit__(self, *exc):
        if oz.is_mounted(self.path):
            subprocess.run(["umount", "-l", self.path], capture_output=True)
        for p in self.pids:
            if oz._alive(p):
                os.kill(p, signal.SIGKILL)
        return False


# ----------------------------------------------------------------------------------------------
# cmake --install


@S.case
def install_layout_and_man_pages():
    inst = installed()
    p = inst["prefix"]
    want = ["bin/omezarrfs", "bin/omezarr-materialize", "bin/omezarr-serve",
            "share/man/man1/omezarrfs.1", "share/man/man1/omezarr-materialize.1",
            "share/man/man1/omezarr-serve.1", "lib/systemd/system/omezarrfs@.service",
            "lib/systemd/system/omezarr-serve@.service",
            "share/doc/omezarrfs/examples/example.conf",
            "share/doc/omezarrfs/examples/fstab.example"]
    ck = oz.Checks()
    for rel in want:
        ck.expect(os.path.isfile(os.path.join(p, rel)), "not installed: " + rel)
    for rel in want[:3]:
        ck.expect(os.access(os.path.join(p, rel), os.X_OK), "not executable: " + rel)
    ck.expect(os.access(HELPER, os.X_OK), HELPER + " not installed")
    with open(inst["manifest"]) as f:
        manifest = f.read().split()
    for rel in want:
        ck.expect(os.path.join(p, rel) in manifest, "not in install_manifest.txt: " + rel)
    ck.expect(HELPER in manifest, HELPER + " not in install_manifest.txt")
    with open(HELPER) as f:
        helper = f.read()
    ck.expect("PATH='%s':" % inst["bin"] in helper and "exec '" in helper,
              "helper does not put %s first on PATH: %r" % (inst["bin"], helper))
    mount_fuse3 = re.search(r"exec '([^']+)'", helper)
    ck.expect(mount_fuse3 and os.access(mount_fuse3.group(1), os.X_OK),
              "the helper's mount.fuse3 is not there: %r" % helper)
    for unit in ("omezarrfs@.service", "omezarr-serve@.service"):
        with open(os.path.join(inst["units"], unit)) as f:
            text = f.read()
        ck.expect("ExecStart=%s/" % inst["bin"] in text, unit + ": ExecStart not in the prefix")
        ck.expect("@BINDIR@" not in text, unit + ": unfilled @BINDIR@")
    # Man pages: found by man(1), clean for groff, and they carry every line of --help.
    env = dict(os.environ, MANPATH=inst["man"] + ":", LC_ALL="C.UTF-8", MANWIDTH="200")
    for prog in ("omezarrfs", "omezarr-materialize", "omezarr-serve"):
        page = os.path.join(inst["man"], "man1", prog + ".1")
        r = subprocess.run(["man", "-w", prog], env=env, capture_output=True, text=True)
        ck.expect(r.returncode == 0 and r.stdout.strip() == page,
                  "man -w %s: %r %r" % (prog, r.stdout, r.stderr))
        r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", page], env=env,
                           capture_output=True, text=True)
        ck.expect(r.returncode == 0 and not r.stderr.strip(), "groff warnings in %s: %s"
                  % (prog, r.stderr))
        text = subprocess.run(["man", "-l", "-P", "cat", page], env=env, capture_output=True,
                              text=True).stdout
        text = " ".join(text.replace("\u2010", "-").replace("\u2212", "-").split())
        helptext = subprocess.run([os.path.join(inst["bin"], prog), "--help"],
                                  env=dict(os.environ, COLUMNS="100"), capture_output=True,
                                  text=True).stdout
        for line in helptext.splitlines():
            line = " ".join(line.split())
            ck.expect(not line or line in text, "%s.1 lacks the --help line %r" % (prog, line))
    ck.done()


# ----------------------------------------------------------------------------------------------
# mount(8)


@S.case
def mount8_options_with_commas_then_umount():
    src, vol = stack()
    window = ((1, 8), (5, 30), (2, 40))
    want = oz.reference_level0(vol, window)
    extra = "ro,nofail,_netdev,noatime,x-systemd.automount,chunk=16,levels=2"
    for name, sep in (("escaped", "\\,"), ("slashes", "/"), ("plain", ",")):
        opts = "%s,window=%s,voxel_size=%s,cache=%s" % (
            extra, oz.window_opt(window, sep), sep.join(["0.5", "0.5", "2"]), oz.tmpdir("cache"))
        with Mount8(src, opts) as m:
            oz.check(len(m.pids) == 1, "%s: daemon of the installed binary not found (%r)"
                     % (name, m.pids))
            meta = oz.read_json(os.path.join(m.path, "0", ".zarray"))
            oz.check(meta["shape"] == list(want.shape) and meta["chunks"] == [16] * 3,
                     "%s: .zarray %r, want shape %r" % (name, meta, want.shape))
            scale = oz.read_json(os.path.join(m.path, ".zattrs"))["multiscales"][0][
                "datasets"][0]["coordinateTransformations"][0]["scale"]
            oz.check(scale == [2.0, 0.5, 0.5], "%s: voxel_size -> scale %r" % (name, scale))
            oz.assert_array_equal(oz.read_level(m.path, 0), want, name + " level 0")
            rc, out = run(["umount", m.path])
            oz.check(rc == 0 and not oz.is_mounted(m.path), "%s: umount: %s %s" % (name, rc, out))
            wait_for(lambda: not any(oz._alive(p) for p in m.pids), 15,
                     "the daemon to exit after umount")


@S.case
def mount8_failure_reports_reason_and_status():
    src, _ = stack()
    empty = oz.tmpdir("empty")
    cases = [
        ("a bad option", src, "levels=99", ["levels=99", "out of range"]),
        ("an unknown option", src, "chunck=64", ["chunck"]),
        ("a missing source", src + "-missing", "", [src + "-missing"]),
        ("a source without slices", empty, "", [empty]),
    ]
    for what, source, opts, needles in cases:
        mnt = oz.tmpdir("mnt")
        cmd = ["mount", "-t", "fuse.omezarrfs", source, mnt]
        if opts:
            cmd += ["-o", opts + ",cache=" + oz.tmpdir("cache")]
        else:
            cmd += ["-o", "cache=" + oz.tmpdir("cache")]
        rc, out = run(cmd)
        mounted = oz.is_mounted(mnt)
        if mounted:
            subprocess.run(["umount", "-l", mnt])
        oz.check(rc != 0 and not mounted, "%s: exit %s, mounted=%s" % (what, rc, mounted))
        oz.check(all(n in out for n in needles) and "omezarrfs:" in out,
                 "%s: the message does not give the reason (%r): %r" % (what, needles, out))
        oz.check(not daemon_pids(mnt), "%s: a daemon was left running" % what)


@S.case
def mount8_stale_mountpoint_gets_the_remedy():
    src, vol = stack()
    opts = "chunk=16,levels=2,cache=" + oz.tmpdir("cache")
    with Mount8(src, opts) as m:
        for p in m.pids:
            os.kill(p, signal.SIGKILL)
        wait_for(lambda: not any(oz._alive(p) for p in m.pids), 15, "the daemon to die")
        try:
            os.statvfs(m.path)
            oz.check(False, "statvfs on a dead mount succeeded")
        except OSError as e:
            oz.check(e.errno in (errno.ENOTCONN, errno.ECONNABORTED), "dead mount: %r" % e)
        rc, out = run(["mount", "-t", "fuse.omezarrfs", src, m.path, "-o", opts])
        oz.check(rc != 0, "mount over a stale mount point succeeded")
        oz.check("Transport endpoint is not connected" in out and
                 "fusermount3 -u " + m.path in out, "no exact remedy in %r" % out)
        rc, out = run(["fusermount3", "-u", m.path])  # the remedy, as printed
        oz.check(rc == 0 and not oz.is_mounted(m.path), "the remedy failed: %s" % out)
    with Mount8(src, opts, mnt=m.path) as m2:
        oz.assert_array_equal(oz.read_level(m2.path, 0), vol, "level 0 after the remedy")


@S.case
def mount8_auto_unmount_releases_a_killed_daemons_mountpoint():
    src, vol = stack()
    opts = "auto_unmount,chunk=16,levels=2,cache=" + oz.tmpdir("cache")
    with Mount8(src, opts) as m:
        oz.check(len(m.pids) == 1, "daemon pid: %r" % m.pids)
        oz.read_level(m.path, 0)
        os.kill(m.pids[0], signal.SIGKILL)
        wait_for(lambda: not oz.is_mounted(m.path), 15,
                 "auto_unmount to release the mount point after SIGKILL")
        oz.check(os.listdir(m.path) == [], "mount point is not an empty directory again")
    with Mount8(src, opts, mnt=m.path) as m2:
        oz.assert_array_equal(oz.read_level(m2.path, 0), vol, "level 0 after remount")


# ----------------------------------------------------------------------------------------------
# fstab


def documented_fstab(paths):
    """The non-comment lines of the installed fstab.example, with this test's paths."""
    with open(os.path.join(installed()["examples"], "fstab.example")) as f:
        lines = [line for line in f.read().splitlines() if line.strip() and
                 not line.startswith("#")]
    oz.check(len(lines) == 2, "fstab.example: expected a TIFF and a remote line: %r" % lines)
    text = "\n".join(lines) + "\n"
    for old, new in paths.items():
        oz.check(old in text, "fstab.example no longer mentions %s" % old)
        text = text.replace(old, new)
    return text


@S.case
def fstab_documented_lines_mount_with_mount_T():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from faultserver import FaultServer
    src, vol = stack((20, 40, 50))
    mnt, remote_mnt = oz.tmpdir("mnt"), oz.tmpdir("mnt")
    # The remote line's store: a password-protected loopback server standing in for https://host.
    store_root = oz.tmpdir("remote")
    remote_vol = oz.make_volume((20, 40, 50), np.dtype(np.uint16), seed=4)
    oz.make_zarr(os.path.join(store_root, "scroll.zarr"), remote_vol, (16, 16, 16))
    cred = os.path.join(oz.tmpdir("etc"), "scroll-remote.cred")
    with open(cred, "w") as f:
        f.write("lab:fstab-pw-77\n")
    os.chmod(cred, 0o600)
    origin = FaultServer(root=store_root).start()
    origin.add("*", "auth", user="lab", password="fstab-pw-77")
    fstab = os.path.join(oz.tmpdir("fstab"), "fstab")
    with open(fstab, "w") as f:
        f.write(documented_fstab({
            "/data/volumes/20230205180739": src, "/mnt/scroll1.zarr": mnt,
            "/var/cache/omezarrfs/scroll1": oz.tmpdir("cache"),
            "https://host/path/scroll.zarr": origin.url("scroll.zarr"),
            "/etc/omezarrfs/scroll-remote.cred": cred,
            "/mnt/scroll-remote.zarr": remote_mnt,
            "/var/cache/omezarrfs/scroll-remote": oz.tmpdir("cache")}))
    try:
        _fstab_mounts(fstab, mnt, vol, remote_mnt, remote_vol)
    finally:
        origin.stop()


def _fstab_mounts(fstab, mnt, vol, remote_mnt, remote_vol):
    # util-linux's own check of the file: no parse errors and no errors.
    r = subprocess.run(["findmnt", "--verify", "--verbose", "--tab-file", fstab],
                       capture_output=True, text=True)
    out = r.stdout + r.stderr
    oz.check("0 parse errors, 0 errors" in out, "findmnt --verify: %s" % out)
    oz.check("userspace options: nofail,x-systemd.automount" in out,
             "fstab-only options not recognised as such: %s" % out)
    # mount -T FILE MOUNTPOINT: the real parser reads our line and runs the helper.
    rc, out = run(["mount", "-T", fstab, mnt])
    try:
        oz.check(rc == 0 and oz.is_mounted(mnt), "mount -T: exit %s: %s" % (rc, out))
        meta = oz.read_json(os.path.join(mnt, "0", ".zarray"))
        oz.check(meta["chunks"] == [128] * 3, "chunk=128 not applied: %r" % meta)
        attrs = oz.read_json(os.path.join(mnt, ".zattrs"))["multiscales"][0]
        oz.check(len(attrs["datasets"]) == 6, "levels=6 not applied")
        oz.check(attrs["axes"][0].get("unit") == "micrometer" and
                 attrs["datasets"][0]["coordinateTransformations"][0]["scale"] == [7.91] * 3,
                 "unit/voxel_size not applied: %r" % attrs)
        oz.assert_array_equal(oz.read_level(mnt, 0, 6), vol, "level 0 via fstab")
        rc, out = run(["umount", mnt])
        oz.check(rc == 0 and not oz.is_mounted(mnt), "umount: %s" % out)
    finally:
        if oz.is_mounted(mnt):
            subprocess.run(["umount", "-l", mnt])
    # The remote line, with its credentials file, mounts the password-protected store.
    rc, out = run(["mount", "-T", fstab, remote_mnt])
    try:
        oz.check(rc == 0 and oz.is_mounted(remote_mnt), "mount -T (remote): exit %s: %s" % (rc, out))
        oz.assert_array_equal(oz.read_level(remote_mnt, 0, 6), remote_vol, "level 0 of the remote line")
        rc, out = run(["umount", remote_mnt])
        oz.check(rc == 0 and not oz.is_mounted(remote_mnt), "umount (remote): %s" % out)
    finally:
        if oz.is_mounted(remote_mnt):
            subprocess.run(["umount", "-l", remote_mnt])


@S.case
def fstab_documented_lines_make_valid_systemd_units():
    inst = installed()
    src, _ = stack()
    fstab = os.path.join(oz.tmpdir("fstab"), "fstab")
    with open(fstab, "w") as f:
        f.write(documented_fstab({"/data/volumes/20230205180739": src}))
    out_dirs = [oz.tmpdir("gen") for _ in range(3)]
    gen = "/lib/systemd/system-generators/systemd-fstab-generator"
    r = subprocess.run([gen] + out_dirs, env=dict(os.environ, SYSTEMD_FSTAB=fstab),
                       capture_output=True, text=True)
    oz.check(r.returncode == 0, "systemd-fstab-generator: %s" % r.stderr)
    normal = out_dirs[0]
    units = {
        "mnt-scroll1.zarr.mount": "local-fs.target.wants/mnt-scroll1.zarr.automount",
        "mnt-scroll\\x2dremote.zarr.mount":
            "remote-fs.target.wants/mnt-scroll\\x2dremote.zarr.automount",
    }
    for unit, wanted_by in units.items():
        path = os.path.join(normal, unit)
        oz.check(os.path.isfile(path), "generator made no %s: %r" % (unit, os.listdir(normal)))
        with open(path) as f:
            text = f.read()
        oz.check("Type=fuse.omezarrfs" in text and "Options=ro," in text and
                 "TimeoutSec=15min" in text, "%s: %s" % (unit, text))
        oz.check(os.path.isfile(path.replace(".mount", ".automount")), "no automount for " + unit)
        oz.check(os.path.lexists(os.path.join(normal, wanted_by)),
                 "%s is not pulled in by its target (%s)" % (unit, wanted_by))
        r = subprocess.run(["systemd-analyze", "verify", path, path.replace(".mount", ".automount")],
                           capture_output=True, text=True, env=dict(os.environ, MANPATH=inst["man"] + ":"))
        oz.check(r.returncode == 0 and not (r.stdout + r.stderr).strip(),
                 "systemd-analyze verify %s: %s" % (unit, r.stdout + r.stderr))


# ----------------------------------------------------------------------------------------------
# systemd units


def parse_unit(path):
    sections, cur = {}, None
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                cur = line.strip("[]")
                sections.setdefault(cur, [])
                continue
            k, _, v = line.partition("=")
            sections[cur].append((k.strip(), v.strip()))
    return sections


def unit_values(unit, section, key):
    return [v for k, v in unit.get(section, []) if k == key]


def env_file(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            k, _, v = line.partition("=")
            v = v.strip()
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
                v = v[1:-1]
            env[k.strip()] = v
    return env


def expand_exec(cmdline, env, specifiers):
    """ExecStart as systemd runs it: specifiers, then ${VAR} (one word) and $VAR (split)."""
    cmdline = re.sub(r"%(.)", lambda m: specifiers[m.group(1)], cmdline)
    words = []
    for w in shlex.split(cmdline):
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", w)
        if m:
            words += env.get(m.group(1), "").split()
        else:
            words.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}",
                                lambda m: env.get(m.group(1), ""), w))
    return words


class UnitRun:
    """Runs a unit's ExecStart as systemd would for instance NAME: Environment=, then the
    EnvironmentFile (this test's copy of /etc/omezarrfs/NAME.conf), specifiers %i and %C (a temp
    cache root), CacheDirectory= created; under env -i with only what systemd itself passes
    (NOTIFY_SOCKET, CACHE_DIRECTORY); inside the unit's capability bounding set, no_new_privs and
    seccomp filters; as a dynamic user if DynamicUser=yes."""

    DYNAMIC_UID = 61923  # in systemd's DynamicUser range

    def __init__(self, unit_name, instance, conf_path, cache_root):
        self.path = os.path.join(installed()["units"], unit_name)
        self.unit = parse_unit(self.path)
        self.instance, self.conf_path, self.cache_root = instance, conf_path, cache_root
        self.proc = None

    def command(self):
        u = self.unit
        files = unit_values(u, "Service", "EnvironmentFile")
        oz.check(files == ["/etc/omezarrfs/%i.conf"], "EnvironmentFile: %r" % files)
        env = {}
        for assignments in unit_values(u, "Service", "Environment"):
            for a in shlex.split(assignments):
                k, _, v = a.partition("=")
                env[k] = v
        env.update(env_file(self.conf_path))
        spec = {"i": self.instance, "C": self.cache_root, "%": "%"}
        (execstart,) = unit_values(u, "Service", "ExecStart")
        cmd = expand_exec(execstart, env, spec)
        sysenv = {}
        for d in unit_values(u, "Service", "CacheDirectory"):
            d = os.path.join(self.cache_root, re.sub(r"%(.)", lambda m: spec[m.group(1)], d))
            os.makedirs(d, mode=0o700, exist_ok=True)
            sysenv["CACHE_DIRECTORY"] = d
        wrap = ["setpriv"]
        if unit_values(u, "Service", "NoNewPrivileges") == ["yes"]:
            wrap.append("--no-new-privs")
        caps = unit_values(u, "Service", "CapabilityBoundingSet")
        if caps:
            keep = caps[-1].split()
            wrap.append("--bounding-set=-all" + "".join(
                ",+" + c.lower().replace("cap_", "") for c in keep))
        if unit_values(u, "Service", "DynamicUser") == ["yes"]:
            wrap += ["--reuid=%d" % self.DYNAMIC_UID, "--regid=%d" % self.DYNAMIC_UID,
                     "--clear-groups"]
        allow, deny = [], []
        for v in unit_values(u, "Service", "SystemCallFilter"):
            (deny if v.startswith("~") else allow).extend(v.lstrip("~").split())
        seccomp = ["/usr/bin/python3", SANDBOX, "--syscalls", ",".join(allow)]
        if deny:
            seccomp += ["--deny-syscalls", ",".join(deny)]
        fams = unit_values(u, "Service", "RestrictAddressFamilies")
        if fams:
            seccomp += ["--address-families", ",".join(fams[-1].split())]
        if unit_values(u, "Service", "MemoryDenyWriteExecute") == ["yes"]:
            seccomp.append("--mdwe")
        return wrap + ["--"] + seccomp + ["--"] + cmd, sysenv, cmd

    def start(self):
        cmd, sysenv, self.exec_argv = self.command()
        work = oz.tmpdir("unit")
        os.chmod(work, 0o755)
        self.notify_path = os.path.join(work, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.notify_path)
        os.chmod(self.notify_path, 0o777)  # a DynamicUser must be able to send to it
        self.err_path = os.path.join(work, "stderr")
        env = dict(sysenv, NOTIFY_SOCKET=self.notify_path)
        with open(self.err_path, "wb") as fe:
            self.proc = subprocess.Popen(["env", "-i"] + ["%s=%s" % kv for kv in env.items()] + cmd,
                                         stdin=subprocess.DEVNULL, stdout=fe, stderr=fe)
        return self

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_ready(self, seconds=60):
        self.sock.settimeout(0.2)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise oz.CheckFailed("%s exited with %s before READY=1: %s" % (
                    os.path.basename(self.path), self.proc.returncode, self.stderr()))
            try:
                msg = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            if "READY=1" in msg.split("\n"):
                m = re.search(r"MAINPID=(\d+)", msg)
                oz.check(m is None or int(m.group(1)) == self.proc.pid,
                         "MAINPID %s is not the process systemd started (%d)" % (
                             m and m.group(1), self.proc.pid))
                return
        raise oz.CheckFailed("no READY=1 within %ss: %s" % (seconds, self.stderr()))

    def stop(self, sig=signal.SIGTERM, want_status=0):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise oz.CheckFailed("%s did not stop within 30 s" % os.path.basename(self.path))
        if want_status is not None:
            oz.check(rc == want_status, "%s: exit status %s after signal %d (want %s): %s" % (
                os.path.basename(self.path), rc, sig, want_status, self.stderr()))

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.sock.close()


def example_conf(source, mountpoint, port=None):
    """The installed example.conf with this test's source, mount point (and port)."""
    with open(os.path.join(installed()["examples"], "example.conf")) as f:
        text = f.read()
    for old, new in (("/data/volumes/20230205180739", source),
                     ("/mnt/scroll1.zarr", mountpoint)):
        oz.check(old in text, "example.conf no longer mentions " + old)
        text = text.replace(old, new)
    if port is not None:
        text = re.sub(r"(?m)^SERVE_PORT=.*$", "SERVE_PORT=%d" % port, text)
    path = os.path.join(oz.tmpdir("etc"), "conf")
    with open(path, "w") as f:
        f.write(text)
    return path


@S.case
def units_pass_systemd_analyze_verify_and_security():
    inst = installed()
    env = dict(os.environ, MANPATH=inst["man"] + ":")
    d = oz.tmpdir("units")
    paths = []
    for unit in ("omezarrfs@.service", "omezarr-serve@.service"):
        src = os.path.join(inst["units"], unit)
        inst_copy = os.path.join(d, unit.replace("@", "@scroll1"))
        shutil.copy(src, inst_copy)
        paths += [src, inst_copy]
    r = subprocess.run(["systemd-analyze", "verify"] + paths, env=env, capture_output=True,
                       text=True)
    out = (r.stdout + r.stderr).strip()
    oz.check(r.returncode == 0 and not out, "systemd-analyze verify: exit %d: %s" % (
        r.returncode, out))
    for unit, limit in (("omezarrfs@.service", 5.0), ("omezarr-serve@.service", 2.0)):
        r = subprocess.run(["systemd-analyze", "security", "--offline=true",
                            os.path.join(inst["units"], unit)], env=env, capture_output=True,
                           text=True)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
        oz.check(m and float(m.group(1)) <= limit, "%s: security exposure %s (at most %s): %s" % (
            unit, m and m.group(1), limit, (r.stdout + r.stderr)[-500:]))


@S.case
def unit_command_runs_without_login_environment():
    src, vol = stack()
    mnt = oz.tmpdir("mnt")
    conf = example_conf(src, mnt)
    cache_root = oz.tmpdir("varcache")
    u = UnitRun("omezarrfs@.service", "scroll1", conf, cache_root)
    oz.check(u.command()[2][:1] == [installed()["omezarrfs"]] and "-f" in u.command()[2],
             "ExecStart is not the installed omezarrfs in the foreground: %r" % (u.command()[2],))
    try:
        u.start()
        u.wait_ready()
        oz.check(oz.is_mounted(mnt), "READY=1 before the mount was in place")
        oz.assert_array_equal(oz.read_level(mnt, 0, 6), vol, "level 0 through the unit")
        cache = os.path.join(cache_root, "omezarrfs", "scroll1")
        wait_for(lambda: os.listdir(cache), 10, "the cache in CacheDirectory= to be used")
        mode = stat.S_IMODE(os.stat(cache).st_mode)
        oz.check(mode == 0o700, "cache directory mode %o" % mode)
        u.stop(signal.SIGTERM, 0)
        oz.check(not oz.is_mounted(mnt), "still mounted after a clean stop")
    finally:
        u.close()
        if oz.is_mounted(mnt):
            subprocess.run(["fusermount3", "-u", "-z", mnt])


@S.case
def unit_restarts_after_sigkill():
    src, vol = stack()
    mnt = oz.tmpdir("mnt")
    conf = example_conf(src, mnt)
    cache_root = oz.tmpdir("varcache")
    units = []
    try:
        u = UnitRun("omezarrfs@.service", "scroll1", conf, cache_root).start()
        units.append(u)
        u.wait_ready()
        oz.read_level(mnt, 0, 6)
        u.stop(signal.SIGKILL, None)
        # Restart=on-failure starts ExecStart again; auto_unmount has freed the mount point.
        wait_for(lambda: not oz.is_mounted(mnt), 15, "the mount point to be released")
        u2 = UnitRun("omezarrfs@.service", "scroll1", conf, cache_root).start()
        units.append(u2)
        u2.wait_ready()
        oz.assert_array_equal(oz.read_level(mnt, 0, 6), vol, "level 0 after the restart")
        u2.stop(signal.SIGTERM, 0)
    finally:
        for u in units:
            u.close()
        if oz.is_mounted(mnt):
            subprocess.run(["fusermount3", "-u", "-z", mnt])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@S.case
def serve_unit_serves_the_mount_as_a_dynamic_user():
    src, vol = stack()
    mnt = oz.tmpdir("mnt")
    os.chmod(os.path.dirname(mnt), 0o755)
    port = free_port()
    conf = example_conf(src, mnt, port)
    cache_root = oz.tmpdir("varcache")
    fs = UnitRun("omezarrfs@.service", "scroll1", conf, cache_root)
    srv = UnitRun("omezarr-serve@.service", "scroll1", conf, cache_root)
    try:
        fs.start()
        fs.wait_ready()
        srv.start()
        srv.wait_ready()
        st, h, body = ozserve.request(port, "GET", "/.zattrs")
        oz.check(st == 200 and h.get("access-control-allow-origin") == "*",
                 "GET /.zattrs: %d %r %s" % (st, h, srv.stderr()))
        st, _, body = ozserve.request(port, "GET", "/0/0/0/0")
        with open(os.path.join(mnt, "0", "0", "0", "0"), "rb") as f:
            oz.check(st == 200 and body == f.read(), "chunk 0/0/0/0: HTTP %d" % st)
        st, _, _ = ozserve.request(port, "GET", "/0/99/0/0")
        oz.check(st == 404, "absent chunk: HTTP %d" % st)
        srv.stop(signal.SIGTERM, 0)
        fs.stop(signal.SIGTERM, 0)
    finally:
        srv.close()
        fs.close()
        if oz.is_mounted(mnt):
            subprocess.run(["fusermount3", "-u", "-z", mnt])


if __name__ == "__main__":
    S.main()
