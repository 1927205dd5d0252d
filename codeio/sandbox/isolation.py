"""Kernel isolation of a fork server and its children, with the namespaces and
syscalls directly (ctypes): nothing to install, and the set-up runs once per
server, not per child.

A server enters, in order: a user namespace when it is not root (its own uid
and gid mapped to themselves, so the same files stay readable and nothing else
becomes writable), then network, mount, IPC and PID namespaces. In the PID
namespace the server is init: children cannot signal it, orphans come back to
it, and when it ends every process of the namespace ends with it. Its mount
namespace gets a fresh root (``build_root``): a tmpfs holding read-only binds of
exactly what the interpreter needs, private /tmp and /dev/shm, a minimal /dev
and the namespace's own /proc; the host's root is unmounted. Each child then
drops every capability and installs a seccomp filter (``install_seccomp``).

Whatever the kernel refuses is recorded as a missing guarantee (``lost``): its
name (one of ``GUARANTEES``), the reason the kernel gave and what is lost. The
server reports them with its start-up info; ``report`` and ``merge_reports`` turn
them into what shard stats, the run summary, the CLI and lineage carry.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWCGROUP = 0x02000000
NAMESPACE_FLAGS = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWCGROUP
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
PRIVATE_FS_SIZE = "256m"  # /tmp (all work dirs of one server) and /dev/shm, each
DEVICES = ("null", "zero", "full", "random", "urandom")
ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime")  # the dynamic loader's cache (ctypes, lazy imports); time zone
SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/sbin")
VIEW_STAGING_CANDIDATES = ("/mnt", "/tmp", "/media")  # the new root is a tmpfs mounted on one of these, then pivoted to

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

# ---- missing guarantees ------------------------------------------------------
# every isolation layer by name, in set-up order, with what is lost without it
GUARANTEES: dict[str, str] = {
    "user_namespace": "without root, no namespace can be entered (every namespace below is missing too)",
    "network_namespace": "the network is not cut: only Python-level socket calls are blocked (seccomp, where "
                         "present, still refuses socket creation)",
    "mount_namespace": "no private /tmp or /dev/shm: the code sees the host's and can write wherever its uid may",
    "ipc_namespace": "System V IPC and POSIX message queues are shared with the host",
    "pid_namespace": "host processes are visible; processes that escape a child are reaped by uid only (as root) "
                     "or not at all",
    "filesystem_view": "no minimal root: host files readable by the sandbox uid are visible (home folders, "
                       "checkouts, the store, unix sockets of host services)",
    "private_tmp": "/tmp and /dev/shm are shared with the host",
    "seccomp": "syscalls are not filtered (sockets, ptrace, mounts, namespaces, keyctl, bpf ...)",
    "subreaper": "orphans of the code are not re-parented to the server",
}
NEEDS_USER_NAMESPACE = ("network_namespace", "mount_namespace", "ipc_namespace", "pid_namespace", "filesystem_view")
MODE_ROOT = "root"
MODE_USERNS = "unprivileged, user namespace"
MODE_NO_USERNS = "unprivileged, no user namespace"


def lost(guarantee: str, reason: str) -> dict[str, str]:
    """One missing guarantee: its name, why (the kernel's words where it gave any), what is lost."""
    if guarantee not in GUARANTEES:
        raise ValueError(f"unknown sandbox guarantee {guarantee!r}")
    return {"guarantee": guarantee, "reason": reason, "effect": GUARANTEES[guarantee]}


def kernel_reason(exc: OSError) -> str:
    """What the kernel said: 'unshare: Operation not permitted (EPERM)'."""
    name = errno.errorcode.get(exc.errno or 0)
    return f"{exc.strerror or exc}" + (f" ({name})" if name else "")


def describe(item: dict[str, str]) -> str:
    """One sentence: 'no network namespace (Operation not permitted): the network is not cut ...'."""
    return f"no {item['guarantee'].replace('_', ' ')} ({item['reason']}): {item['effect']}"


def mode(is_root: bool, userns: bool) -> str:
    return MODE_ROOT if is_root else MODE_USERNS if userns else MODE_NO_USERNS


def report(infos: list[dict]) -> dict:
    """What the start-up infos of one process's servers say: its modes and every
    missing guarantee (once per name; the first reason given)."""
    missing: dict[str, dict[str, str]] = {}
    for info in infos:
        for item in info.get("missing_guarantees") or ():
            missing.setdefault(item["guarantee"], dict(item))
    return {"modes": sorted({info["mode"] for info in infos if info.get("mode")}),
            "missing": [missing[name] for name in GUARANTEES if name in missing]}


def merge_reports(reports: list[dict]) -> dict:
    """The sandbox reports of many shards (each from ``report``) as one: the modes
    seen, how many shards ran code, and each missing guarantee with the shards that
    ran without it."""
    missing: dict[str, dict] = {}
    modes: set[str] = set()
    for item in reports:
        modes.update(item.get("modes") or ())
        for entry in item.get("missing") or ():
            bucket = missing.setdefault(entry["guarantee"], {**entry, "shards": 0})
            bucket["shards"] += int(entry.get("shards", 1))
    shards = sum(int(item.get("shards", 1)) for item in reports)
    return {"shards": shards, "modes": sorted(modes), "complete": not missing,
            "missing": [missing[name] for name in GUARANTEES if name in missing]}


def warning_lines(merged: dict) -> list[str]:
    """The warning block a run prints when guarantees were missing (empty when none)."""
    if not merged.get("missing"):
        return []
    lines = [f"SANDBOX ISOLATION INCOMPLETE ({', '.join(merged.get('modes') or ['unknown mode'])}): code ran in "
             f"{merged.get('shards', 0)} shard(s) without these guarantees:"]
    lines += [f"  - {item['guarantee']} ({item['reason']}): {item['effect']}" for item in merged["missing"]]
    lines.append("  set CODEIO_SANDBOX_REQUIRE_ISOLATION=true to make this an error; docs/SANDBOX.md lists what "
                 "each mode isolates")
    return lines


def require_message(missing: list[dict[str, str]]) -> str:
    """The one-line error of CODEIO_SANDBOX_REQUIRE_ISOLATION=true."""
    return ("sandbox isolation is incomplete and CODEIO_SANDBOX_REQUIRE_ISOLATION is set; missing: "
            + "; ".join(f"{item['guarantee']} ({item['reason']})" for item in missing))


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                       ctypes.c_ulong(flags), data.encode() if data else None), f"mount {target}")


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl {option}")


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def enter_user_namespace() -> None:
    """Unprivileged: a user namespace where this process keeps its own uid and gid
    (mapped to themselves) and gains capabilities over its new namespaces only."""
    uid, gid = os.geteuid(), os.getegid()
    unshare(CLONE_NEWUSER)
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")


