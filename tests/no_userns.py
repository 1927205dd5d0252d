"""Run a command where the kernel refuses user namespaces, the way Docker's default
seccomp profile (and hardened kernels with max_user_namespaces=0) do: a seccomp
filter makes unshare() and clone() with CLONE_NEWUSER fail with EPERM (clone3,
whose flags a filter cannot read, fails with ENOSYS so glibc falls back to clone).
Every process the command starts inherits the filter.

    python tests/no_userns.py COMMAND [ARGS...]
"""

from __future__ import annotations

import os
import struct
import sys

from codeio.sandbox import isolation
from codeio.sandbox.isolation import (_BPF_JEQ_K, _BPF_JSET_K, _BPF_LD_W_ABS, _BPF_RET_K, _RET_ALLOW,  # noqa: PLC2701
                                      _RET_ERRNO, _RET_KILL_PROCESS, ENOSYS, EPERM)

CLONE_NEWUSER = 0x10000000


def program() -> bytes:
    """Only this: user namespaces refused (the sandbox's own filter refuses much more)."""
    arch, numbers = isolation.syscall_numbers()
    flags_arg = 16  # offsetof(struct seccomp_data, args[0]); clone and unshare both take the flags first
    ops = [
        (_BPF_LD_W_ABS, 0, 0, 4), (_BPF_JEQ_K, 1, 0, arch), (_BPF_RET_K, 0, 0, _RET_KILL_PROCESS),
        (_BPF_LD_W_ABS, 0, 0, 0),
        (_BPF_JEQ_K, 0, 1, numbers["clone3"]), (_BPF_RET_K, 0, 0, _RET_ERRNO | ENOSYS),
        (_BPF_JEQ_K, 1, 0, numbers["unshare"]), (_BPF_JEQ_K, 0, 3, numbers["clone"]),
        (_BPF_LD_W_ABS, 0, 0, flags_arg), (_BPF_JSET_K, 0, 1, CLONE_NEWUSER), (_BPF_RET_K, 0, 0, _RET_ERRNO | EPERM),
        (_BPF_RET_K, 0, 0, _RET_ALLOW),
    ]
    return b"".join(struct.pack("HBBI", code, jt, jf, k) for code, jt, jf, k in ops)


def refuse_user_namespaces() -> None:
    isolation.load_seccomp(program())


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    refuse_user_namespaces()
    os.execvp(sys.argv[1], sys.argv[1:])
