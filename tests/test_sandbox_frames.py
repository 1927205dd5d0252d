"""Forged frames: code under test writes its own frames on the result channel
(it can find the descriptor). Every one must end as a ``sandbox_error`` for that
function alone, the child reaped, the next functions unaffected."""

from __future__ import annotations

import json
import os
import resource
import textwrap
from pathlib import Path

import pytest

from codeio.execution import ExecStatus, Limits, RunRequest, SampleRequest
from codeio.sandbox import SandboxConfig, create_executor

S = ExecStatus
FAST = Limits(timeout_s=2.0)

# Writes one length-prefixed frame on every descriptor that takes it (the
# channel among them), whatever its number.
FORGE = textwrap.dedent(
    """
    import os, struct

    def forge(payload):
        data = struct.pack(">I", len(payload)) + payload
        for fd in range(3, 32):
            try:
                os.write(fd, data)
            except OSError:
                pass
    """
)


def forged(payload: bytes, then: str = "return x") -> str:
    return FORGE + textwrap.dedent(
        f"""
        def main_solution(x):
            forge({payload!r})
            {then}
        """
    )


@pytest.fixture(scope="module")
def executor():
    ex = create_executor(SandboxConfig(workers=1, preload=("math", "json")))
    yield ex
    ex.close()


def _run(ex, code: str, n: int = 2) -> list:
    inputs = tuple(json.dumps({"x": i}) for i in range(n))
    return ex.run(RunRequest(code=code, inputs_json=inputs, limits=FAST, check_size=True, stop_on_fatal=False))


GOOD = "def main_solution(x):\n    return x * 3\n"

RUN_FORGERIES = {
    "non_dict": b"[1, 2, 3]",
    "nan_literal": b'{"status": "ok", "value_json": "1", "duration_s": NaN}',
    "infinite_float": b'{"status": "ok", "value_json": "1", "duration_s": 1e999}',
    "value_not_a_string": b'{"status": "ok", "value_json": 7}',
    "value_not_json": b'{"status": "ok", "value_json": "not json"}',
    "value_too_long": b'{"status": "ok", "value_json": "\\"' + b"y" * (2 << 20) + b'\\""}',
    "value_over_size_check": b'{"status": "ok", "value_json": "' + json.dumps(list(range(500))).encode() + b'"}',
    "status_of_the_server": b'{"status": "timeout", "error_message": "forged"}',
    "deep_nesting": b"[" * 200000 + b"]" * 200000,
    "not_utf8": b'{"status": "ok", "value_json": "\xff\xfe"}',
}


@pytest.mark.parametrize("name", sorted(RUN_FORGERIES))
def test_forged_result_frame_is_a_sandbox_error_for_that_function_alone(executor, name):
    results = _run(executor, forged(RUN_FORGERIES[name]))
    assert [r.status for r in results] == [S.SANDBOX_ERROR] * 2, [r.describe() for r in results]
    assert all("malformed frame" in r.error_message for r in results)
    after = _run(executor, GOOD, n=3)
    assert [r.value_json for r in after] == ["0", "3", "6"]


def test_forged_frame_then_a_child_that_stays_to_kill_the_next_ones():
    """The reproduction of issue 13.1: a non-dict frame, then the child lingers,
    killing every process it can; five clean functions after it are unaffected."""
    lingering = (Path(__file__).resolve().parent / "hostile" / "forged_frames.py").read_text()
    with create_executor(SandboxConfig(workers=1, preload=("math",))) as ex:
        servers = ex.server_pids()
        hostile = _run(ex, lingering, n=1)
        assert hostile[0].status is S.SANDBOX_ERROR
        clean = [_run(ex, GOOD.replace("3", str(k)), n=2) for k in range(2, 7)]
        assert [[r.value_json for r in rs] for rs in clean] == [["0", str(k)] for k in range(2, 7)]
        assert ex.server_pids() == servers
        assert _sandbox_children(servers) <= 1  # at most the last child, killed, still exiting


SAMPLE_CODE = FORGE + textwrap.dedent(
    """
    import random

    def main_solution(n):
        return n + 1

    def input_generator():
        forge(FRAMES)
        os._exit(0)
    """
)

SAMPLE_FORGERIES = {
    # too many pairs, each over the size check, and a made-up summary
    "pairs_past_the_checks": [{"pair": [json.dumps({"n": i}), json.dumps(list(range(300)))]} for i in range(30)]
    + [{"done": True, "status": "ok", "attempts": 1, "rejected": {}}],
    # a 70-byte frame claiming millions of rejects
    "huge_reject_count": [{"done": True, "status": "ok", "attempts": 1, "rejected": {"duplicate": 3000000}}],
    "non_finite_pair": [{"pair": ['{"n": 1}', "Infinity"]}, {"done": True, "status": "ok", "attempts": 1, "rejected": {}}],
    "non_dict": [[1, 2]],
}


@pytest.mark.parametrize("name", sorted(SAMPLE_FORGERIES))
def test_forged_sampling_frames_are_a_sandbox_error(executor, name):
    frames = b"".join(_frame(f) for f in SAMPLE_FORGERIES[name])
    code = SAMPLE_CODE.replace("forge(FRAMES)", f"os.write(3, {frames!r})")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = executor.sample(SampleRequest(code=code, max_attempts=100, max_pairs=10, limits=Limits(timeout_s=5.0),
                                        per_call_timeout_s=1.0))
    assert res.status is S.SANDBOX_ERROR, res
    assert res.pairs == () and res.rejected == {}
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB: no giant allocation
    honest = SAMPLE_CODE.replace("forge(FRAMES)\n    os._exit(0)", "return {'n': random.randint(0, 10 ** 6)}")
    again = executor.sample(SampleRequest(code=honest, max_attempts=100, max_pairs=10, limits=Limits(timeout_s=5.0)))
    assert again.status is S.OK and len(again.pairs) == 10


def _frame(obj) -> bytes:
    payload = json.dumps(obj).encode()
    return len(payload).to_bytes(4, "big") + payload


def _sandbox_children(server_pids: list[int]) -> int:
    """Processes whose parent is one of the servers (its children)."""
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[1]) in server_pids:
            count += 1
    return count
