"""Sandboxed execution of untrusted functions: a warm fork-server pool that
implements :class:`codeio.execution.Executor`.

    from codeio.sandbox import SandboxConfig, create_executor
    executor = create_executor(SandboxConfig(workers=2))

Exports are resolved lazily so that the fork server, which imports
``codeio.sandbox.server``, does not load the pool's threading/subprocess
machinery: every extra shared library makes each fork slower.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from codeio.sandbox.cache import CachingExecutor
    from codeio.sandbox.config import DEFAULT_PRELOAD, SandboxConfig
    from codeio.sandbox.pool import SandboxExecutor, create_executor

_EXPORTS = {
    "CachingExecutor": "codeio.sandbox.cache",
    "DEFAULT_PRELOAD": "codeio.sandbox.config",
    "SandboxConfig": "codeio.sandbox.config",
    "SandboxExecutor": "codeio.sandbox.pool",
    "create_executor": "codeio.sandbox.pool",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'codeio.sandbox' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = sorted(_EXPORTS)
