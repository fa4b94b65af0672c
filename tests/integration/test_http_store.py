#!/usr/bin/python3
"""The HTTP store against the loopback fault server, through tests/tools/kv_get: every fault ends in
success or a clean error within the documented bound and with the expected number of attempts;
404 is absent; authentication (netrc, credentials files, their modes); credentials never leak (argv,
debug logs, cache files, cross-host redirects); max_connections; connection reuse; the disk cache
of fetched chunks (a second run sends no request); TLS verification with -o cacert."""

import os
import shutil
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oztest as oz  # noqa: E402
from faultserver import FaultServer  # noqa: E402

S = oz.Suite(__file__)
SENTINEL = "Sentinel-pw-7f3a9c"  # a password that must never show up anywhere


def kv_get_binary():
    build = os.environ.get("OMEZARRFS_BUILD") or os.path.join(oz.REPO, "build")
    path = os.path.join(build, "tests", "kv_get")
    if not os.path.exists(path):
        raise oz.Skip("kv_get not built at %s (set OMEZARRFS_BUILD)" % path)
    return path


# ----------------------------------------------------------------------------------------------
# XXH64, the reference algorithm (kv_get prints it)

_P1, _P2, _P3 = 11400714785074694791, 14029467366897019727, 1609587929392839161
_P4, _P5, _M = 9650029242287828579, 2870177450012600261, (1 << 64) - 1


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & _M


def _round(acc, lane):
    return (_rotl((acc + lane * _P2) & _M, 31) * _P1) & _M


def xxh64(data, seed=0):
    n, i = len(data), 0
    le = int.from_bytes
    if n >= 32:
        v = [(seed + _P1 + _P2) & _M, (seed + _P2) & _M, seed, (seed - _P1) & _M]
        while i + 32 <= n:
            for j in range(4):
                v[j] = _round(v[j], le(data[i + 8 * j:i + 8 * j + 8], "little"))
            i += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M
        for x in v:
            h = ((h ^ _round(0, x)) * _P1 + _P4) & _M
    else:
        h = (seed + _P5) & _M
    h = (h + n) & _M
    while i + 8 <= n:
        h = (_rotl(h ^ _round(0, le(data[i:i + 8], "little")), 27) * _P1 + _P4) & _M
        i += 8
    if i + 4 <= n:
        h = (_rotl(h ^ ((le(data[i:i + 4], "little") * _P1) & _M), 23) * _P2 + _P3) & _M
        i += 4
    while i < n:
        h = (_rotl(h ^ ((data[i] * _P5) & _M), 11) * _P1) & _M
        i += 1
    h ^= h >> 33
    h = (h * _P2) & _M
    h ^= h >> 29
    h = (h * _P3) & _M
    h ^= h >> 32
    return "%016x" % h


# ----------------------------------------------------------------------------------------------
# Fixtures


def chunk_files(n=12, prefix="a.zarr/0/", seed=3):
    """Deterministic chunk-like files of assorted sizes."""
    import random
    rng = random.Random(seed)
    files = {"a.zarr/.zarray": b'{"zarr_format": 2}'}
    for i in range(n):
        size = rng.choice([0, 1, 7, 100, 4096, 20000])
        files["%s%d.0.0" % (prefix, i)] = bytes(rng.getrandbits(8) for _ in range(size))
    return files


def private_file(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


class Run:
    def __init__(self, proc, elapsed):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr
        self.elapsed = elapsed
        self.keys = {}
        self.stats = {}
        for line in self.out.splitlines():
            if line.startswith("stat "):
                _, name, value = line.split(" ", 2)
                self.stats[name] = int(value)
                continue
            key, rest = line.split(" ", 1)
            fields = {"line": line}
            head, _, message = rest.partition(": ")
            words = head.split()
            fields["result"] = words[0]
            if words[0] == "error":
                fields["code"] = words[1]
                fields["message"] = message
            for w in words[1:]:
                if "=" in w:
                    k, v = w.split("=", 1)
                    fields[k] = v
            self.keys[key] = fields

    def describe(self):
        return "rc=%s elapsed=%.1fs\nstdout:\n%s\nstderr:\n%s" % (self.rc, self.elapsed, self.out,
                                                                  self.err[-3000:])


def clean_env(home=None):
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["HOME"] = home or oz.tmpdir("home")  # no ~/.netrc unless a case puts one there
    return env


def kv_get(url, keys, opts=(), args=(), home=None, timeout=600):
    cmd = [kv_get_binary(), url]
    for o in opts:
        cmd += ["-o", o]
    cmd += list(args) + list(keys)
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=clean_env(home))
    return Run(p, time.monotonic() - t0)


