#!/usr/bin/python3
"""Runs a command under the seccomp filters a systemd unit asks for (helper of test_deploy.py).

Usage: sandbox_exec.py --syscalls SETS [--deny-syscalls SETS] [--address-families AFS] [--mdwe]
                       -- COMMAND...

systemd is not PID 1 where the tests run, so they cannot start the units; instead they run a
unit's ExecStart the way systemd would, and this emulates the unit's seccomp options with the
same system call lists (`systemd-analyze syscall-filter` output, with @default added as systemd
adds it to every allow list):
  --syscalls @system-service,@mount   SystemCallFilter= (allow list; anything else fails EPERM,
                                      as SystemCallErrorNumber=EPERM)
  --deny-syscalls @privileged         a later SystemCallFilter=~... line (taken off the list)
  --address-families AF_UNIX,AF_INET  RestrictAddressFamilies= (socket() of another family fails)
  --mdwe                              MemoryDenyWriteExecute=yes (no writable+executable pages)
Capabilities, no_new_privs and the user come from setpriv(1), run before this script.
"""
import argparse
import errno
import os
import socket
import subprocess
import sys

import seccomp


def expand(group, seen):
    """The system calls of a systemd syscall group, nested groups included."""
    if group in seen:
        return set()
    seen.add(group)
    out = subprocess.run(["systemd-analyze", "syscall-filter", group], check=True,
                         capture_output=True, text=True).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        if item.startswith("@"):
            calls |= expand(item, seen)
        else:
            calls.add(item)
    return calls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--syscalls", default="")
    ap.add_argument("--deny-syscalls", default="")
    ap.add_argument("--address-families", default="")
    ap.add_argument("--mdwe", action="store_true")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("no command")
    if not a.syscalls:
        ap.error("--syscalls is required (the filter is an allow list)")
    f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(errno.EPERM))
    seen = set()
    calls = expand("@default", seen)
    for group in a.syscalls.split(","):
        calls |= expand(group, seen) if group.startswith("@") else {group}
    for group in filter(None, a.deny_syscalls.split(",")):
        calls -= expand(group, set()) if group.startswith("@") else {group}
    special = set()
    if a.address_families:
        special.add("socket")
        for name in a.address_families.split(","):
            f.add_rule(seccomp.ALLOW, "socket", seccomp.Arg(0, seccomp.EQ, getattr(socket, name)))
    if a.mdwe:
        w, x = 0x2, 0x4  # PROT_WRITE, PROT_EXEC
        special |= {"mmap", "mprotect", "pkey_mprotect"}
        for prot in (0, w, x):
            f.add_rule(seccomp.ALLOW, "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, w | x, prot))
        for call in ("mprotect", "pkey_mprotect"):
            f.add_rule(seccomp.ALLOW, call, seccomp.Arg(2, seccomp.MASKED_EQ, x, 0))
    for call in sorted(calls - special):
        try:
            f.add_rule(seccomp.ALLOW, call)
        except (RuntimeError, ValueError, OSError):
            pass  # not a system call of this architecture (systemd skips those too)
    f.load()
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
