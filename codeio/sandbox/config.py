"""Configuration of the sandbox pool (frozen: one value per executor)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from codeio.execution import Limits

DEFAULT_PRELOAD: tuple[str, ...] = (
    "math", "random", "itertools", "collections", "functools", "heapq", "bisect",
    "re", "string", "json", "statistics", "fractions", "decimal", "copy", "datetime",
    "typing", "operator", "numpy",
)


@dataclass(frozen=True)
class SandboxConfig:
    """How the fork-server pool is built.

    ``workers`` is the number of fork servers (batches that run in parallel);
    ``memory_mb`` caps the address space any request may ask for; ``limits``
    are the defaults callers should use when they have no better value.
    """

    preload: tuple[str, ...] = DEFAULT_PRELOAD
    workers: int = 2
    memory_mb: int = 4096
    limits: Limits = field(default_factory=Limits)
    python: str = sys.executable
    hashseed: int = 0  # PYTHONHASHSEED of the normal servers (reproducible set order)
    recheck_hashseed: int = 12345  # PYTHONHASHSEED of the determinism re-check servers
    isolate_network: bool = True  # own user (unprivileged), network, mount, IPC, PID namespaces when the kernel allows
    require_isolation: bool = False  # a missing guarantee (kernel refused a namespace, seccomp...) is an error
    uid_base: int = 61000  # unprivileged uids, one per server, when running as root
    uid_count: int = 1000
    lock_dir: str = "/run/codeio-sandbox"  # per-uid lock files: two executors never share a uid
    work_root: str = "/tmp/codeio-sandbox"  # fallback work-dir root (suffixed by the euid) without a mount namespace
    start_timeout_s: float = 60.0  # server start-up (imports) deadline
    response_slack_s: float = 10.0  # extra wait for a server answer beyond the code's own deadlines
