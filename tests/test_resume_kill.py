"""Kill -9 in the middle of synthesis, run again: the same samples as a run that
was never interrupted, and no completion that had come back before the kill is
paid for twice.

``codeio run`` runs as a subprocess in its own process group (so the kill takes
its sandbox children too) against the fake server in a thread of this process.
A gate in the server's script answers some synthesis requests (with latency)
and holds the rest, so the kill lands mid-stage deterministically; the test
kills only once every answered completion is in the response cache on the
store, which is what the cache promises: written as each response arrives,
not at the end of a shard.
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

import pytest

from conftest import ROOT, TOY, needs_toy
from llm_server import HANG_SECONDS, AttemptInfo, FakeLLMServer, Reply
from scripted_teacher import ToyTeacher

pytestmark = [needs_toy()]

MODEL = "fake-model"
RAW = f"jsonl:{TOY / 'raw_code.jsonl'}"
LIMIT = 30
LATENCY_S = 0.05
ANSWER_BEFORE_KILL = 12  # synthesis answers let through before the gate closes (of about 48)
CONCURRENCY = 4
WAIT_S = 120.0  # upper bound for the run to reach the gate (a failure, not a timing assertion)
CODEIO = Path(sys.executable).with_name("codeio")


class GatedTeacher:
    """The scripted teacher with a per-request latency; once ``limit`` synthesis
    requests have been answered it holds every further synthesis request (a
    hang the server ends when it stops). Counts requests per prompt key per phase."""

    def __init__(self, teacher: ToyTeacher, limit: int | None) -> None:
        self._teacher = teacher
        self._lock = threading.Lock()
        self.limit = limit
        self.answered: dict[str, dict] = {}  # prompt key -> body, answers given (normalize and synthesis)
        self.synthesis_answered = 0
        self.held = 0
        self.phase = "first"
        self.requests: dict[str, dict[str, int]] = {}  # phase -> prompt key -> requests

    def reopen(self, phase: str) -> None:
        with self._lock:
            self.limit = None
            self.phase = phase

    def __call__(self, body: dict, info: AttemptInfo) -> Reply:
        synthesis = body["messages"][0]["content"].find("Given the following") >= 0
        with self._lock:
            counts = self.requests.setdefault(self.phase, {})
            counts[info.prompt_key] = counts.get(info.prompt_key, 0) + 1
            if synthesis and self.limit is not None and self.synthesis_answered >= self.limit:
                self.held += 1
                return Reply(content="held", delay_s=HANG_SECONDS)
            if synthesis:
                self.synthesis_answered += 1
            self.answered[info.prompt_key] = body
        reply = self._teacher(body, info)
        return Reply(content=reply.content, finish_reason=reply.finish_reason, delay_s=LATENCY_S)


def cache_key(body: dict) -> str:
    from codeio.llm.base import ChatRequest

    return ChatRequest(messages=tuple(body["messages"]), model=body["model"], temperature=body["temperature"],
                       response_format=body.get("response_format")).cache_key()


def cli_env(tmp: Path, name: str) -> dict[str, str]:
    from prefect.settings import get_current_settings

    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEIO_")}
    env.update({
        "CODEIO_STORE": str(tmp / name / "store"),
        "CODEIO_DATABASE_URL": f"sqlite:///{tmp / name / 'lineage.db'}",
        "CODEIO_DASK_WORKERS": "0",
        "CODEIO_LLM_CONCURRENCY": str(CONCURRENCY),
        "CODEIO_LLM_BACKOFF_BASE_S": "0.05",
        "PREFECT_API_URL": str(get_current_settings().api.url),
        "PREFECT_HOME": str(tmp / "prefect-home"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
    })
    return env


def cli_args(server: FakeLLMServer, out: Path) -> list[str]:
    return [str(CODEIO), "run", "--source", RAW, "--limit", str(LIMIT), "--teacher", "openai",
            "--llm-base-url", server.base_url, "--model", MODEL, "--revision-rounds", "1", "--out", str(out), "--json"]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    handle = log.open("wb")
    return subprocess.Popen(args, env=env, cwd=str(ROOT), stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_until(condition, process: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"codeio run exited ({process.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"gave up waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def samples(path: Path) -> list[dict]:
    return sorted((json.loads(line) for line in path.read_text().splitlines() if line.strip()),
                  key=lambda row: row["sample_id"])


def test_kill_mid_synthesis_then_rerun_pays_nothing_twice(tmp_path, prefect_harness):
    from storage.store import DataStore

    if not CODEIO.exists():
        pytest.skip(f"the codeio console script is not installed next to {sys.executable}")
    gate = GatedTeacher(ToyTeacher(TOY, mode="wrong_first"), limit=ANSWER_BEFORE_KILL)
    with FakeLLMServer(gate) as server:
        env = cli_env(tmp_path, "killed")
        cache = DataStore(env["CODEIO_STORE"]).kv("llm")
        out = tmp_path / "killed.jsonl"
        log = tmp_path / "killed-1.log"
        process = start(cli_args(server, out), env, log)
        try:
            wait_until(lambda: gate.held > 0, process, log, "the gate held a synthesis request")
            with gate._lock:  # noqa: SLF001 - a snapshot of what the server has answered
                answered = dict(gate.answered)
            wait_until(lambda: all(cache.get(cache_key(body)) is not None for body in answered.values()),
                       process, log, "every answered completion reached the response cache")
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
        assert process.returncode == -signal.SIGKILL
        store = DataStore(env["CODEIO_STORE"])
        # killed mid-synthesis: its inputs are complete (each part's completion marker written; the
        # manifests of collect_io and build_prompts come when their lane, which ends with synthesis,
        # is done), no synthesis shard is
        (prompts_key,) = store.dataset_keys("build_prompts")
        (functions_key,) = [k for k in store.dataset_keys("normalize") if store.manifest("normalize", k)]
        parts = store.manifest("normalize", functions_key)["parts"]
        assert all(store.part_marker("build_prompts", prompts_key, part) for part in range(parts))
        assert all(store.manifest("synthesize", key) is None for key in store.dataset_keys("synthesize"))
        assert gate.synthesis_answered == ANSWER_BEFORE_KILL

        # the rerun: same command, same store
        gate.reopen("rerun")
        log = tmp_path / "killed-2.log"
        rerun = start(cli_args(server, out), env, log)
        assert rerun.wait(WAIT_S) == 0, log.read_text()[-3000:]
        rerun_requests = dict(gate.requests["rerun"])

        # an uninterrupted run of the same script on its own store
        gate.reopen("uninterrupted")
        clean_out = tmp_path / "clean.jsonl"
        log = tmp_path / "clean.log"
        clean = start(cli_args(server, clean_out), cli_env(tmp_path, "clean"), log)
        assert clean.wait(WAIT_S) == 0, log.read_text()[-3000:]
        clean_requests = dict(gate.requests["uninterrupted"])

    # nothing that came back before the kill was requested again
    assert answered and set(answered).isdisjoint(rerun_requests)
    # the rerun asked for exactly what the interrupted run had not received
    assert set(answered) | set(rerun_requests) == set(clean_requests)
    # (identical prompts in one batch are each sent: compare with the uninterrupted run's counts)
    assert all(n <= clean_requests[key] for key, n in rerun_requests.items()), (rerun_requests, clean_requests)
    # and the samples are those of the uninterrupted run
    got, expected = samples(out), samples(clean_out)
    assert got and got == expected