def enter_namespaces(notes: list[dict[str, str]]) -> dict[str, bool]:
    """Network, mount, IPC and PID namespaces, each on its own so one refusal
    costs only its own guarantee (appended to ``notes``). PID takes effect for the next fork."""
    got = {}
    for name, flag, guarantee in (("net", CLONE_NEWNET, "network_namespace"), ("mount", CLONE_NEWNS, "mount_namespace"),
                                  ("ipc", CLONE_NEWIPC, "ipc_namespace"), ("pid", CLONE_NEWPID, "pid_namespace")):
        try:
            unshare(flag)
            got[name] = True
        except OSError as exc:
            got[name] = False
            notes.append(lost(guarantee, kernel_reason(exc)))
    return got


def become_namespace_init() -> None:
    """After unshare(CLONE_NEWPID): fork; the child is PID 1 of the new namespace
    and carries on as the server, the parent stays outside, holds nothing and
    exits with the child (so killing it, as the pool does, ends the namespace)."""
    pid = os.fork()
    if pid == 0:
        return
    os.closerange(0, 2)
    os.closerange(3, 1 << 16)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def view_paths(package_root: str) -> list[str]:
    """What children need from the host, read-only: the interpreter's prefixes and
    every import path but the project checkout (the fork server already imported
    all of the project a child uses)."""
    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix, *[p for p in sys.path if p]}
    project = os.path.realpath(package_root)
    paths = set()
    for path in candidates:
        real = os.path.realpath(path)
        if not os.path.isdir(real) or real == project or real == "/":
            continue
        if real.startswith(tuple(d + "/" for d in SYSTEM_DIRS)) or real in SYSTEM_DIRS:
            continue
        paths.add(real)
    kept: list[str] = []
    for path in sorted(paths):
        if not any(path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


def build_root(package_root: str, with_proc: bool) -> None:
    """Replace this mount namespace's root with a minimal one (see module doc)."""
    mount("none", "/", None, MS_REC | MS_PRIVATE)
    views = view_paths(package_root)
    # stage where no view path lives: a tmpfs over the folder that holds the venv (a checkout in /tmp) would hide it
    root = next(d for d in VIEW_STAGING_CANDIDATES
                if os.path.isdir(d) and not any(v == d or v.startswith(d + "/") for v in views))
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16m")
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            os.symlink(os.readlink(path), root + path)
        elif os.path.isdir(path):
            _bind(path, root + path)
    # private /tmp first: a venv or interpreter that lives under /tmp (a checkout there)
    # is then bound on top of it instead of being hidden by it
    for private in ("/tmp", "/dev/shm"):
        # 0555: children hold no capability, so they write only in their own work dir
        # even when they share the server's uid (the server still creates work dirs)
        os.makedirs(root + private, 0o755, exist_ok=True)
        mount("tmpfs", root + private, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=0555,size={PRIVATE_FS_SIZE}")
    for path in views:
        _bind(path, root + path)
    os.makedirs(root + "/etc", 0o755, exist_ok=True)
    for path in ETC_FILES:
        if os.path.exists(path):
            _bind(os.path.realpath(path), root + path, is_file=True)
    os.makedirs(root + "/dev", 0o755, exist_ok=True)  # /dev/shm made it already
    for name in DEVICES:
        _bind(f"/dev/{name}", f"{root}/dev/{name}", is_file=True, read_only=False)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{root}/dev/{name}")
    os.makedirs(root + "/proc", 0o555)
    if with_proc:
        mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.chdir(root)
    _check(_libc.syscall(_SYSCALLS["pivot_root"], b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "umount old root")
    os.chdir("/")
    mount("none", "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _bind(source: str, target: str, is_file: bool = False, read_only: bool = True) -> None:
    if is_file:
        os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o644))
    else:
        os.makedirs(target, 0o755, exist_ok=True)
    mount(source, target, None, MS_BIND | MS_REC)
    flags = MS_BIND | MS_REMOUNT | MS_NOSUID | (MS_RDONLY if read_only else 0)
    try:
        mount("none", target, None, flags | MS_NODEV if read_only else flags)
    except OSError:
        # a locked flag of the source mount (nodev, noexec) must be kept: ask again with it
        mount("none", target, None, flags | MS_NODEV | MS_NOEXEC)


# ---- children ----------------------------------------------------------------
class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capabilities() -> None:
    """No capability left (a child of an unprivileged server has them all in its
    user namespace), and none to regain through exec."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "capset")


# Syscall numbers per architecture: what the filter refuses, plus what the set-up uses.
_ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (0xC000003E, {
        "socket": 41, "connect": 42, "accept": 43, "bind": 49, "listen": 50, "accept4": 288,
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
        "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "unshare": 272, "setns": 308,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
        "mount_setattr": 442, "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321,
        "perf_event_open": 298, "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "open_by_handle_at": 304, "kexec_load": 246, "init_module": 175,
        "finit_module": 313, "delete_module": 176, "clone": 56, "clone3": 435,
    }),
    "aarch64": (0xC00000B7, {
        "socket": 198, "connect": 203, "accept": 202, "bind": 200, "listen": 201, "accept4": 242,
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271,
        "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51, "unshare": 97, "setns": 268,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
        "mount_setattr": 442, "keyctl": 219, "add_key": 217, "request_key": 218, "bpf": 280,
        "perf_event_open": 241, "userfaultfd": 282, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "open_by_handle_at": 265, "kexec_load": 104, "init_module": 105,
        "finit_module": 273, "delete_module": 106, "clone": 220, "clone3": 435,
    }),
}
_ARCH = _ARCHES.get(platform.machine())
_SYSCALLS = _ARCH[1] if _ARCH else {"pivot_root": -1}
# Refused with EPERM: no socket of any family (socketpair stays: an unnamed
# connected pair reaches nothing, and asyncio needs it), no tracing or reading
# other processes, no mounts or namespaces, no kernel keyring, BPF, perf,
# io_uring (it would bypass this filter), module loading.
SECCOMP_DENIED = ("socket", "connect", "accept", "accept4", "bind", "listen", "ptrace", "process_vm_readv",
                  "process_vm_writev", "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "open_tree",
                  "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "keyctl", "add_key",
                  "request_key", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
                  "io_uring_register", "open_by_handle_at", "kexec_load", "init_module", "finit_module",
                  "delete_module")
EPERM = 1
ENOSYS = 38
_BPF_LD_W_ABS = 0x20
_BPF_JEQ_K = 0x15
_BPF_JGE_K = 0x35
_BPF_JSET_K = 0x45
_BPF_RET_K = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_RET_KILL_PROCESS = 0x80000000
X32_SYSCALL_BIT = 0x40000000


def seccomp_available() -> bool:
    return _ARCH is not None


def _filter_program() -> bytes:
    arch, numbers = _ARCH
    prog: list[tuple[int, int, int, int]] = []

    def op(code: int, k: int, jt: int = 0, jf: int = 0) -> None:
        prog.append((code, jt, jf, k))

    op(_BPF_LD_W_ABS, 4)  # seccomp_data.arch
    op(_BPF_JEQ_K, arch, 1, 0)
    op(_BPF_RET_K, _RET_KILL_PROCESS)
    op(_BPF_LD_W_ABS, 0)  # seccomp_data.nr
    if platform.machine() == "x86_64":
        op(_BPF_JGE_K, X32_SYSCALL_BIT, 0, 1)
        op(_BPF_RET_K, _RET_ERRNO | EPERM)
    for name in SECCOMP_DENIED:
        op(_BPF_JEQ_K, numbers[name], 0, 1)
        op(_BPF_RET_K, _RET_ERRNO | EPERM)
    op(_BPF_JEQ_K, numbers["clone3"], 0, 1)  # its flags live in memory the filter cannot read: glibc falls back to clone
    op(_BPF_RET_K, _RET_ERRNO | ENOSYS)
    op(_BPF_JEQ_K, numbers["clone"], 0, 3)
    op(_BPF_LD_W_ABS, 16)  # low word of args[0]: clone flags
    op(_BPF_JSET_K, NAMESPACE_FLAGS, 0, 1)
    op(_BPF_RET_K, _RET_ERRNO | EPERM)
    op(_BPF_RET_K, _RET_ALLOW)
    return b"".join(struct.pack("HBBI", *ins) for ins in prog)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


SECCOMP_PROGRAM = _filter_program() if _ARCH is not None else b""


def install_seccomp() -> None:
    """Load the filter in this process (inherited by whatever it forks). The
    frame protocol uses only pipes and write(): nothing the filter refuses."""
    load_seccomp(SECCOMP_PROGRAM)


def load_seccomp(program: bytes) -> None:
    """Load a classic-BPF seccomp ``program`` (packed ``HBBI`` instructions) in this
    process, with no_new_privs set first as the kernel requires of an unprivileged caller."""
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0), "seccomp")


def syscall_numbers() -> tuple[int, dict[str, int]]:
    """This machine's seccomp audit arch and the syscall numbers the filter knows (LookupError
    where the architecture has no table: no filter there)."""
    if _ARCH is None:
        raise LookupError(f"no seccomp syscall table for {platform.machine()}")
    return _ARCH


def set_not_dumpable() -> None:
    """Nothing of the same uid may ptrace this process or read its /proc files."""
    prctl(PR_SET_DUMPABLE, 0)