def worst_case(retries=6, timeout=120, retry_after_max=60):
    """The documented bound on one read (http_store.h, --help)."""
    return (retries + 1) * timeout + retries * max(retry_after_max, 30)


def expect_ok(run, key, data, attempts=None):
    k = run.keys.get(key)
    oz.check(k is not None, "no line for %s\n%s" % (key, run.describe()))
    oz.check(k["result"] == "ok", "%s: %s\n%s" % (key, k["line"], run.describe()))
    oz.check(int(k["size"]) == len(data) and k["xxh64"] == xxh64(data),
             "%s: wrong bytes: %s (want size %d xxh64 %s)" % (key, k["line"], len(data), xxh64(data)))
    if attempts is not None:
        oz.check(k["attempts"] == str(attempts), "%s: attempts %s, want %d" % (key, k["attempts"], attempts))


def expect_error(run, key, code, attempts=None, mention=(), bound=None):
    k = run.keys.get(key)
    oz.check(k is not None, "no line for %s\n%s" % (key, run.describe()))
    oz.check(k["result"] == "error" and k["code"] == code,
             "%s: want error %s, got: %s" % (key, code, k["line"]))
    if attempts is not None:
        oz.check(k["attempts"] == str(attempts), "%s: attempts %s, want %d: %s" % (
            key, k["attempts"], attempts, k["line"]))
    for m in mention:
        oz.check(m.lower() in k["message"].lower(), "%s: message does not mention %r: %s" % (key, m, k["line"]))
    if bound is not None:
        oz.check(run.elapsed <= 1.5 * bound + 5, "took %.1fs, documented bound %.1fs" % (run.elapsed, bound))
    oz.check(run.rc == 1, "exit status %s, want 1" % run.rc)


FAST = ["retry_delay=0.01"]  # keep backoff waits short; the attempt counts are what is checked


# ----------------------------------------------------------------------------------------------
# Cases


@S.case
def values_absent_and_validators():
    files = chunk_files()
    keys = sorted(k[len("a.zarr/"):] for k in files)
    with FaultServer(files=files) as srv:
        srv.add("a.zarr/0/gone", "status", status=410)
        r = kv_get(srv.url("a.zarr/"), keys + ["0/missing", "0/gone"])
        oz.check(r.rc == 0, r.describe())
        for k in keys:
            expect_ok(r, k, files["a.zarr/" + k], attempts=1)
            oz.check(r.keys[k]["validator"].startswith('"'), "ETag is the validator: " + r.keys[k]["line"])
        for k in ("0/missing", "0/gone"):
            oz.check(r.keys[k]["result"] == "absent" and r.keys[k]["attempts"] == "1", r.keys[k]["line"])
        oz.check(srv.count() == len(keys) + 2, "requests %d" % srv.count())
        oz.check(r.stats["http_requests"] == len(keys) + 2 and r.stats["http_retries"] == 0, str(r.stats))


@S.case
def first_503s_then_success():
    files = chunk_files(2)
    with FaultServer(files=files) as srv:
        srv.add("a.zarr/0/0.0.0", "status", status=503, times=2)
        srv.add("a.zarr/0/1.0.0", "status", status=500, times=1)
        r = kv_get(srv.url("a.zarr"), ["0/0.0.0", "0/1.0.0"], FAST + ["retries=3"])
        oz.check(r.rc == 0, r.describe())
        expect_ok(r, "0/0.0.0", files["a.zarr/0/0.0.0"], attempts=3)
        expect_ok(r, "0/1.0.0", files["a.zarr/0/1.0.0"], attempts=2)
        oz.check(srv.count("a.zarr/0/0.0.0") == 3, "server saw %d" % srv.count("a.zarr/0/0.0.0"))
        oz.check(r.stats["http_retries"] == 3 and r.stats["http_errors"] == 0, str(r.stats))


