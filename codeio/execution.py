"""The typed contract between the pipeline and whatever executes untrusted code.

Every function the pipeline runs was written by an LLM or scraped from a corpus,
so it only ever runs behind an :class:`Executor`. Stages depend on this module
alone; the sandbox implementation in :mod:`codeio.sandbox` can change freely.

Values cross the boundary as canonical JSON text (``json.dumps`` of what the
function returned, ``allow_nan=True``), so the parent never unpickles anything
produced by hostile code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol


class ExecStatus(str, enum.Enum):
    """Outcome of one call. Everything but SANDBOX_ERROR is the code's own fault."""

    OK = "ok"
    EXCEPTION = "exception"  # the code raised (type, message, short traceback)
    TIMEOUT = "timeout"  # wall-clock or CPU deadline
    MEMORY = "memory"  # address-space limit (MemoryError or killed for it)
    OUTPUT_LIMIT = "output_limit"  # printed too much, or file-size limit
    KILLED = "killed"  # died by a signal (segfault, abort, SIGKILL from itself)
    INVALID_VALUE = "invalid_value"  # result not JSON-serializable or over the size limits
    SANDBOX_ERROR = "sandbox_error"  # our infrastructure failed, not the user's code


FATAL_STATUSES = frozenset(
    {ExecStatus.TIMEOUT, ExecStatus.MEMORY, ExecStatus.KILLED, ExecStatus.OUTPUT_LIMIT, ExecStatus.SANDBOX_ERROR}
)


@dataclass(frozen=True)
class Limits:
    """Per-call resource limits. Part of the execution-cache key."""

    timeout_s: float = 5.0  # wall-clock deadline per call, enforced from outside
    memory_mb: int = 1024  # RLIMIT_AS
    max_output_bytes: int = 1 << 20  # captured stdout+stderr cap
    max_file_bytes: int = 1 << 20  # RLIMIT_FSIZE
    max_processes: int = 0  # extra processes the code may start (0: cannot fork)


@dataclass(frozen=True)
class CallResult:
    status: ExecStatus
    value_json: str | None = None  # json.dumps of the returned value when status is OK
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is ExecStatus.OK

    def describe(self) -> str:
        """One line for feedback and reject reasons."""
        if self.status is ExecStatus.OK:
            return "ok"
        if self.status is ExecStatus.EXCEPTION:
            return f"{self.error_type}: {self.error_message}"
        detail = f": {self.error_message}" if self.error_message else ""
        return f"{self.status.value}{detail}"


@dataclass(frozen=True)
class RunRequest:
    """Run ``entry(**kwargs)`` for each kwargs, in order, in one isolated child.

    A fatal outcome (timeout, memory, crash) stops the batch: the remaining calls
    come back as not run only if ``stop_on_fatal``; otherwise they continue in a
    fresh child.
    """

    code: str
    inputs_json: tuple[str, ...]  # each a JSON object of keyword arguments
    entry: str = "main_solution"
    limits: Limits = field(default_factory=Limits)
    stop_on_fatal: bool = True
    check_size: bool = True  # apply METHOD.md size limits to the returned value
    seed: int = 0  # random.seed / numpy seed set before each call
    # The determinism re-check: run in a server started with a different
    # PYTHONHASHSEED; never served from the execution cache.
    recheck: bool = False


@dataclass(frozen=True)
class SampleRequest:
    """Call ``generator()`` up to ``max_attempts`` times and ``entry(**input)`` on each
    new input that passes the size check, keeping outputs that are not None and pass
    the size check and are finite; stop at ``max_pairs``."""

    code: str
    entry: str = "main_solution"
    generator: str = "input_generator"
    max_attempts: int = 1000
    max_pairs: int = 10
    limits: Limits = field(default_factory=lambda: Limits(timeout_s=60.0))  # whole sampling budget
    per_call_timeout_s: float = 5.0
    seed: int = 0


@dataclass(frozen=True)
class SampledPair:
    input_json: str
    output_json: str


@dataclass(frozen=True)
class SampleResult:
    status: ExecStatus  # OK when sampling ran to the end (even with few pairs)
    pairs: tuple[SampledPair, ...] = ()
    attempts: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> count (duplicate, input_too_large, output_none, ...)
    error_type: str | None = None
    error_message: str | None = None


class Executor(Protocol):
    """What stages need from a sandbox. Implementations must be safe to call from
    several threads of one process."""

    def run(self, request: RunRequest) -> list[CallResult]: ...

    def sample(self, request: SampleRequest) -> SampleResult: ...

    def fingerprint(self) -> str:
        """Environment fingerprint (Python version, preloaded packages) for cache keys."""
        ...

    def close(self) -> None: ...


def run_one(executor: Executor, code: str, input_json: str, *, limits: Limits, entry: str = "main_solution") -> CallResult:
    return executor.run(RunRequest(code=code, inputs_json=(input_json,), entry=entry, limits=limits))[0]


__all__ = [
    "CallResult",
    "ExecStatus",
    "Executor",
    "FATAL_STATUSES",
    "Limits",
    "RunRequest",
    "SampleRequest",
    "SampleResult",
    "SampledPair",
    "run_one",
]
