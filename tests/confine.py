"""Run a command as the unit confines fer-edge: its system-call filter and MemoryDenyWriteExecute.

    python tests/confine.py UNIT -- COMMAND...

The allowed calls are the unit's `SystemCallFilter=` lines expanded by `systemd-analyze syscall-filter`
(an allow-list, then `~` lines taken away), loaded with libseccomp; any other call fails with EPERM as
`SystemCallErrorNumber=EPERM` says. Writable-executable memory is refused by the kernel's
PR_SET_MDWE, which systemd itself uses for MemoryDenyWriteExecute= where the kernel has it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import subprocess
import sys
from pathlib import Path

PR_SET_NO_NEW_PRIVS, PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 38, 65, 1
SCMP_ACT_ALLOW = 0x7FFF0000


def expand(names: list[str]) -> set[str]:
    """System-call names of a filter line's groups (@name) and names, nested groups included."""
    out: set[str] = set()
    for name in names:
        if not name.startswith("@"):
            out.add(name)
            continue
        listing = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True, text=True,
                                 check=True).stdout
        members = [line.strip() for line in listing.splitlines()[1:] if line.strip() and not line.strip().startswith("#")]
        out |= expand(members)
    return out


def allowed(unit: Path) -> set[str]:
    calls: set[str] = set()
    for line in re.findall(r"^SystemCallFilter=(.*)$", unit.read_text(), re.M):
        if line.startswith("~"):
            calls -= expand(line[1:].split())
        else:
            calls |= expand(line.split())
    return calls


def confine(unit: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    seccomp = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    seccomp.seccomp_init.restype = ctypes.c_void_p
    seccomp.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    seccomp.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    seccomp.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = seccomp.seccomp_init(0x00050000 | errno.EPERM)  # SCMP_ACT_ERRNO(EPERM)
    for name in sorted(allowed(unit)):
        number = seccomp.seccomp_syscall_resolve_name(name.encode())
        if number >= 0:  # names of other architectures resolve to nothing here
            seccomp.seccomp_rule_add(ctx, SCMP_ACT_ALLOW, number, 0)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) or libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0):
        raise OSError(ctypes.get_errno(), "prctl")
    if seccomp.seccomp_load(ctx):
        raise OSError("seccomp_load failed")


if __name__ == "__main__":
    unit, sep, *command = sys.argv[1:]
    assert sep == "--" and command, __doc__
    confine(Path(unit))
    os.execvp(command[0], command)
