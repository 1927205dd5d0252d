"""Per-process resources of a worker: one sandbox pool, one LLM client.

A Dask worker process (or the flow process with a thread-pool runner) builds
each resource once, on first use, keyed by its frozen config; later shard
tasks in the same process reuse it. Nothing is created at import time.
"""

from __future__ import annotations

import atexit
import os
import dataclasses
import pickle
import threading
from dataclasses import dataclass
from typing import Any

from codeio.execution import Executor, Limits
from storage.store import StoreSpec

SANDBOX_STAT = "sandbox"  # the shard stat holding sandbox_report()
_lock = threading.RLock()  # builders may ask for other resources
_resources: dict[tuple[str, Any], Any] = {}


@dataclass(frozen=True)
class RuntimeSpec:
    """How a shard task reaches its resources. Picklable; not part of any dataset key."""

    store: StoreSpec
    sandbox: Any  # codeio.sandbox.SandboxConfig
    llm: Any | None  # codeio.llm.LLMConfig, None when no endpoint is configured
    parallelism: int = 0  # sandbox batches in flight per process; 0: size to this process's share of cores
    templates: Any = None  # codeio.prompting.PromptTemplates, loaded once by the flow (workers may not see its folder)
    exec_cache: bool = True
    # the LLM client counts spend per object: a budgeted stage of a run gets its own ("run/stage"), so a
    # long-lived worker never charges one run's spend to another's budget; "" shares one client
    llm_scope: str = ""
    # how ingestion shards reach s3:// sources: fsspec options (credentials: never in keys or lineage)
    sources: StoreSpec | None = None

    def __repr__(self) -> str:  # never show credentials that the configs may carry
        return f"RuntimeSpec(store={self.store!r}, parallelism={self.parallelism})"


def _fingerprint(value: Any) -> str:
    """A hashable identity for (possibly unhashable) frozen configs."""
    return pickle.dumps(value, protocol=4).hex()


def _get(kind: str, key: Any, build):
    identity = (kind, _fingerprint(key))
    with _lock:
        found = _resources.get(identity)
        if found is None:
            found = build()
            _resources[identity] = found
        return found


def environment_fingerprint(preload: tuple[str, ...]) -> str:
    """What collected pairs depend on besides the code: the Python version and the
    versions of the preloaded third-party packages, in this process (the sandbox
    servers run this process's interpreter). It enters collect_io's dataset key, so
    upgrading numpy re-collects pairs instead of trusting old ones."""
    import platform
    from importlib import metadata

    versions = []
    for name in sorted(preload):
        try:
            versions.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(name)  # a stdlib module: covered by the Python version
    return f"{platform.python_implementation()}-{platform.python_version()}:" + ",".join(versions)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def parallelism(runtime: RuntimeSpec) -> int:
    """How many sandbox batches this process runs at once. A Dask worker gets as many
    as it has threads (Dask is told nworkers x nthreads = cores, so a LocalCluster of
    2 single-thread processes on 2 cores gets 1 each); the flow process running
    shards on threads gets all its cores."""
    if runtime.parallelism > 0:
        return runtime.parallelism
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        return max(1, usable_cores())


def sandbox(runtime: RuntimeSpec) -> Executor:
    """The worker's sandbox pool (one per process, sized to its cores), wrapped by
    the execution cache on the store."""
    pool = _sandbox_pool(runtime)
    if not runtime.exec_cache:
        return pool
    from codeio.sandbox.cache import CachingExecutor

    return _get("exec-cache", (runtime.sandbox, runtime.store),
                lambda: CachingExecutor(pool, runtime.store.open().kv("exec")))


def sandbox_report(runtime: RuntimeSpec) -> dict[str, Any]:
    """The isolation this process's sandbox pool runs code with: its mode and the
    guarantees the kernel refused (``codeio.sandbox.isolation.report``). The stages
    that execute code put it in their shard stats (``SANDBOX_STAT``), so it reaches
    the run summary, the CLI and lineage."""
    return _sandbox_pool(runtime).isolation_report()


def _sandbox_pool(runtime: RuntimeSpec):
    from codeio.sandbox import create_executor

    config = dataclasses.replace(runtime.sandbox, workers=parallelism(runtime))
    return _get("sandbox", config, lambda: create_executor(config))


def llm(runtime: RuntimeSpec):
    """The worker's LLM client (one per process and endpoint config), with the
    response cache on the store."""
    if runtime.llm is None:
        return None
    from codeio.llm.openai_client import OpenAIChatLLM

    def build():
        config = runtime.llm
        if not config.api_key:
            # the key never travels with the job: each worker reads its own environment
            from codeio.settings import Settings

            key = Settings().llm_api_key
            if key is not None:
                config = dataclasses.replace(config, api_key=key.get_secret_value())
        return OpenAIChatLLM(config, cache=runtime.store.open().kv("llm"))

    return _get("llm", (runtime.llm, runtime.store, runtime.llm_scope), build)


def offline_teacher(runtime: RuntimeSpec, limits: Limits):
    from codeio.teachers.offline import OfflineTeacher

    return _get("offline", (runtime.sandbox, runtime.store, limits),
                lambda: OfflineTeacher(sandbox(runtime), limits))


def templates(runtime: RuntimeSpec):
    from codeio.prompting import PromptTemplates

    return runtime.templates if runtime.templates is not None else PromptTemplates.load()


def close_all() -> None:
    with _lock:
        for resource in _resources.values():
            close = getattr(resource, "close", None)
            if callable(close):
                close()
        _resources.clear()


atexit.register(close_all)