@S.case
def permanent_5xx_gives_up_after_retries():
    with FaultServer(files=chunk_files(1)) as srv:
        srv.add("a.zarr/0/0.0.0", "status", status=503)
        srv.add("a.zarr/0/x", "status", status=502)
        r = kv_get(srv.url("a.zarr"), ["0/0.0.0"], FAST + ["retries=3", "timeout=5"])
        expect_error(r, "0/0.0.0", "Unavailable", attempts=4,
                     mention=(srv.url("a.zarr/0/0.0.0"), "HTTP 503", "after 4 attempts", "try again later"),
                     bound=worst_case(3, 5, 60))
        oz.check(srv.count("a.zarr/0/0.0.0") == 4, "server saw %d" % srv.count("a.zarr/0/0.0.0"))
        r = kv_get(srv.url("a.zarr"), ["0/x"], FAST + ["retries=0"])
        expect_error(r, "0/x", "Unavailable", attempts=1, mention=("HTTP 502", "after 1 attempt"))
        oz.check(r.stats["http_errors"] == 1, str(r.stats))


@S.case
def other_4xx_not_retried():
    with FaultServer(files=chunk_files(1)) as srv:
        srv.add("a.zarr/0/bad", "status", status=400)
        r = kv_get(srv.url("a.zarr"), ["0/bad"], FAST + ["retries=5"])
        expect_error(r, "0/bad", "IoError", attempts=1, mention=("HTTP 400",))


@S.case
def retry_after_small_is_honoured():
    files = chunk_files(1)
    with FaultServer(files=files) as srv:
        srv.add("a.zarr/0/0.0.0", "status", status=429, retry_after="1", times=1)
        r = kv_get(srv.url("a.zarr"), ["0/0.0.0"], FAST + ["retries=2"])
        expect_ok(r, "0/0.0.0", files["a.zarr/0/0.0.0"], attempts=2)
        reqs = srv.matching("a.zarr/0/0.0.0")
        gap = reqs[1].t - reqs[0].t
        oz.check(gap >= 0.9, "retried %.2fs after 'Retry-After: 1'" % gap)


@S.case
def retry_after_http_date():
    files = chunk_files(1)
    with FaultServer(files=files) as srv:
        when = email_date(time.time() + 2)
        srv.add("a.zarr/0/0.0.0", "status", status=503, retry_after=when, times=1)
        r = kv_get(srv.url("a.zarr"), ["0/0.0.0"], FAST + ["retries=2"])
        expect_ok(r, "0/0.0.0", files["a.zarr/0/0.0.0"], attempts=2)
        reqs = srv.matching("a.zarr/0/0.0.0")
        oz.check(reqs[1].t - reqs[0].t >= 0.5, "retried %.2fs after a date ~2 s ahead" % (reqs[1].t - reqs[0].t))


def email_date(t):
    import email.utils
    return email.utils.formatdate(t, usegmt=True)


@S.case
def retry_after_huge_is_capped():
    with FaultServer(files=chunk_files(1)) as srv:
        srv.add("a.zarr/0/0.0.0", "status", status=429, retry_after="3600")
        r = kv_get(srv.url("a.zarr"), ["0/0.0.0"], FAST + ["retries=2", "retry_after_max=0.5", "timeout=5"])
        expect_error(r, "0/0.0.0", "Unavailable", attempts=3, mention=("HTTP 429", "max_connections"),
                     bound=worst_case(2, 5, 0.5))
        # Two capped waits of 0.5 s, not an hour: a generous upper bound.
        oz.check(r.elapsed < 30, "took %.1fs; Retry-After 3600 should be capped to 0.5 s" % r.elapsed)


@S.case
def truncated_body_is_retried():
    key = "0/t"
    files = {"a.zarr/0/t": bytes(range(256)) * 20}
    with FaultServer(files=files) as srv:
        srv.add("a.zarr/" + key, "truncate", times=2)
        r = kv_get(srv.url("a.zarr"), [key], FAST + ["retries=3"])
        expect_ok(r, key, files["a.zarr/" + key], attempts=3)
        srv.add("a.zarr/" + key, "truncate")
        r = kv_get(srv.url("a.zarr"), [key], FAST + ["retries=1"])
        expect_error(r, key, "Unavailable", attempts=2, mention=("after 2 attempts",))


@S.case
def connection_reset_is_retried():
    files = chunk_files(1)
    with FaultServer(files=files) as srv:
        srv.add("a.zarr/0/0.0.0", "reset", times=2)
        r = kv_get(srv.url("a.zarr"), ["0/0.0.0"], FAST + ["retries=2"])
        expect_ok(r, "0/0.0.0", files["a.zarr/0/0.0.0"], attempts=3)


