"""Helpers shared by the robustness tests (test_robust_*.py); see docs/ROBUSTNESS.md.

Contents
  figure()          prints "FIGURE name=value" (and appends it to $OZ_FIGURES if set): the numbers
                    docs/ROBUSTNESS.md reports come from these lines.
  soak_scale()      how much longer the optional soaks run ($OZ_SOAK=1 for the long version).
  LoggedMount       oz.Mount with -o log=FILE, an environment for the daemon (OMEZARRFS_FAULT),
                    and helpers: log lines, daemon RSS, kill -9.
  xxh64(), read_cache_entry(), cache_files()
                    an independent reader of the disk-cache entry format (core/store/disk_cache.cc).
  padded_chunk()    the expected bytes of one raw chunk from a reference pyramid.
  tiff()            a byte-level TIFF writer for malformed headers (what libtiff refuses to write).
"""

import errno
import hashlib
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oztest as oz  # noqa: E402
import numpy as np  # noqa: E402


def figure(name, value):
    line = "FIGURE %s=%s" % (name, value)
    print("  " + line, flush=True)
    path = os.environ.get("OZ_FIGURES")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def soak_scale():
    """1 in CI; $OZ_SOAK (a number) makes the soak-style cases that many times longer."""
    try:
        return max(1.0, float(os.environ.get("OZ_SOAK", "1")))
    except ValueError:
        return 1.0


def wait_for(pred, seconds, what):
    deadline = time.monotonic() + seconds
    while not pred():
        oz.check(time.monotonic() < deadline, "timed out after %ss waiting for %s" % (seconds, what))
        time.sleep(0.02)


# ----------------------------------------------------------------------------------------------
# Mounts with a log file and an environment


class LoggedMount(oz.Mount):
    """oz.Mount plus -o log=FILE and extra environment variables for the daemon."""

    def __init__(self, source, options=None, env=None, **kw):
        self.log_path = os.path.join(oz.tmpdir("log"), "daemon.log")
        opts = dict(options or {})
        opts["log"] = self.log_path
        self.env = dict(env or {})
        super().__init__(source, opts, **kw)

    def __enter__(self):
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            return super().__enter__()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def log_lines(self, level=None, containing=None):
        out = []
        for line in self.log():
            if level and (" %s: " % level) not in line:
                continue
            if containing and containing not in line:
                continue
            out.append(line)
        return out

    def pid(self):
        oz.check(len(self.pids) == 1, "expected one daemon process, found %s" % self.pids)
        return self.pids[0]

    def status(self, field):
        """A /proc/PID/status field in bytes (VmRSS, VmHWM), or None once the daemon is gone."""
        try:
            with open("/proc/%d/status" % self.pid()) as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def kill9(self, clear=True):
        """SIGKILL the daemon and wait for it; then (clear=True) clear the dead mount. Readers
        of a dead mount get ENOTCONN; after the clearing they would see the empty mountpoint."""
        for p in self.pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_for(lambda: not any(oz._alive(p) for p in self.pids), 15, "the killed daemon to go")
        if clear:
            self.clear_dead()

    def clear_dead(self):
        subprocess.run(["fusermount3", "-u", "-z", self.path], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        wait_for(lambda: not oz.is_mounted(self.path), 15, "the dead mount to go")


class NobodyMount(LoggedMount):
    """The daemon runs as nobody (setpriv), with allow_other so this (root) process can read."""

    def command(self):
        return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] + super().command()


class NonRootSetup:
    """/dev/fuse usable by others and user_allow_other in /etc/fuse.conf (Debian's defaults are
    0666 and a commented line), restored afterwards; a world-traversable work tree."""

    def __enter__(self):
        if os.geteuid() != 0:
            raise oz.Skip("needs root to run the daemon as nobody")
        if not shutil.which("setpriv"):
            raise oz.Skip("setpriv not installed")
        self.fuse_mode = stat.S_IMODE(os.stat("/dev/fuse").st_mode)
        with open("/etc/fuse.conf") as f:
            self.conf = f.read()
        os.chmod("/dev/fuse", 0o666)
        if "\nuser_allow_other" not in "\n" + self.conf:
            with open("/etc/fuse.conf", "a") as f:
                f.write("\nuser_allow_other\n")
        self.root = os.path.realpath(oz.tmpdir("nobody"))
        p = self.root
        while p != "/":  # make the path to our work tree traversable
            os.chmod(p, os.stat(p).st_mode | 0o111)
            p = os.path.dirname(p)
        return self

    def dir(self, name, owner_nobody=False):
        d = os.path.join(self.root, name)
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
        if owner_nobody:
            import pwd
            pw = pwd.getpwnam("nobody")
            os.chown(d, pw.pw_uid, pw.pw_gid)
        return d

    def __exit__(self, *exc):
        os.chmod("/dev/fuse", self.fuse_mode)
        with open("/etc/fuse.conf", "w") as f:
            f.write(self.conf)
        return False


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def expect_errno(fn, codes):
    """Runs fn; returns None if it raised OSError with an errno in codes, else a description."""
    try:
        fn()
    except OSError as e:
        if e.errno in codes:
            return None
        return "errno %s (%s)" % (e.errno, errno.errorcode.get(e.errno))
    return "succeeded"


