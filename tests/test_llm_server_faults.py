"""The LLM layer under faults: every listed failure at once, and a SIGKILL mid-batch."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from codeio.llm.base import ChatRequest
from codeio.llm.openai_client import LLMConfig, OpenAIChatLLM, close_all_clients
from llm_server import FAULT_KINDS, FakeLLMServer, Reply, fault_injector, last_user_message, wrong_answers

MODEL = "fake-model"
ROOT = Path(__file__).resolve().parents[1]


class DictCache:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def put(self, key: str, value: bytes) -> None:
        self.data[key] = value


class DirCache:
    """One file per key, written atomically: survives a SIGKILL of the writer."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> bytes | None:
        path = self.root / key
        return path.read_bytes() if path.exists() else None

    def put(self, key: str, value: bytes) -> None:
        tmp = self.root / f".{key}.{os.getpid()}.tmp"
        tmp.write_bytes(value)
        os.replace(tmp, self.root / key)


@pytest.fixture(autouse=True)
def _stop_clients():
    yield
    close_all_clients()


def right(body, info) -> Reply:
    """Right answer on the first turn, and after a revision turn."""
    question = body["messages"][0]["content"]
    return Reply(content=f"right {hashlib.sha256(question.encode()).hexdigest()[:8]}")


def wrong(body, info) -> Reply:
    if any(m["role"] == "assistant" for m in body["messages"]):
        return right(body, info)  # the revision turn gets it right
    return Reply(content="wrong")


def test_a_run_completes_under_every_fault_at_once():
    prompts = [f"question {i}" for i in range(160)]
    handler = fault_injector(wrong_answers(right, wrong, fraction=0.3, seed=1), fraction=0.25, kinds=FAULT_KINDS,
                             seed=2, hang_s=30, retry_after_s=0.02)
    cache = DictCache()
    with FakeLLMServer(handler) as server:
        config = LLMConfig(base_url=server.base_url, api_key="k", model=MODEL, timeout=0.5, max_attempts=6,
                           backoff_base_s=0.02, backoff_max_s=0.2, concurrency=32)
        llm = OpenAIChatLLM(config, cache)
        first, usage_1 = llm.complete(
            [ChatRequest(messages=({"role": "user", "content": p},), model=MODEL) for p in prompts]
        )
        revise = [
            ChatRequest(messages=({"role": "user", "content": p}, {"role": "assistant", "content": r.text},
                                  {"role": "user", "content": "That is wrong: try again."}), model=MODEL)
            for p, r in zip(prompts, first) if r.ok and r.text == "wrong"
        ]
        second, usage_2 = llm.complete(revise)
        requests_made = len(server.requests)
        statuses = server.replies_by_status

    # every instance has an answer or a recorded failure
    assert len(first) == len(prompts) and len(second) == len(revise)
    for result in first + second:
        assert result.ok or result.error, result
    failures = [r for r in first + second if not r.ok]
    assert {r.error.split(":")[0] for r in failures} <= {"finish_reason=length", "http_429", "http_500", "timeout",
                                                         "malformed"}
    assert all(r.text for r in failures if r.error == "finish_reason=length")  # the partial text is kept
    assert 0.2 * len(prompts) <= len(revise) <= 0.4 * len(prompts)
    assert sum(r.ok and r.text.startswith("right") for r in second) >= 0.6 * len(revise)
    # every fault kind was met, and retries stay cheap
    assert statuses.get(429, 0) > 0 and statuses.get(500, 0) > 0
    assert usage_1.failures_by_reason.get("finish_reason=length", 0) > 0
    assert usage_1.retries > 0
    answers = len(first) + len(second)
    assert requests_made < 2 * answers
    assert usage_1.requests + usage_2.requests == requests_made
    assert requests_made - sum(statuses.values()) > 0  # some requests hung past the client's timeout
    # a second pass pays only for what did not finish
    with FakeLLMServer(right) as again:
        config = LLMConfig(base_url=again.base_url, api_key="k", model=MODEL)
        rerun, usage = OpenAIChatLLM(config, cache).complete(
            [ChatRequest(messages=({"role": "user", "content": p},), model=MODEL) for p in prompts]
        )
        assert len(again.requests) == sum(not r.ok for r in first)
    assert [r.text for r in rerun if r.cached] == [r.text for r in first if r.ok]


def _entries(cache_dir: Path) -> int:
    return sum(not p.name.startswith(".") for p in cache_dir.iterdir()) if cache_dir.exists() else 0


KILLED_CLIENT = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{root!r}, {tests!r}]
    from codeio.llm.base import ChatRequest
    from codeio.llm.openai_client import LLMConfig, OpenAIChatLLM
    from test_llm_server_faults import DirCache
    config = LLMConfig(base_url=sys.argv[1], api_key="k", model="fake-model", concurrency=4)
    requests = [ChatRequest(messages=({{"role": "user", "content": f"q{{i}}"}},), model="fake-model") for i in range(60)]
    OpenAIChatLLM(config, DirCache(sys.argv[2])).complete(requests)
    """
)


def test_sigkill_mid_batch_pays_for_no_finished_completion(tmp_path):
    def slow(body, info):
        return Reply(content=f"answer {last_user_message(body)}", delay_s=0.05)

    script = tmp_path / "client.py"
    script.write_text(KILLED_CLIENT.format(root=str(ROOT), tests=str(ROOT / "tests")))
    cache_dir = tmp_path / "cache"
    with FakeLLMServer(slow) as server:
        process = subprocess.Popen([sys.executable, str(script), server.base_url, str(cache_dir)])
        try:
            deadline = time.monotonic() + 60
            while _entries(cache_dir) < 12 and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            os.kill(process.pid, signal.SIGKILL)
        finally:
            process.wait(30)
    assert process.returncode == -signal.SIGKILL
    cache = DirCache(cache_dir)
    finished = {p.name for p in cache_dir.iterdir() if not p.name.startswith(".")}
    # replies that reached the client but not its cache before the kill are paid again: a few at most
    assert 12 <= len(finished) < 60

    requests = [ChatRequest(messages=({"role": "user", "content": f"q{i}"},), model=MODEL) for i in range(60)]
    with FakeLLMServer(slow) as server:
        config = LLMConfig(base_url=server.base_url, api_key="k", model=MODEL, concurrency=8)
        results, usage = OpenAIChatLLM(config, cache).complete(requests)
        asked = {ChatRequest(messages=tuple(b["messages"]), model=MODEL).cache_key() for b in server.requests}
    assert len(server.requests) == 60 - len(finished) and not asked & finished
    assert usage.cached == len(finished)
    assert [r.text for r in results] == [f"answer q{i}" for i in range(60)]  # same as an uninterrupted run