@S.case
def refused_connection_is_retried_then_fails():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    try:
        url = "http://127.0.0.1:%d/a.zarr" % s.getsockname()[1]
        r = kv_get(url, ["0/0.0.0"], FAST + ["retries=2", "connect_timeout=2", "timeout=5"])
        expect_error(r, "0/0.0.0", "Unavailable", attempts=3, mention=("after 3 attempts",),
                     bound=worst_case(2, 5, 60))
    finally:
        s.close()


@S.case
def body_over_max_bytes_is_corrupt_and_not_retried():
    with FaultServer(files=chunk_files(1)) as srv:
        srv.add("a.zarr/big-with-length", "body", size=5000, length=1)
        srv.add("a.zarr/big-no-length", "body", size=5000, length=0)
        srv.add("a.zarr/fits", "body", size=1000, length=0)
        r = kv_get(srv.url("a.zarr"), ["big-with-length", "big-no-length", "fits"],
                   FAST + ["retries=3"], args=["--max-bytes", "1000"])
        expect_error(r, "big-with-length", "Corrupt", attempts=1,
                     mention=("larger than the limit of 1000 bytes", "Content-Length 5000"))
        expect_error(r, "big-no-length", "Corrupt", attempts=1, mention=("larger than the limit of 1000 bytes",))
        expect_ok(r, "fits", b"x" * 1000, attempts=1)


@S.case
def trickle_is_cut_by_the_low_speed_limit():
    files = {"a.zarr/slow": b"y" * 4000}
    with FaultServer(files=files) as srv:
        srv.add("a.zarr/slow", "trickle", interval_ms=50)
        opts = FAST + ["retries=1", "low_speed_limit=1K", "low_speed_time=1", "timeout=60"]
        r = kv_get(srv.url("a.zarr"), ["slow"], opts)
        expect_error(r, "slow", "Unavailable", attempts=2, mention=("too slow",), bound=worst_case(1, 60, 60))
        # Cut by the low-speed rule (about 1 s per attempt), far from the 60 s total timeout.
        oz.check(r.elapsed < 60, "took %.1fs: the low-speed limit did not cut the attempts" % r.elapsed)


@S.case
def silent_server_hits_the_timeout():
    with FaultServer(files=chunk_files(1)) as srv:
        srv.add("a.zarr/hang", "hang")
        opts = FAST + ["retries=1", "timeout=1", "connect_timeout=1", "low_speed_time=0"]
        r = kv_get(srv.url("a.zarr"), ["hang"], opts)
        expect_error(r, "hang", "Unavailable", attempts=2, mention=("timed out", "after 2 attempts", "timeout"),
                     bound=worst_case(1, 1, 60))
        oz.check(r.elapsed < 3 * (2 * 1 + 1), "took %.1fs for two 1 s attempts" % r.elapsed)


@S.case
def auth_required_without_credentials():
    with FaultServer(files=chunk_files(1)) as srv:
        srv.add("*", "auth", user="alice", password=SENTINEL)
        r = kv_get(srv.url("a.zarr"), ["0/0.0.0", ".zarray"], FAST + ["retries=3"])
        expect_error(r, ".zarray", "Permission", attempts=1,
                     mention=("HTTP 401", "authentication required: use -o netrc=FILE or -o credentials=FILE"))
        oz.check(all(req.authorization is None for req in srv.requests), "an Authorization header was sent")


def auth_header(user, password):
    import base64
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


@S.case
def netrc_authentication():
    files = chunk_files(2)
    d = oz.tmpdir("netrc")
    with FaultServer(files=files) as srv:
        srv.add("*", "auth", user="alice", password=SENTINEL)
        netrc = private_file(os.path.join(d, "netrc"), "machine other.example login x password y\n"
                             "machine 127.0.0.1\n  login alice\n  password %s\n" % SENTINEL)
        r = kv_get(srv.url("a.zarr"), ["0/0.0.0", "0/1.0.0"], FAST + ["netrc=" + netrc])
        oz.check(r.rc == 0, r.describe())
        expect_ok(r, "0/1.0.0", files["a.zarr/0/1.0.0"], attempts=1)
        want = auth_header("alice", SENTINEL)
        oz.check(all(req.authorization == want for req in srv.requests), "wrong Authorization headers")
        # The implicit ~/.netrc.
        home = oz.tmpdir("home")
        private_file(os.path.join(home, ".netrc"), "default login alice password %s\n" % SENTINEL)
        r = kv_get(srv.url("a.zarr"), ["0/0.0.0"], FAST, home=home)
        expect_ok(r, "0/0.0.0", files["a.zarr/0/0.0.0"], attempts=1)
        # A netrc others can read is refused when it holds the password used.
        os.chmod(netrc, 0o644)
        r = kv_get(srv.url("a.zarr"), ["0/0.0.0"], FAST + ["netrc=" + netrc])
        oz.check(r.rc == 2 and "chmod 600 " + netrc in r.err and SENTINEL not in r.err, r.describe())


