"""The processes of a `codeio run` (and of `codeio ingest`, `eval` and `sweep`, which
start the same way, see ``start_supervised``): how it stops, and how nothing outlives it.

``codeio run`` is a small supervisor that owns the terminal's signals and a run
process, in a process group of its own, that does the work:

- Ctrl-C / SIGTERM / SIGHUP reach the supervisor only (the terminal signals its
  process group). It asks the run process to stop (SIGINT: the flow unwinds,
  releases its dataset claims, stops the Dask cluster, books the run
  ``cancelled``), and kills the run's whole process group if that takes longer
  than ``CODEIO_CANCEL_GRACE_S`` or at a second signal. Nothing the run started
  (Prefect API, Dask workers, sandbox servers) ever sees the terminal's SIGINT,
  so no shard records a sandbox killed under it as data.
- Whatever happens, the supervisor then kills what is left of the run's group,
  books the run ``cancelled`` (or ``crashed``) if its process could not, drops
  its claims, and exits 128 + the signal (130 for Ctrl-C, 143 for SIGTERM).
- The run process dies with the supervisor (PR_SET_PDEATHSIG), and the Prefect
  API it starts dies with it, so a SIGKILL leaves no server behind; the next
  run books runs whose process is gone as ``crashed`` (``end_gone_runs``).
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from storage.lineage import CANCELLED, CRASHED
from storage.liveness import ProcessIdentity

SUPERVISOR_ENV = "CODEIO_RUN_SUPERVISOR"  # "pid:fd" in the run process: the supervisor, its stop pipe
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
POLL_S = 0.2
PR_SET_PDEATHSIG = 1
API_STARTUP_TIMEOUT_S = 120.0  # a loaded 2-core machine needs far more than Prefect's 20 s default
API_STOP_TIMEOUT_S = 5.0
PORT_IN_USE_EXIT = 3  # uvicorn's exit code when it cannot bind
logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- how a run ended


def is_interrupt(error: BaseException) -> bool:
    """Ctrl-C (KeyboardInterrupt) or the termination signal Prefect's engine raises."""
    if isinstance(error, KeyboardInterrupt):
        return True
    try:
        from prefect.exceptions import TerminationSignal
    except ImportError:
        return False
    return isinstance(error, TerminationSignal)


def run_status(error: BaseException) -> str:
    """The final status of a run that raised ``error``: ``cancelled`` when it was
    interrupted or asked to stop (a sweep branch stopped because another failed)."""
    from flows.orchestrator import RunStopped

    return CANCELLED if is_interrupt(error) or isinstance(error, RunStopped) else "failed"


def end_gone_runs(lineage: Any, status: str = CRASHED, pid: int | None = None,
                  reason: str = "its process is gone") -> list[str]:
    """Book the ``running`` runs whose process is gone (only those of ``pid`` when
    given) as ``status`` and drop their dataset claims. Runs of other hosts,
    boots or PID namespaces are left alone: nothing here can tell."""
    ended = []
    for run in lineage.running_runs():
        identity = ProcessIdentity.from_dict(run["process"])
        if identity is None or (pid is not None and identity.pid != pid) or not identity.is_gone():
            continue
        if lineage.end_abandoned_run(run["id"], status, f"{reason} (pid {identity.pid} on {identity.host})"):
            ended.append(run["id"])
    return ended


# --------------------------------------------------------------------------- the supervisor


def invoked_as(command: str) -> bool:
    """Whether this process is ``codeio COMMAND ...`` itself (not a test calling the app)."""
    return sys.argv[1:2] == [command] and SUPERVISOR_ENV not in os.environ


def run_command_line() -> list[str]:
    """The same command, for the run process."""
    return [sys.executable, "-m", "flows.cli", *sys.argv[1:]]


