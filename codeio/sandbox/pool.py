"""The executor the pipeline uses: a pool of fork servers, one request at a
time per server, safe to call from many threads.

Servers are started from one long-lived launcher thread because
``PR_SET_PDEATHSIG`` fires when the *thread* that forked the server ends.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import queue
import signal
import subprocess
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import codeio
from codeio.execution import CallResult, ExecStatus, RunRequest, SampledPair, SampleRequest, SampleResult
from codeio.sandbox import isolation
from codeio.sandbox.config import SandboxConfig
from codeio.sandbox.protocol import ChannelClosed, ChannelTimeout, FrameReader, ProtocolError, write_frame

ENGINE_VERSION = "forkserver-1"
SERVER_MODULE = "codeio.sandbox.server"
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
PER_CALL_SLACK_S = 1.0  # server-side overhead allowance per call (fork, reap) in the answer deadline
UID_DRAIN_S = 5.0  # how long close() waits for a leased uid's processes to be gone
SERVER_EXIT_WAIT_S = 2.0  # a server told to stop (EOF) reaps its last child and exits by itself
STATUS_BY_VALUE = {s.value: s for s in ExecStatus}
_LOG = logging.getLogger(__name__)


class ServerFailure(Exception):
    """A fork server died, hung or broke the protocol (infrastructure, not user code)."""


class IsolationUnavailable(RuntimeError):
    """``require_isolation`` is set and the kernel refused part of the isolation."""


def _clean_env(hashseed: int, package_root: str) -> dict[str, str]:
    """The only environment a server (and so every child) ever sees: no secrets."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONHASHSEED": str(hashseed),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONPATH": package_root,
    }
    for name in BLAS_THREAD_VARS:
        env[name] = "1"
    return env