@S.case
def credentials_file_authentication():
    files = chunk_files(1)
    d = oz.tmpdir("creds")
    with FaultServer(files=files) as srv:
        srv.add("*", "auth", user="alice", password=SENTINEL)
        good = private_file(os.path.join(d, "good"), "alice:%s\n" % SENTINEL)
        r = kv_get(srv.url("a.zarr"), ["0/0.0.0"], FAST + ["credentials=" + good])
        expect_ok(r, "0/0.0.0", files["a.zarr/0/0.0.0"], attempts=1)
        wrong = private_file(os.path.join(d, "wrong"), "alice:not-the-password\n")
        r = kv_get(srv.url("a.zarr"), ["0/0.0.0"], FAST + ["credentials=" + wrong, "retries=3"])
        expect_error(r, "0/0.0.0", "Permission", attempts=1,
                     mention=("HTTP 401", "refused the credentials from " + wrong))
        srv.clear_rules()
        srv.add("*", "status", status=403)
        r = kv_get(srv.url("a.zarr"), ["0/0.0.0"], FAST + ["credentials=" + good])
        expect_error(r, "0/0.0.0", "Permission", attempts=1, mention=("HTTP 403", "access denied", good))


@S.case
def lax_credentials_file_is_refused():
    d = oz.tmpdir("lax")
    lax = private_file(os.path.join(d, "creds"), "alice:%s\n" % SENTINEL, mode=0o644)
    with FaultServer(files=chunk_files(1)) as srv:
        r = kv_get(srv.url("a.zarr"), ["0/0.0.0"], ["credentials=" + lax])
        oz.check(r.rc == 2, r.describe())
        for m in (lax, "chmod 600", "0644"):
            oz.check(m in r.err, "stderr does not mention %r: %s" % (m, r.err))
        oz.check(SENTINEL not in r.err + r.out, "the password was printed")
        oz.check(srv.count() == 0, "a request was sent")


@S.case
def credentials_in_url_are_refused():
    with FaultServer(files=chunk_files(1)) as srv:
        url = "http://alice:%s@127.0.0.1:%d/a.zarr" % (SENTINEL, srv.port)
        r = kv_get(url, ["0/0.0.0"])
        oz.check(r.rc == 2, r.describe())
        oz.check("credentials=FILE" in r.err, "no advice: " + r.err)
        oz.check(SENTINEL not in r.err + r.out, "the password was printed: " + r.err)
        oz.check(srv.count() == 0, "a request was sent")


@S.case
def redirects_same_origin_keep_credentials():
    files = chunk_files(2, prefix="b.zarr/0/")
    d = oz.tmpdir("redir")
    creds = private_file(os.path.join(d, "creds"), "alice:%s\n" % SENTINEL)
    with FaultServer(files=files) as srv:
        srv.add("a.zarr/*", "redirect", to=lambda p: "/b.zarr/" + p[len("a.zarr/"):], status=301)
        r = kv_get(srv.url("a.zarr"), ["0/0.0.0", "0/1.0.0"], FAST + ["credentials=" + creds])
        expect_ok(r, "0/0.0.0", files["b.zarr/0/0.0.0"], attempts=2)  # the hop is a request
        want = auth_header("alice", SENTINEL)
        oz.check(all(req.authorization == want for req in srv.requests),
                 "same-origin hops must carry the credentials")


@S.case
def redirect_loop_is_an_error():
    with FaultServer(files=chunk_files(1)) as srv:
        srv.add("a.zarr/*", "redirect", to="/{path}")
        r = kv_get(srv.url("a.zarr"), ["0/0.0.0"], FAST + ["retries=3"])
        expect_error(r, "0/0.0.0", "IoError", attempts=6, mention=("more than 5 redirects", "loop"))
        oz.check(srv.count() == 6, "server saw %d requests" % srv.count())