def supervise(command: list[str], grace_s: float, after: Callable[[int, int | None], None],
              say: Callable[[str], None]) -> int:
    """Run ``command`` in a process group of its own and stop it on a signal (see the
    module docstring). ``after(pid, signum)`` books what the run process left
    undone; returns the exit code: the run's, or 128 + the signal that stopped it."""
    received: list[int] = []

    def note(signum: int, _frame: Any) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, note) for sig in STOP_SIGNALS}
    stop_read, stop_write = os.pipe()  # how the run process is asked to stop (see ``join_supervisor``)
    try:
        child = subprocess.Popen(command, env={**os.environ, SUPERVISOR_ENV: f"{os.getpid()}:{stop_read}"},
                                 pass_fds=(stop_read,), process_group=0)
        os.close(stop_read)
        handled, deadline = 0, None
        while True:
            try:
                code = child.wait(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                pass
            if len(received) > handled:
                if handled == 0:
                    say(f"{signal.Signals(received[0]).name}: stopping the run (Ctrl-C again to stop at once)")
                    _ask_to_stop(stop_write)
                    deadline = time.monotonic() + grace_s
                else:
                    say("stopping at once")
                    _kill_group(child.pid)
                handled = len(received)
            if deadline is not None and time.monotonic() > deadline:
                say(f"the run did not stop within {grace_s:g} s (CODEIO_CANCEL_GRACE_S): killing it")
                _kill_group(child.pid)
                deadline = None
        _kill_group(child.pid)  # whatever the run process left in its group
        signum = received[0] if received else None
        after(child.pid, signum)
    finally:
        os.close(stop_write)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if signum is not None and code != 0:
        return 128 + signum
    return code if code >= 0 else 128 - code


def _ask_to_stop(stop_write: int) -> None:
    try:
        os.write(stop_write, b"x")
    except OSError:  # the run process has gone already
        pass


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # empty group (or a pid reused by another user)
        pass


def die_with_parent(parent_pid: int) -> None:
    """Be killed when ``parent_pid`` (the process that started this one) dies."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # it died before the signal was armed
        os._exit(128 + signal.SIGKILL)


def join_supervisor() -> bool:
    """In the run process: die with the supervisor, and stop (KeyboardInterrupt in the
    main thread) when it asks; True when there is one. (A signal sent to this process
    would not do: the kernel hands it to any thread, and the main thread, blocked on
    a lock while it waits for shards, would never see it.)"""
    supervisor, _, stop_fd = os.environ.pop(SUPERVISOR_ENV, "").partition(":")
    if not (supervisor.isdigit() and stop_fd.isdigit()):
        return False
    die_with_parent(int(supervisor))
    # a background process group of the terminal: writing to it (progress bars) must never stop us
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    main = threading.main_thread().ident
    threading.Thread(target=_stop_when_asked, args=(int(stop_fd), main), name="stop-request", daemon=True).start()
    return True


def _stop_when_asked(stop_fd: int, main_thread: int) -> None:
    with os.fdopen(stop_fd, "rb", buffering=0) as requests:
        if requests.read(1):  # b"" when the supervisor is gone: PR_SET_PDEATHSIG ends us
            # interrupt the main thread's blocking waits (a library may have set SA_RESTART)
            signal.siginterrupt(signal.SIGINT, True)
            signal.pthread_kill(main_thread, signal.SIGINT)


def start_supervised(command: str, grace_s: float, database_url: str, say: Callable[[str], None],
                     check: Callable[[], None] | None = None) -> None:
    """The start of a long command (``codeio run``, ``ingest``, ``eval``, ``sweep``).
    In the terminal's process (``codeio COMMAND`` itself): run a copy of the command
    under ``supervise`` and leave with its exit code (SystemExit). In that copy: join
    the supervisor, run ``check`` (it may exit), and start the embedded Prefect API
    unless one is configured."""
    if invoked_as(command):
        raise SystemExit(supervise(run_command_line(), grace_s, book_abandoned_run(database_url), say=say))
    join_supervisor()
    if check is not None:
        check()
    embedded_prefect_api(say=say)


@contextmanager
def exit_when_interrupted(say: Callable[[str], None]) -> Iterator[None]:
    """Around a command's flow: once an interrupted run has unwound (booked itself
    ``cancelled``, dropped its claims, closed its cluster), leave at once with 128 +
    the signal, without waiting for shard threads (one may be blocked for minutes)."""
    try:
        yield
    except BaseException as error:
        if not is_interrupt(error):
            raise
        say(f"run cancelled ({type(error).__name__})")
        exit_now(128 + getattr(error, "signal", signal.SIGINT))


def exit_now(code: int) -> None:
    """Leave without waiting for shard threads or exit hooks (a cancelled run)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