# ----------------------------------------------------------------------------------------------
# The disk-cache entry format, read independently of the C++ code


_P1, _P2, _P3, _P4, _P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                           0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5)
_M = (1 << 64) - 1


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & _M


def _round(acc, v):
    return (_rotl((acc + v * _P2) & _M, 31) * _P1) & _M


def xxh64(data, seed=0):
    """XXH64, the reference algorithm (checked against its published test vector below)."""
    n = len(data)
    p = 0
    if n >= 32:
        v1, v2, v3, v4 = (seed + _P1 + _P2) & _M, (seed + _P2) & _M, seed, (seed - _P1) & _M
        while n - p >= 32:
            a, b, c, d = struct.unpack_from("<4Q", data, p)
            v1, v2, v3, v4 = _round(v1, a), _round(v2, b), _round(v3, c), _round(v4, d)
            p += 32
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M
        for v in (v1, v2, v3, v4):
            h = ((h ^ _round(0, v)) * _P1 + _P4) & _M
    else:
        h = (seed + _P5) & _M
    h = (h + n) & _M
    while n - p >= 8:
        (k,) = struct.unpack_from("<Q", data, p)
        h = (_rotl(h ^ _round(0, k), 27) * _P1 + _P4) & _M
        p += 8
    if n - p >= 4:
        (k,) = struct.unpack_from("<I", data, p)
        h = (_rotl(h ^ ((k * _P1) & _M), 23) * _P2 + _P3) & _M
        p += 4
    while p < n:
        h = (_rotl(h ^ ((data[p] * _P5) & _M), 11) * _P1) & _M
        p += 1
    h ^= h >> 33
    h = (h * _P2) & _M
    h ^= h >> 29
    h = (h * _P3) & _M
    return h ^ (h >> 32)


assert xxh64(b"") == 0xEF46DB3751D8E999


def cache_files(cache_dir):
    """(entries, temps, others): files below cache_dir/v1/xx/ by kind."""
    entries, temps, others = [], [], []
    root = os.path.join(cache_dir, "v1")
    if not os.path.isdir(root):
        return entries, temps, others
    for fan in sorted(os.listdir(root)):
        d = os.path.join(root, fan)
        if not os.path.isdir(d):
            continue
        for n in sorted(os.listdir(d)):
            p = os.path.join(d, n)
            if n.startswith(".tmp."):
                temps.append(p)
            elif len(fan) == 2 and len(n) == 30 and os.path.isfile(p) and not os.path.islink(p):
                entries.append(p)
            else:
                others.append(p)
    return entries, temps, others


def cache_bytes(cache_dir):
    entries, temps, _ = cache_files(cache_dir)
    total = 0
    for p in entries + temps:
        try:
            total += os.path.getsize(p)
        except OSError:
            pass
    return total


def read_cache_entry(path):
    """Parses and checks one entry file.  Returns (problem or None, key, flags, data)."""
    raw = read_file(path)
    if len(raw) < 32:
        return "shorter than the header", None, None, None
    magic, version, checksum, flags, key_len, data_len = struct.unpack_from("<4sIQIIQ", raw, 0)
    if magic != b"OZC1" or version != 1:
        return "bad magic or version", None, None, None
    if 32 + key_len + data_len != len(raw):
        return "lengths do not add up", None, None, None
    key = raw[32:32 + key_len]
    data = raw[32 + key_len:]
    if xxh64(data, xxh64(raw[16:32 + key_len])) != checksum:
        return "checksum mismatch", key, flags, data
    name = hashlib.sha256(key).hexdigest()[:32]
    if path[-33:].replace("/", "") != name:
        return "file name is not the hash of its key", key, flags, data
    return None, key.decode(errors="replace"), flags, data


def cached_chunks(cache_dir):
    """{"L/z/y/x"} of every readable entry in the cache (keys end with "|L/z/y/x")."""
    out = set()
    for p in cache_files(cache_dir)[0]:
        why, key, _, _ = read_cache_entry(p)
        if key:
            out.add(key.rsplit("|", 1)[1])
    return out


def key_chunk(key):
    """(level, (z, y, x)) of a chunk cache key ("...|L/z/y/x")."""
    tail = key.rsplit("|", 1)[1]
    parts = [int(v) for v in tail.split("/")]
    return parts[0], tuple(parts[1:])


