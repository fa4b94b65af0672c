"""omezarr-serve for the integration tests: start it on a directory and talk HTTP to it.

  Server(dir)          context manager: omezarr-serve DIR --port 0 (a free port), waits until it
                       listens; .url(path), .get(path), .requests() (its access log), .stderr();
                       on exit SIGTERM, and the exit status must be 0.
  request(...)         one HTTP request -> (status, headers (lower-case names), body)
"""
import http.client
import os
import signal
import subprocess
import time

import oztest as oz

SERVE = os.path.join(oz.REPO, "cli", "omezarr-serve")


def request(port, method, path, headers=None, conn=None, timeout=120):
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        if own:
            conn.close()


class Server:
    def __init__(self, directory, args=(), exe=None, env=None, prefix=()):
        self.dir = directory
        self.args = list(args)
        self.exe = exe or SERVE
        self.env = env
        self.prefix = list(prefix)  # e.g. setpriv ... (run the server as another user)
        self.work = oz.tmpdir("serve")
        self.log = os.path.join(self.work, "requests.log")
        self.err = os.path.join(self.work, "stderr")
        self.port = None
        self.proc = None
        self.returncode = None

    def __enter__(self):
        port_file = os.path.join(self.work, "port")
        cmd = self.prefix + ["/usr/bin/python3", self.exe, self.dir, "--port", "0",
                             "--port-file", port_file, "--log", self.log] + self.args
        with open(self.err, "wb") as fe:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=fe, env=self.env)
        deadline = time.monotonic() + 30
        while not os.path.exists(port_file):
            if self.proc.poll() is not None:
                raise oz.CheckFailed("omezarr-serve exited with %s: %s" % (
                    self.proc.returncode, self.stderr()))
            oz.check(time.monotonic() < deadline, "omezarr-serve did not start: " + self.stderr())
            time.sleep(0.05)
        with open(port_file) as f:
            self.port = int(f.read())
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def stop(self):
        if self.proc is None or self.returncode is not None:
            return self.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise oz.CheckFailed("omezarr-serve did not stop within 15 s of SIGTERM")
        oz.check(self.returncode == 0, "omezarr-serve exit status %s after SIGTERM (want 0): %s"
                 % (self.returncode, self.stderr()))
        return self.returncode

    def url(self, path=""):
        return "http://127.0.0.1:%d/%s" % (self.port, path.lstrip("/"))

    def get(self, path, headers=None, method="GET", conn=None):
        return request(self.port, method, path, headers, conn)

    def stderr(self):
        try:
            with open(self.err, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def requests(self):
        """[(method, path, status)] from the access log."""
        try:
            with open(self.log) as f:
                return [tuple(line.split()[:3]) for line in f if line.strip()]
        except OSError:
            return []