@contextmanager
def task_runner_scope(runner: Any) -> Iterator[Any]:
    """``with runner:``, except that an interrupted run does not wait for the shard
    threads of a thread-pool runner (a thread blocked on an LLM request may take
    minutes): the process is about to exit. A Dask cluster is always closed."""
    from prefect.task_runners import ThreadPoolTaskRunner

    runner.__enter__()
    try:
        yield runner
    except BaseException as error:
        if not (is_interrupt(error) and isinstance(runner, ThreadPoolTaskRunner)):
            runner.__exit__(type(error), error, error.__traceback__)
        raise
    runner.__exit__(None, None, None)


# --------------------------------------------------------------------------- the Prefect API


class EmbeddedPrefectAPI:
    """Prefect's temporary API server for one run process, started like Prefect's own
    ephemeral server but dying with this process (PR_SET_PDEATHSIG), given time to
    start on a loaded machine and retried once."""

    def __init__(self, startup_timeout_s: float = API_STARTUP_TIMEOUT_S, say: Callable[[str], None] = print):
        self.startup_timeout_s = startup_timeout_s
        self.say = say
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> str:
        for attempt in (1, 2):
            failure = self._start_once()
            if failure is None:
                atexit.register(self.stop)  # after Prefect's own exit hooks, which still talk to it
                return self.url
            if attempt == 1:
                self.say(f"the Prefect API did not start ({failure}); trying once more")
        raise RuntimeError(f"the embedded Prefect API did not start twice: {failure}. "
                           "Set PREFECT_API_URL to a running Prefect server, or retry when the machine is less busy")

    def _start_once(self) -> str | None:
        port = _free_port()
        parent = os.getpid()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on"],
            env={**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                 "PREFECT__SERVER_FINAL": "1"},
            preexec_fn=lambda: die_with_parent(parent), stdin=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}/api"
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                self.process = None
                return "its port was taken" if code == PORT_IN_USE_EXIT else f"it exited with code {code}"
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                    if response.status == 200:
                        self.url = url
                        return None
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        return f"no answer within {self.startup_timeout_s:g} s"

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(API_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def embedded_prefect_api(say: Callable[[str], None]) -> EmbeddedPrefectAPI | None:
    """Unless a Prefect API is configured, start one for the rest of this process (it
    stops at exit, after Prefect's own exit hooks that still send to it). Its URL goes
    into the environment, which every thread's Prefect settings and every worker
    process read; else a thread would start Prefect's own ephemeral server."""
    from prefect.context import refresh_global_settings_context
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return None
    server = EmbeddedPrefectAPI(say=say)
    os.environ[PREFECT_API_URL.name] = server.start()
    refresh_global_settings_context()
    return server


def book_abandoned_run(database_url: str) -> Callable[[int, int | None], None]:
    """What the supervisor does once the run process is gone: book its run ``cancelled``
    (a signal stopped it) or ``crashed`` if the process could not, and drop its claims."""
    def after(pid: int, signum: int | None) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        from storage.lineage import LineageDB

        status = CANCELLED if signum is not None else CRASHED
        reason = f"stopped by {signal.Signals(signum).name}" if signum is not None else "its process died"
        try:
            with LineageDB(database_url) as lineage:
                end_gone_runs(lineage, status, pid=pid, reason=reason)
        except SQLAlchemyError as error:  # e.g. the run failed before it created the database
            logger.warning("could not book the end of the run of process %s: %s", pid, error)
    return after