class _Launcher:
    """One thread that outlives every server it starts (see module docstring)."""

    def __init__(self) -> None:
        self._stopped = False
        self._stop_lock = threading.Lock()
        self._jobs: queue.Queue[tuple[concurrent.futures.Future[subprocess.Popen[bytes]], dict[str, Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="codeio-sandbox-launcher", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            future, kwargs = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(subprocess.Popen(**kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                future.set_exception(exc)

    def popen(self, **kwargs: Any) -> subprocess.Popen[bytes]:
        future: concurrent.futures.Future[subprocess.Popen[bytes]] = concurrent.futures.Future()
        with self._stop_lock:
            if self._stopped:
                raise ServerFailure("executor is closed")
            self._jobs.put((future, kwargs))
        return future.result()

    def stop(self) -> None:
        with self._stop_lock:
            if not self._stopped:
                self._stopped = True
                self._jobs.put(None)


class _UidLease:
    """Exclusive use of one unprivileged uid (flock on a file): escapee reaping
    by ``kill(-1)`` from that uid must never hit another executor's children."""

    def __init__(self, config: SandboxConfig) -> None:
        os.makedirs(config.lock_dir, mode=0o700, exist_ok=True)
        for uid in range(config.uid_base, config.uid_base + config.uid_count):
            fd = os.open(os.path.join(config.lock_dir, f"uid-{uid}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.uid = uid
            self._fd = fd
            kill_uid_processes(uid)  # orphans of a previous owner that died hard
            return
        raise RuntimeError(f"no free sandbox uid in {config.uid_base}..{config.uid_base + config.uid_count - 1}")

    def release(self) -> None:
        """Give the uid back only once no process runs under it any more."""
        if self._fd >= 0:
            kill_uid_processes(self.uid)
            os.close(self._fd)
            self._fd = -1


def uid_processes(uid: int) -> list[int]:
    """Live (non-zombie) processes whose real uid is ``uid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                fields = dict(line.split(":", 1) for line in fh if ":" in line)
        except (OSError, ValueError):
            continue
        uids = fields.get("Uid", "").split()
        if uids and int(uids[0]) == uid and not fields.get("State", "").strip().startswith("Z"):
            found.append(int(entry))
    return found


def kill_uid_processes(uid: int, wait_s: float = UID_DRAIN_S) -> None:
    """SIGKILL every process of a leased sandbox uid and wait for them to go."""
    deadline = time.monotonic() + wait_s
    while True:
        pids = uid_processes(uid)
        if not pids or time.monotonic() > deadline:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


class _Server:
    """Parent-side handle of one fork server. Used by one thread at a time."""

    def __init__(self, owner: SandboxExecutor, slot: int, hashseed: int) -> None:
        self.owner = owner
        self.slot = slot
        self.hashseed = hashseed
        self.lease = _UidLease(owner.config) if os.geteuid() == 0 else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.reader: FrameReader | None = None
        self.info: dict[str, Any] | None = None
        self.starts = 0

    def start(self) -> None:
        cfg = self.owner.config
        if self.lease is not None and self.starts:
            kill_uid_processes(self.lease.uid)  # what a dead predecessor left behind
        server_cfg = {
            "slot": self.slot,
            "uid": self.lease.uid if self.lease else None,
            "preload": list(cfg.preload),
            "parent_pid": os.getpid(),
            "isolate_network": cfg.isolate_network,
            "package_root": self.owner.package_root,
            "work_root": os.path.join(f"{cfg.work_root}-{os.geteuid()}", f"{os.getpid()}-{self.slot}-{self.hashseed}"),
        }
        self.proc = self.owner.launcher.popen(
            args=[cfg.python, "-P", "-m", SERVER_MODULE, json.dumps(server_cfg)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None,
            env=_clean_env(self.hashseed, self.owner.package_root), cwd="/", close_fds=True,
        )
        self.reader = FrameReader(self.proc.stdout.fileno())
        self.info = None
        self.starts += 1

    def ensure_ready(self) -> dict[str, Any]:
        if self.proc is None or self.proc.poll() is not None:
            self.stop()
            self.start()
        if self.info is None:
            frame = self._read(time.monotonic() + self.owner.config.start_timeout_s)
            if not frame.get("ready"):
                self.stop()
                raise ServerFailure(f"server did not start: {frame!r:.200}")
            self.info = frame["info"]
            if not self.info.get("child_imports_ok", True):
                _LOG.warning("sandbox uid cannot read the Python library under %s: modules that are not "
                             "preloaded will fail to import in the sandbox", self.owner.config.python)
            missing = list(self.info.get("missing_guarantees", ()))
            if missing and self.owner.config.require_isolation:
                self.stop()
                raise IsolationUnavailable(isolation.require_message(missing))
            for note in self.info.get("notes", ()):
                _LOG.warning("SANDBOX ISOLATION INCOMPLETE: %s", note)
        return self.info

    def _read(self, deadline: float) -> dict[str, Any]:
        if self.reader is None:
            raise ServerFailure("server not started")
        try:
            frame = self.reader.read(deadline)
        except ChannelTimeout:
            self.stop()
            raise ServerFailure("server did not answer in time") from None
        except (ChannelClosed, ProtocolError) as exc:
            code = self.proc.poll() if self.proc else None
            self.stop()
            raise ServerFailure(f"server died (exit {code}): {type(exc).__name__}") from None
        if not isinstance(frame, dict):
            self.stop()
            raise ServerFailure("malformed answer from the server")
        return frame

    def request(self, job: dict[str, Any], budget_s: float) -> dict[str, Any]:
        self.ensure_ready()
        try:
            write_frame(self.proc.stdin.fileno(), job)
        except OSError as exc:
            self.stop()
            raise ServerFailure(f"cannot reach the server: {exc}") from None
        frame = self._read(time.monotonic() + budget_s + self.owner.config.response_slack_s)
        if "error" in frame:
            raise ServerFailure(f"server error: {frame['error']}")
        return frame

    def stop(self, graceful: bool = False) -> None:
        proc, self.proc = self.proc, None
        self.info = None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        if graceful:
            try:
                proc.wait(timeout=SERVER_EXIT_WAIT_S)
            except subprocess.TimeoutExpired:
                pass
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def close(self) -> None:
        self.stop(graceful=True)
        if self.lease is not None:
            self.lease.release()


class _Pool:
    """Servers with one hash seed; a blocking queue hands each to one thread at a time."""

    def __init__(self, owner: SandboxExecutor, hashseed: int, start_now: bool) -> None:
        self.servers = [_Server(owner, slot, hashseed) for slot in range(owner.config.workers)]
        self.free: queue.Queue[_Server] = queue.Queue()
        for server in self.servers:
            if start_now:
                server.start()
            self.free.put(server)

    def close(self) -> None:
        for server in self.servers:
            server.close()


class SandboxExecutor:
    """:class:`codeio.execution.Executor` backed by warm fork servers."""

    def __init__(self, config: SandboxConfig) -> None:
        if config.workers < 1:
            raise ValueError("workers must be >= 1")
        self.config = config
        self.package_root = str(Path(codeio.__file__).resolve().parent.parent)
        self.launcher = _Launcher()
        self._owner_pid = os.getpid()
        self._lock = threading.Lock()
        self._closed = False
        self._pool = _Pool(self, config.hashseed, start_now=True)
        self._recheck_pool: _Pool | None = None
        self._fingerprint: str | None = None
        self._pools: list[_Pool] = [self._pool]  # shared with the finalizer
        self._finalizer = weakref.finalize(self, SandboxExecutor._shutdown, self._pools, self.launcher)

    # ---- pool plumbing ---------------------------------------------------
    def _get_pool(self, recheck: bool) -> _Pool:
        if not recheck:
            return self._pool
        with self._lock:
            if self._recheck_pool is None:
                self._recheck_pool = _Pool(self, self.config.recheck_hashseed, start_now=True)
                self._pools.append(self._recheck_pool)
            return self._recheck_pool

    def _call(self, recheck: bool, job: dict[str, Any], budget_s: float) -> dict[str, Any]:
        if self._closed:
            raise RuntimeError("executor is closed")
        if os.getpid() != self._owner_pid:
            raise RuntimeError("a sandbox executor cannot be used across fork(): create one in each process")
        pool = self._get_pool(recheck)
        server = pool.free.get()
        try:
            try:
                return server.request(job, budget_s)
            except ServerFailure:
                # A server is replaced when it dies; retry the job once in a fresh one.
                return server.request(job, budget_s)
        finally:
            pool.free.put(server)

    def _limits(self, limits: Any) -> dict[str, Any]:
        data = dataclasses.asdict(limits)
        data["memory_mb"] = min(int(data["memory_mb"]), self.config.memory_mb)
        return data

    # ---- Executor ----------------------------------------------------------
    def run(self, request: RunRequest) -> list[CallResult]:
        n = len(request.inputs_json)
        if n == 0:
            return []
        job = {
            "kind": "run",
            "code": request.code,
            "entry": request.entry,
            "inputs": list(request.inputs_json),
            "limits": self._limits(request.limits),
            "stop_on_fatal": bool(request.stop_on_fatal),
            "check_size": bool(request.check_size),
            "seed": int(request.seed),
        }
        budget = (n + 1) * (request.limits.timeout_s + PER_CALL_SLACK_S)
        try:
            frame = self._call(request.recheck, job, budget)
        except ServerFailure as exc:
            return [CallResult(status=ExecStatus.SANDBOX_ERROR, error_message=str(exc))] * n
        raw = frame.get("results")
        if not isinstance(raw, list) or len(raw) != n:
            return [CallResult(status=ExecStatus.SANDBOX_ERROR, error_message="wrong number of results")] * n
        return [_to_call_result(item) for item in raw]

    def sample(self, request: SampleRequest) -> SampleResult:
        job = {
            "kind": "sample",
            "code": request.code,
            "entry": request.entry,
            "generator": request.generator,
            "max_attempts": int(request.max_attempts),
            "max_pairs": int(request.max_pairs),
            "limits": self._limits(request.limits),
            "per_call_timeout_s": float(request.per_call_timeout_s),
            "seed": int(request.seed),
        }
        budget = request.limits.timeout_s + 2 * request.per_call_timeout_s + PER_CALL_SLACK_S
        try:
            frame = self._call(False, job, budget)
        except ServerFailure as exc:
            return SampleResult(status=ExecStatus.SANDBOX_ERROR, error_message=str(exc))
        pairs = tuple(SampledPair(input_json=p[0], output_json=p[1]) for p in frame.get("pairs") or ())
        rejected = frame.get("rejected") or {}
        return SampleResult(
            status=STATUS_BY_VALUE.get(str(frame.get("status")), ExecStatus.SANDBOX_ERROR),
            pairs=pairs,
            attempts=int(frame.get("attempts") or 0),
            rejected={str(k): int(v) for k, v in rejected.items()},
            error_type=frame.get("error_type"),
            error_message=frame.get("error_message"),
        )

    def server_info(self) -> dict[str, Any]:
        """What a normal server reports about itself (Python, preloads, isolation)."""
        server = self._pool.free.get()
        try:
            return dict(server.ensure_ready())
        finally:
            self._pool.free.put(server)

    def isolation_report(self) -> dict[str, Any]:
        """The mode and missing guarantees of this executor's servers (``isolation.report``)."""
        infos = [s.info for pool in self._pools for s in pool.servers if s.info is not None]
        return isolation.report(infos or [self.server_info()])

    def server_pids(self) -> list[int]:
        """Pids of the running fork servers (for monitoring and tests)."""
        return [s.proc.pid for pool in self._pools for s in pool.servers if s.proc is not None and s.proc.poll() is None]

    def sandbox_uids(self) -> list[int]:
        """The unprivileged uids leased by this executor's servers (empty when not root)."""
        return [s.lease.uid for pool in self._pools for s in pool.servers if s.lease is not None]

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            info = self.server_info()
            basis = {
                "engine": ENGINE_VERSION,
                "python": info.get("python"),
                "implementation": info.get("implementation"),
                "preloaded": info.get("preloaded"),
                "hashseed": self.config.hashseed,
            }
            digest = hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:16]
            self._fingerprint = f"py{info.get('python')}-{digest}"
        return self._fingerprint

    def close(self) -> None:
        self._closed = True
        self._finalizer()

    @staticmethod
    def _shutdown(pools: list[_Pool], launcher: _Launcher) -> None:
        for pool in pools:
            pool.close()
        launcher.stop()

    def __enter__(self) -> SandboxExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _to_call_result(item: Any) -> CallResult:
    if not isinstance(item, dict):
        return CallResult(status=ExecStatus.SANDBOX_ERROR, error_message="malformed result")
    return CallResult(
        status=STATUS_BY_VALUE.get(str(item.get("status")), ExecStatus.SANDBOX_ERROR),
        value_json=item.get("value_json"),
        error_type=item.get("error_type"),
        error_message=item.get("error_message"),
        traceback=item.get("traceback"),
        duration_s=float(item.get("duration_s") or 0.0),
    )


def create_executor(config: SandboxConfig | None = None) -> SandboxExecutor:
    """A ready-to-use, thread-safe executor; servers start in the background
    (with ``require_isolation``, the first is awaited: missing isolation fails here)."""
    executor = SandboxExecutor(config or SandboxConfig())
    if executor.config.require_isolation:
        try:
            executor.server_info()
        except BaseException:
            executor.close()
            raise
    return executor


def missing_guarantees(executor: SandboxExecutor) -> list[str]:
    """What the kernel refused, one sentence per lost guarantee (empty: full isolation)."""
    return list(executor.server_info().get("notes", ()))