@S.case
def redirect_to_other_scheme_is_refused():
    with FaultServer(files=chunk_files(1)) as srv:
        srv.add("a.zarr/*", "redirect", to="file:///etc/passwd")
        r = kv_get(srv.url("a.zarr"), ["0/0.0.0"], FAST)
        expect_error(r, "0/0.0.0", "IoError", attempts=1, mention=("only http and https",))


@S.case
def cross_origin_redirect_drops_credentials():
    files = chunk_files(2)
    d = oz.tmpdir("xhost")
    creds = private_file(os.path.join(d, "creds"), "alice:%s\n" % SENTINEL)
    want = auth_header("alice", SENTINEL)
    # Another host (127.0.0.2) and another port on the same host: both are other origins.
    for other_host in ("127.0.0.2", "127.0.0.1"):
        with FaultServer(files=files, host=other_host) as other, FaultServer(files={}) as srv:
            # The embedded user:pw@ a hostile server may put in Location is stripped too.
            srv.add("a.zarr/*", "redirect",
                    to=lambda p, o=other: "http://mallory:stolen@%s:%d/%s" % (o.host, o.port, p))
            r = kv_get(srv.url("a.zarr"), ["0/0.0.0", "0/1.0.0"], FAST + ["credentials=" + creds])
            oz.check(r.rc == 0, r.describe())
            expect_ok(r, "0/1.0.0", files["a.zarr/0/1.0.0"], attempts=2)
            oz.check(all(req.authorization == want for req in srv.requests), "origin lost its credentials")
            oz.check(other.count() == 2, "other origin saw %d requests" % other.count())
            leaked = [req for req in other.requests if req.authorization is not None]
            oz.check(not leaked, "credentials sent to %s: %r" % (other_host, leaked[:1]))
        # A 401 from the other origin explains why no credentials were sent.
        with FaultServer(files=files, host=other_host) as other, FaultServer(files={}) as srv:
            other.add("*", "auth", user="alice", password=SENTINEL)
            srv.add("a.zarr/*", "redirect", to=lambda p, o=other: o.url(p))
            r = kv_get(srv.url("a.zarr"), ["0/0.0.0"], FAST + ["credentials=" + creds])
            expect_error(r, "0/0.0.0", "Permission", attempts=2, mention=("only sent to",))
            oz.check(all(req.authorization is None for req in other.requests), "credentials leaked")


@S.case
def sentinel_never_leaks():
    """argv (/proc/PID/cmdline), environment, stdout/stderr at log_level=debug, and cache files."""
    files = chunk_files(4)
    d = oz.tmpdir("leak")
    creds = private_file(os.path.join(d, "creds"), "alice:%s\n" % SENTINEL)
    cache = os.path.join(d, "cache")
    with FaultServer(files=files) as srv:
        srv.add("*", "auth", user="alice", password=SENTINEL)
        srv.add("a.zarr/slow", "delay", ms=1500)
        srv.add("a.zarr/slow", "status", status=503)
        cmd = [kv_get_binary(), srv.url("a.zarr"), "-o", "credentials=%s,log_level=debug,retries=1,"
               "retry_delay=0.01" % creds, "--cache", cache, "--cache-all",
               "slow", "0/0.0.0", "0/1.0.0", ".zarray", "0/nope"]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
        time.sleep(0.5)  # inside the slow request
        seen = {}
        for name in ("cmdline", "environ"):
            try:
                with open("/proc/%d/%s" % (p.pid, name), "rb") as f:
                    seen[name] = f.read()
            except OSError as e:
                seen[name] = b""
                oz.check(p.poll() is not None, "cannot read /proc/%d/%s: %s" % (p.pid, name, e))
        out, err = p.communicate(timeout=120)
        oz.check(b"credentials=" in seen["cmdline"], "did not catch kv_get running: %r" % seen["cmdline"])
        for name, blob in seen.items():
            oz.check(SENTINEL.encode() not in blob, "password in /proc/PID/" + name)
        oz.check(b"http: GET" in err, "no debug lines on stderr: %r" % err[-500:])
        oz.check(SENTINEL.encode() not in out + err, "password in the output")
        oz.check(b"0/0.0.0 ok" in out and b"slow error" in out, out.decode())
        n = 0
        for root, _, names in os.walk(cache):
            for name in names:
                n += 1
                with open(os.path.join(root, name), "rb") as f:
                    oz.check(SENTINEL.encode() not in f.read(), "password in cache file " + name)
        oz.check(n >= 4, "only %d cache files" % n)


