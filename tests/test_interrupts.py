"""Ctrl-C, SIGTERM and SIGKILL on `codeio run` (and Ctrl-C on `codeio ingest`, `eval`
and `sweep`, which start the same way), as a user (or a scheduler) sends them.

Each test starts the real command in a session of its own, with no Prefect API
configured (so it starts its embedded one, as on a user's machine), against the
scripted LLM server of tests/llm_server.py that holds every completion: the run
sits in synthesis, holding its dataset claims, until it is signalled. Then the
signal goes to the command's process group, as the terminal or a scheduler
sends it, and the test checks the exit code, that every process the run had
started is gone, that the claims are released and what lineage says.

The bounds below are generous failure bounds for a loaded 2-core machine, not
timing assertions: before the fix, SIGINT and SIGTERM left the run hanging for
good, and SIGKILL left the Prefect API server running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from conftest import ROOT
from llm_server import HANG_SECONDS, FakeLLMServer, Reply

CODEIO = Path(sys.executable).with_name("codeio")
START_S = 300.0  # for the run to reach synthesis (it starts a Prefect API and maybe a cluster)
STOP_S = 60.0  # for the command to exit once signalled (it hung for good before)
GONE_S = 30.0  # for what it started to be gone after it exited


class HeldTeacher:
    """Holds every completion until the server stops; counts the requests."""

    def __init__(self) -> None:
        self.requests = 0
        self._lock = threading.Lock()

    def __call__(self, body: dict, info) -> Reply:
        with self._lock:
            self.requests += 1
        return Reply(content="held", delay_s=HANG_SECONDS)


def cli_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODEIO_", "PREFECT_")) and k != "OPENAI_API_KEY"}
    env.update({"CODEIO_STORE": str(tmp / "store"), "CODEIO_DATABASE_URL": f"sqlite:///{tmp / 'lineage.db'}",
                "CODEIO_LLM_API_KEY": "test-key", "CODEIO_DASK_WORKERS": "0", "PREFECT_HOME": str(tmp / "prefect"),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", **extra})
    return env


def session_processes(session: int) -> dict[int, tuple[str, str]]:
    """pid -> (start time, command line) of the live processes of a session."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] not in ("Z", "X"):
            found[int(entry.name)] = (fields[19], command)
    return found


def still_running(processes: dict[int, tuple[str, str]]) -> dict[int, str]:
    left = {}
    for pid, (started, command) in processes.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] not in ("Z", "X") and fields[19] == started:
            left[pid] = command
    return left