def padded_chunk(levels, level, idx, chunk):
    """The full (zero-padded) raw chunk `idx` of `level` from a reference pyramid, as bytes."""
    a = levels[level]
    block = np.zeros((chunk,) * 3, a.dtype)
    src = a[tuple(slice(i * chunk, (i + 1) * chunk) for i in idx)]
    block[tuple(slice(0, s) for s in src.shape)] = src
    return block.astype(block.dtype.newbyteorder("<")).tobytes()


def chunk_paths(levels, chunk, nlevels=None):
    """Every chunk index of every level: [(level, (z, y, x), "L/z/y/x")]."""
    out = []
    nlevels = nlevels or len(levels)
    for lvl, a in enumerate(levels):
        grid = [-(-s // chunk) for s in a.shape]
        for z in range(grid[0]):
            for y in range(grid[1]):
                for x in range(grid[2]):
                    rel = "%d/%d/%d/%d" % (lvl, z, y, x) if nlevels > 1 else "%d/%d/%d" % (z, y, x)
                    out.append((lvl, (z, y, x), rel))
    return out


# ----------------------------------------------------------------------------------------------
# Byte-level TIFF writer (classic little-endian or BigTIFF), for headers libtiff will not write

SHORT, LONG, LONG8 = 3, 4, 16


def tiff(width, height, bits=16, pixels=None, compression=1, rows_per_strip=None,
         strip_offsets=None, strip_counts=None, extra_tags=(), drop_tags=(), ifd_next=0,
         magic=b"II*\x00", ifd_offset=None, ntags_override=None):
    """A one-page TIFF as bytes.  pixels: bytes of the strip data (default: zeros for every
    row).  strip_offsets/strip_counts override the computed ones (e.g. past the end of the file).
    extra_tags: [(tag, type, [values])] added or replacing.  ifd_next: the next-IFD offset
    (e.g. the IFD's own offset for a loop); ifd_offset: the header's IFD offset (default: right
    after the pixels); ntags_override: a wrong tag count."""
    bpp = bits // 8
    rps = rows_per_strip or height
    nstrips = max(1, -(-height // rps)) if height else 1
    if pixels is None:
        pixels = bytes(width * height * bpp) if width * height * bpp < (64 << 20) else b""
    data_start = 8
    row = width * bpp
    starts = [min(len(pixels), i * rps * row) for i in range(nstrips)] + [len(pixels)]
    offsets = strip_offsets if strip_offsets is not None else [data_start + s for s in starts[:-1]]
    counts = strip_counts if strip_counts is not None else \
        [starts[i + 1] - starts[i] for i in range(nstrips)]
    tags = {256: (LONG, [width]), 257: (LONG, [height]), 258: (SHORT, [bits]),
            259: (SHORT, [compression]), 262: (SHORT, [1]), 273: (LONG, offsets),
            277: (SHORT, [1]), 278: (LONG, [rps]), 279: (LONG, counts), 339: (SHORT, [1])}
    for t in drop_tags:
        tags.pop(t, None)
    for tag, typ, vals in extra_tags:
        tags[tag] = (typ, list(vals))
    body = bytearray(magic[:4].ljust(4, b"\0"))
    body += b"\0\0\0\0"
    body += pixels
    if len(body) % 2:
        body += b"\0"
    ifd_at = len(body)
    entries = sorted(tags.items())
    ntags = len(entries) if ntags_override is None else ntags_override
    ifd = bytearray(struct.pack("<H", ntags))
    overflow = bytearray()
    over_at = ifd_at + 2 + 12 * len(entries) + 4
    for tag, (typ, vals) in entries:
        fmt = {SHORT: "H", LONG: "I", LONG8: "Q"}[typ]
        packed = struct.pack("<%d%s" % (len(vals), fmt), *vals)
        if len(packed) <= 4:
            ifd += struct.pack("<HHI", tag, typ, len(vals)) + packed.ljust(4, b"\0")
        else:
            ifd += struct.pack("<HHII", tag, typ, len(vals), over_at + len(overflow))
            overflow += packed
    nxt = ifd_at if ifd_next == "self" else ifd_next
    ifd += struct.pack("<I", nxt)
    body += ifd + overflow
    struct.pack_into("<I", body, 4, ifd_at if ifd_offset is None else ifd_offset)
    return bytes(body)


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


def parse_size(v):
    """'16M' -> bytes (the -o SIZE syntax, binary suffixes)."""
    if isinstance(v, int):
        return v
    s = str(v).strip().upper().rstrip("B").rstrip("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    if s and s[-1] in mult:
        return int(float(s[:-1]) * mult[s[-1]])
    return int(s)