@S.case
def max_connections_is_respected():
    files = chunk_files(24)
    keys = ["0/%d.0.0" % i for i in range(24)]
    with FaultServer(files=files) as srv:
        srv.add("a.zarr/0/*", "delay", ms=200)
        r = kv_get(srv.url("a.zarr"), keys, ["max_connections=3"], args=["--threads", "12"])
        oz.check(r.rc == 0, r.describe())
        for k in keys:
            expect_ok(r, k, files["a.zarr/" + k])
        oz.check(srv.max_concurrent <= 3, "%d requests in flight with max_connections=3" % srv.max_concurrent)
        oz.check(srv.max_concurrent >= 2, "requests never overlapped (%d)" % srv.max_concurrent)
        oz.check(srv.connections <= 3, "%d TCP connections with max_connections=3" % srv.connections)


@S.case
def connections_are_reused():
    files = chunk_files(30)
    keys = ["0/%d.0.0" % i for i in range(30)]
    with FaultServer(files=files) as srv:
        r = kv_get(srv.url("a.zarr"), keys)
        oz.check(r.rc == 0, r.describe())
        oz.check(srv.count() == 30, "requests %d" % srv.count())
        oz.check(srv.connections <= 2, "%d TCP connections for 30 sequential requests" % srv.connections)


@S.case
def cached_fetch_second_run_sends_nothing():
    files = chunk_files(8)
    keys = ["0/%d.0.0" % i for i in range(8)] + ["0/missing"]
    cache = os.path.join(oz.tmpdir("cache"), "c")
    with FaultServer(files=files) as srv:
        r1 = kv_get(srv.url("a.zarr"), keys + [".zarray"], args=["--cache", cache])
        oz.check(r1.rc == 0, r1.describe())
        first = srv.count()
        oz.check(first == len(keys) + 1, "first run: %d requests" % first)
        srv.reset()
        r2 = kv_get(srv.url("a.zarr"), keys, args=["--cache", cache])
        oz.check(r2.rc == 0, r2.describe())
        oz.check(srv.count() == 0, "second run sent %d requests: %r" % (
            srv.count(), [q.path for q in srv.requests]))
        for k in keys:
            a, b = dict(r1.keys[k]), dict(r2.keys[k])
            for f in (a, b):
                f.pop("line")
                f.pop("attempts")
            oz.check(a == b, "%s: %r vs %r" % (k, a, b))
        oz.check(r2.stats["source_cache_hits"] == len(keys), str(r2.stats))
        oz.check(r2.stats["http_requests"] == 0, str(r2.stats))
        # Metadata is not cached: it is fetched again.
        r3 = kv_get(srv.url("a.zarr"), [".zarray"], args=["--cache", cache])
        oz.check(r3.rc == 0 and srv.count() == 1, r3.describe())
        # Failed reads are not cached.
        srv.add("a.zarr/0/flaky", "status", status=503, times=1)
        r4 = kv_get(srv.url("a.zarr"), ["0/flaky"], ["retries=0"], args=["--cache", cache])
        expect_error(r4, "0/flaky", "Unavailable", attempts=1)
        r5 = kv_get(srv.url("a.zarr"), ["0/flaky"], ["retries=0"], args=["--cache", cache])
        oz.check(r5.keys["0/flaky"]["result"] == "absent" and r5.keys["0/flaky"]["attempts"] == "1",
                 r5.describe())


def make_cert(d):
    if not shutil.which("openssl"):
        raise oz.Skip("openssl not installed")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], capture_output=True, text=True)
    if p.returncode != 0:
        raise oz.Skip("openssl req failed: " + p.stderr[-300:])
    return cert, key


@S.case
def tls_is_verified():
    d = oz.tmpdir("tls")
    cert, key = make_cert(d)
    files = chunk_files(1)
    with FaultServer(files=files, tls=(cert, key)) as srv:
        r = kv_get(srv.url("a.zarr"), ["0/0.0.0"], FAST + ["retries=3"])
        expect_error(r, "0/0.0.0", "IoError", attempts=1, mention=("not trusted", "cacert=FILE"))
        r = kv_get(srv.url("a.zarr"), ["0/0.0.0"], FAST + ["cacert=" + cert])
        expect_ok(r, "0/0.0.0", files["a.zarr/0/0.0.0"], attempts=1)


if __name__ == "__main__":
    S.main()
