"""Run a command where the kernel refuses user namespaces, the way Docker's default
seccomp profile (and hardened kernels with max_user_namespaces=0) do: a seccomp
filter makes unshare() and clone() with CLONE_NEWUSER fail with EPERM (clone3,
whose flags a filter cannot read, fails with ENOSYS so glibc falls back to clone).
Every process the command starts inherits the filter.

    python tests/no_userns.py COMMAND [ARGS...]
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
import sys

CLONE_NEWUSER = 0x10000000
EPERM, ENOSYS = 1, 38
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
LD_W_ABS, JEQ_K, JSET_K, RET_K = 0x20, 0x15, 0x45, 0x06
RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000
# audit arch, unshare, clone, clone3
ARCHES = {"x86_64": (0xC000003E, 272, 56, 435), "aarch64": (0xC00000B7, 97, 220, 435)}


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def program() -> bytes:
    arch, unshare, clone, clone3 = ARCHES[platform.machine()]
    flags_arg = 16  # offsetof(struct seccomp_data, args[0]); clone and unshare both take the flags first
    ops = [
        (LD_W_ABS, 0, 0, 4), (JEQ_K, 1, 0, arch), (RET_K, 0, 0, RET_KILL_PROCESS),
        (LD_W_ABS, 0, 0, 0),
        (JEQ_K, 0, 1, clone3), (RET_K, 0, 0, RET_ERRNO | ENOSYS),
        (JEQ_K, 1, 0, unshare), (JEQ_K, 0, 3, clone),
        (LD_W_ABS, 0, 0, flags_arg), (JSET_K, 0, 1, CLONE_NEWUSER), (RET_K, 0, 0, RET_ERRNO | EPERM),
        (RET_K, 0, 0, RET_ALLOW),
    ]
    return b"".join(struct.pack("HBBI", code, jt, jf, k) for code, jt, jf, k in ops)


def refuse_user_namespaces() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    code = program()
    buf = ctypes.create_string_buffer(code, len(code))
    prog = SockFprog(len(code) // 8, ctypes.cast(buf, ctypes.c_void_p))
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or \
            libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot install the seccomp filter: {os.strerror(err)}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    refuse_user_namespaces()
    os.execvp(sys.argv[1], sys.argv[1:])
