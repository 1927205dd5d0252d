"""Who a process is, and whether it is gone: for runs and claims left by a killed run.

A pid alone names nothing for sure: another host, another PID namespace under
the same host name (containers), a reboot or a reused pid would all make a
plain ``kill(pid, 0)`` lie. A process is recorded as its host name, the
kernel's boot id, its PID namespace, its pid and its start time (in clock
ticks since boot); it is *gone* only when we share its host, boot and
namespace and no process with that pid and start time exists. Anything we
cannot see is *unknown*, never gone.
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any, Mapping

PROC = Path("/proc")
BOOT_ID = PROC / "sys" / "kernel" / "random" / "boot_id"


class Liveness(str, Enum):
    ALIVE = "alive"
    GONE = "gone"
    UNKNOWN = "unknown"  # another host, boot or namespace: its lease or owner decides


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def pid_namespace() -> str:
    """This process's PID namespace (the inode of /proc/self/ns/pid), "" where /proc
    does not tell. Containers often share a host name: a pid means something only
    within its namespace."""
    try:
        link = os.readlink(PROC / "self" / "ns" / "pid")
    except OSError:
        return ""
    return link.partition("[")[2].rstrip("]")


def start_ticks(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (field 22 of /proc/PID/stat);
    None when there is no such process or it is a zombie (dead, not reaped yet)."""
    stat = _read(PROC / str(pid) / "stat")
    fields = stat.rpartition(")")[2].split()  # the name may hold spaces and parentheses
    try:
        return None if fields[0] in ("Z", "X") else int(fields[19])
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True)
class ProcessIdentity:
    host: str
    pid: int
    boot_id: str = ""
    pid_ns: str = ""
    started: int | None = None

    @classmethod
    def current(cls) -> ProcessIdentity:
        pid = os.getpid()
        return cls(host=socket.gethostname(), pid=pid, boot_id=_read(BOOT_ID), pid_ns=pid_namespace(),
                   started=start_ticks(pid))

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity:
        """Another process of this host, boot and namespace (e.g. a child)."""
        return replace(cls.current(), pid=pid, started=start_ticks(pid))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ProcessIdentity | None:
        if not data or not isinstance(data.get("pid"), int) or not isinstance(data.get("host"), str):
            return None
        started = data.get("started")
        return cls(host=data["host"], pid=data["pid"], boot_id=str(data.get("boot_id") or ""),
                   pid_ns=str(data.get("pid_ns") or ""), started=started if isinstance(started, int) else None)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def liveness(self) -> Liveness:
        here = ProcessIdentity.current()
        if (self.host, self.boot_id, self.pid_ns) != (here.host, here.boot_id, here.pid_ns) or not self.boot_id \
                or not self.pid_ns:
            return Liveness.UNKNOWN
        started = start_ticks(self.pid)
        if started is None or (self.started is not None and started != self.started):
            return Liveness.GONE  # no such process, or the pid now names a younger one
        return Liveness.ALIVE

    def is_gone(self) -> bool:
        return self.liveness() is Liveness.GONE