class HeldCommand:
    """A `codeio` command in a session of its own, started as a user starts it, held
    where ``ready()`` says (e.g. a completion the scripted server never finishes)."""

    def __init__(self, tmp: Path, argv: list[str], ready: Callable[[], bool], **env: str) -> None:
        from storage.lineage import LineageDB

        if not CODEIO.exists():
            pytest.skip(f"the codeio console script is not installed next to {sys.executable}")
        self.tmp = tmp
        self.env = cli_env(tmp, **env)
        self.log = tmp / f"{argv[0]}.log"
        self.process = subprocess.Popen([str(CODEIO), *argv], env=self.env, cwd=str(ROOT),
                                        stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        self.lineage = LineageDB(self.env["CODEIO_DATABASE_URL"])
        deadline = time.monotonic() + START_S
        while not ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"codeio {argv[0]} did not get going ({self.process.returncode}):\n{self.output()}")
            time.sleep(0.2)
        self.started = session_processes(self.process.pid)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def signal(self, signum: int) -> None:
        os.killpg(self.process.pid, signum)  # the command's process group, as a terminal sends Ctrl-C

    def wait(self) -> int:
        try:
            return self.process.wait(STOP_S)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"codeio did not exit within {STOP_S:g} s of the signal:\n{self.output()}")

    def assert_nothing_left(self) -> None:
        deadline = time.monotonic() + GONE_S
        while still_running(self.started) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = still_running(self.started)
        if left:
            for pid in left:
                os.kill(pid, signal.SIGKILL)
        assert not left, f"processes of the run outlived it: {left}"

    def assert_supervised(self, command: str) -> None:
        """The terminal's process supervises a copy of the command, which runs the
        embedded Prefect API (not Prefect's own ephemeral server, started with --app-dir)."""
        assert processes_named(self.started, "bin/codeio", command), self.started
        assert processes_named(self.started, "-m flows.cli", command), self.started
        servers = processes_named(self.started, "uvicorn", "prefect.server")
        assert servers and not [line for line in servers if "--app-dir" in line], servers

    def kill(self) -> None:
        for pid in list(session_processes(self.process.pid)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def run_record(self) -> dict:
        (run,) = self.lineage.list_runs()
        return self.lineage.get_run(run["id"])


@pytest.fixture
def command(tmp_path):
    """Start a held `codeio` command (HeldCommand's arguments); killed at the end."""
    started: list[HeldCommand] = []

    def start(argv: list[str], ready: Callable[[], bool], **env: str) -> HeldCommand:
        started.append(HeldCommand(tmp_path, argv, ready, **env))
        return started[-1]

    yield start
    for held_command in started:
        held_command.kill()
        held_command.lineage.close()


@pytest.fixture
def held_server():
    teacher = HeldTeacher()
    with FakeLLMServer(teacher) as server:
        yield server, teacher


@pytest.fixture
def held(held_server, command):
    """Start `codeio run`, waiting in synthesis for the held teacher."""
    server, teacher = held_server

    def start(**env: str) -> HeldCommand:
        return command(["run", "--limit", "8", "--teacher", "openai", "--llm-base-url", server.base_url,
                        "--model", "fake-model"], lambda: teacher.requests > 0, **env)

    return start


def processes_named(started: dict[int, tuple[str, str]], *parts: str) -> list[str]:
    return [command for _, command in started.values() if all(part in command for part in parts)]


def test_ctrl_c_stops_the_run_its_cluster_and_its_claims(held):
    run = held(CODEIO_DASK_WORKERS="1")  # a LocalCluster with one worker process
    run.assert_supervised("run")  # the embedded Prefect API
    assert processes_named(run.started, "multiprocessing.spawn"), run.started  # the cluster's worker process
    assert run.lineage.claims(), "the run holds its datasets' claims while it computes them"
    run.signal(signal.SIGINT)
    assert run.wait() == 130, run.output()
    run.assert_nothing_left()
    record = run.run_record()
    assert record["status"] == "cancelled", record
    assert run.lineage.claims() == []
    assert "Ctrl-C again" in run.output()


def test_sigterm_stops_the_run(held):
    run = held()
    run.signal(signal.SIGTERM)
    assert run.wait() == 143, run.output()
    run.assert_nothing_left()
    assert run.run_record()["status"] == "cancelled"
    assert run.lineage.claims() == []


def test_a_second_ctrl_c_stops_at_once(held):
    run = held(CODEIO_CANCEL_GRACE_S="600")  # only the second Ctrl-C can make it exit within STOP_S
    run.signal(signal.SIGINT)
    run.signal(signal.SIGINT)
    assert run.wait() == 130, run.output()
    run.assert_nothing_left()
    assert run.run_record()["status"] == "cancelled"
    assert run.lineage.claims() == []


def test_sigkill_leaves_no_process_and_the_next_run_books_the_run_crashed(held):
    run = held()
    assert processes_named(run.started, "uvicorn", "prefect.server"), run.started
    os.kill(run.process.pid, signal.SIGKILL)  # the command's process alone, as the OOM killer or kill -9 does
    assert run.wait() == -signal.SIGKILL
    run.assert_nothing_left()  # before: the embedded Prefect API server (250 MB, a port) stayed
    killed = run.run_record()
    assert killed["status"] == "running"  # nobody could book it
    # the next run (offline: no endpoint needed) finds the killed run's process gone
    done = subprocess.run([str(CODEIO), "run", "--limit", "2", "--teacher", "offline", "--json"], env=run.env,
                          cwd=str(ROOT), capture_output=True, text=True, timeout=START_S)
    assert done.returncode == 0, done.stderr[-3000:]
    after = run.lineage.get_run(killed["id"])
    assert after["status"] == "crashed" and "gone" in after["error"], after
    assert run.lineage.claims() == []
    listed = json.loads(subprocess.run([str(CODEIO), "runs", "--json"], env=run.env, cwd=str(ROOT),
                                       capture_output=True, text=True, timeout=120, check=True).stdout)
    assert {row["id"]: row["status"] for row in listed}[killed["id"]] == "crashed"


# --------------------------------------------------------------------------- ingest, eval and sweep
# They start like `codeio run`: under the supervisor, with the embedded Prefect API (no
# PREFECT_API_URL here), and a Ctrl-C books their runs cancelled, not failed.

EVAL_DATA = ROOT / "tests" / "data" / "eval" / "cruxeval.jsonl"


class HeldPipe:
    """A named pipe given as a source: the command that reads it blocks, holding its
    run open, for as long as the test keeps the other end open without writing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self.opened = threading.Event()
        self.writer = None
        threading.Thread(target=self._open, name="held-pipe", daemon=True).start()

    def _open(self) -> None:
        self.writer = self.path.open("wb")  # returns once the command opened the pipe to read it
        self.opened.set()

    def close(self) -> None:
        if not self.opened.is_set():  # nobody read it: let the writer's open return
            os.close(os.open(self.path, os.O_RDONLY | os.O_NONBLOCK))
            self.opened.wait(10)
        if self.writer is not None:
            self.writer.close()


def assert_cancelled(held_command: HeldCommand, kinds: set[str]) -> None:
    runs = held_command.lineage.list_runs()
    assert {run["kind"] for run in runs} == kinds, runs
    assert {run["status"] for run in runs} == {"cancelled"}, runs
    assert held_command.lineage.claims() == []


def test_ctrl_c_stops_ingest_and_books_it_cancelled(command, tmp_path):
    pipe = HeldPipe(tmp_path / "rows.jsonl")
    try:
        ingest = command(["ingest", "--source", f"jsonl:{pipe.path}", "--json"], pipe.opened.is_set)
        ingest.assert_supervised("ingest")
        assert ingest.run_record()["status"] == "running"
        ingest.signal(signal.SIGINT)
        assert ingest.wait() == 130, ingest.output()
        ingest.assert_nothing_left()
        assert_cancelled(ingest, {"ingest"})
        assert "Ctrl-C again" in ingest.output() and "Traceback" not in ingest.output()
    finally:
        pipe.close()


def eval_argv(server: FakeLLMServer) -> list[str]:
    return ["eval", "--benchmark", f"cruxeval:{EVAL_DATA}", "--limit", "2", "--teacher", "openai",
            "--llm-base-url", server.base_url, "--model", "fake-model"]


def test_ctrl_c_stops_eval_and_books_it_cancelled(held_server, command):
    server, teacher = held_server
    evaluation = command(eval_argv(server), lambda: teacher.requests > 0)
    evaluation.assert_supervised("eval")
    assert evaluation.lineage.claims(), "the evaluation holds its answers' claims while it waits"
    evaluation.signal(signal.SIGINT)
    assert evaluation.wait() == 130, evaluation.output()
    evaluation.assert_nothing_left()
    assert_cancelled(evaluation, {"eval"})
    assert "Traceback" not in evaluation.output()


def test_a_second_ctrl_c_stops_eval_at_once(held_server, command):
    server, teacher = held_server
    evaluation = command(eval_argv(server), lambda: teacher.requests > 0, CODEIO_CANCEL_GRACE_S="600")
    evaluation.signal(signal.SIGINT)
    evaluation.signal(signal.SIGINT)
    assert evaluation.wait() == 130, evaluation.output()
    evaluation.assert_nothing_left()
    assert_cancelled(evaluation, {"eval"})


def test_ctrl_c_stops_a_sweep_and_its_branches(held_server, command, tmp_path):
    server, teacher = held_server
    grid = tmp_path / "grid.yaml"
    grid.write_text(json.dumps({"name": "held", "sources": ["sample"], "limit": 4, "llm_base_url": server.base_url,
                                "max_parallel_branches": 2,
                                "base": {"teacher": "openai", "revision_rounds": 0},
                                "branches": [{"name": "k2", "pairs_per_function": 2},
                                             {"name": "k3", "pairs_per_function": 3}]}))
    sweep = command(["sweep", str(grid), "--out-dir", str(tmp_path / "out")], lambda: teacher.requests > 0,
                    CODEIO_LLM_MODEL="fake-model")
    sweep.assert_supervised("sweep")
    sweep.signal(signal.SIGINT)
    assert sweep.wait() == 130, sweep.output()
    sweep.assert_nothing_left()
    assert_cancelled(sweep, {"sweep", "sweep-branch"})
    assert "Traceback" not in sweep.output()


def test_ingest_and_eval_run_to_the_end_with_no_prefect_api_configured(tmp_path):
    if not CODEIO.exists():
        pytest.skip(f"the codeio console script is not installed next to {sys.executable}")
    env = cli_env(tmp_path)
    assert not [name for name in env if name.startswith("PREFECT_API")]
    ingest = subprocess.run([str(CODEIO), "ingest", "--limit", "3", "--json"], env=env, cwd=str(ROOT),
                            capture_output=True, text=True, timeout=START_S)
    assert ingest.returncode == 0, ingest.stderr[-3000:]
    assert json.loads(ingest.stdout)["kept"] == 3
    evaluation = subprocess.run([str(CODEIO), "eval", "--benchmark", f"cruxeval:{EVAL_DATA}", "--limit", "2",
                                 "--teacher", "offline", "--json"], env=env, cwd=str(ROOT), capture_output=True,
                                text=True, timeout=START_S)
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    assert json.loads(evaluation.stdout)["questions"] == 4
    from storage.lineage import LineageDB

    with LineageDB(env["CODEIO_DATABASE_URL"]) as lineage:
        assert sorted((run["kind"], run["status"]) for run in lineage.list_runs()) == \
            [("eval", "completed"), ("ingest", "completed")]


# --------------------------------------------------------------------------- process identity


def test_a_process_is_gone_only_when_this_host_boot_and_namespace_say_so(tmp_path):
    from dataclasses import replace

    from flows.process import end_gone_runs
    from storage.lineage import LineageDB
    from storage.liveness import Liveness, ProcessIdentity

    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    here = ProcessIdentity.current()
    dead = ProcessIdentity.of(finished.pid)
    assert here.liveness() is Liveness.ALIVE
    assert dead.liveness() is Liveness.GONE
    assert replace(here, started=(here.started or 0) + 1).liveness() is Liveness.GONE  # the pid names another process
    assert replace(dead, host="another-host.example").liveness() is Liveness.UNKNOWN
    assert replace(dead, pid_ns="1").liveness() is Liveness.UNKNOWN  # a container under the same host name
    assert replace(dead, boot_id="another-boot").liveness() is Liveness.UNKNOWN
    assert ProcessIdentity.from_dict(dead.as_dict()) == dead

    with LineageDB(f"sqlite:///{tmp_path / 'lineage.db'}") as lineage:
        lineage.upgrade()
        ids = {name: lineage.start_run("pipeline", {}, {}, "v", "u", process=identity.as_dict())
               for name, identity in (("dead", dead), ("alive", here),
                                      ("elsewhere", replace(dead, host="another-host.example")))}
        unknown = lineage.start_run("pipeline", {}, {}, "v", "u", process={})  # as before runs had a process
        assert lineage.try_claim("store", "key", "holder", ids["dead"], 600) is None
        assert end_gone_runs(lineage) == [ids["dead"]]
        statuses = {run["id"]: run["status"] for run in lineage.list_runs()}
        assert statuses == {ids["dead"]: "crashed", ids["alive"]: "running", ids["elsewhere"]: "running",
                            unknown: "running"}
        assert lineage.claims() == []
        lineage.finish_run(ids["alive"], "completed", {})
        assert not lineage.end_abandoned_run(ids["alive"], "crashed", "late")  # an ended run stays as it ended
