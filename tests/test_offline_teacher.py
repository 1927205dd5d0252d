"""The offline teacher: explanations from real traced executions in the sandbox."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from codeio.answers import extract_answer, values_match
from codeio.execution import Limits
from codeio.teachers import OFFLINE_BANNER, OfflineAnswer, OfflineTeacher
from codeio.teachers.offline import MAX_LINE_EVENTS, analyse_code, build_harness

sandbox = pytest.importorskip("codeio.sandbox", reason="the sandbox package is not importable")

CORPUS = Path(__file__).resolve().parents[1] / "codeio" / "corpus" / "unified.jsonl"
LIMITS = Limits(timeout_s=10.0)

JOSEPHUS = '''
class Solution2:
    def last_remaining(self, n, m):
        if n < 1 or m < 1:
            return -1
        last = 0
        for i in range(2, n + 1):
            last = (last + m) % i
        return last

# main function
def main_solution(n, m):
    solution = Solution2()
    return solution.last_remaining(n, m)
'''

RICH = '''
import math

class Node:
    def __init__(self, value):
        self.value = value
        self.children = []

class Opaque:
    __slots__ = ("x",)
    def __init__(self):
        self.x = 1

def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)

def main_solution(words, n):
    seen = set()
    root = Node(0)
    blob = Opaque()
    marker = object()
    total = 0
    for i in range(n):
        total += fib(i)
        seen.add(words[i % len(words)])
    k = 0
    while k < 3:
        k += 1
    squares = [x * x for x in range(n)]
    return {"total": total, "seen": sorted(seen), "ratio": round(total / 7, 4), "sq": squares[:3], "k": k}
'''


@pytest.fixture(scope="module")
def executor():
    ex = sandbox.create_executor(sandbox.SandboxConfig(workers=1))
    try:
        yield ex
    finally:
        ex.close()


@pytest.fixture(scope="module")
def teacher(executor) -> OfflineTeacher:
    return OfflineTeacher(executor, LIMITS)


def _answer(teacher: OfflineTeacher, task: str, code: str, inputs: dict, output, feedback=None) -> OfflineAnswer:
    return teacher.answer(task, code, json.dumps(inputs), json.dumps(output), feedback=feedback)


def test_output_prediction_explains_and_ends_with_the_answer(teacher):
    result = _answer(teacher, "output", JOSEPHUS, {"n": 61, "m": 4}, 38)
    assert result.ok and result.error is None
    text = result.text
    assert text.splitlines()[0] == OFFLINE_BANNER and "offline teacher" in text.splitlines()[0]
    assert text.rstrip().endswith('{"output": 38}')
    got = extract_answer(text, "output")
    assert got.ok and got.value == 38
    # real execution facts: the loop ran n - 1 = 60 times, the helper was called once and returned 38
    assert "runs its body 60 times" in text
    assert "`Solution2.last_remaining` is called once" in text and "it returns 38" in text
    assert "the last one" in text and "i = 61" in text
    assert "Step 1." in text


def test_input_prediction_reasons_from_the_candidate_input(teacher):
    result = _answer(teacher, "input", JOSEPHUS, {"n": 61, "m": 4}, 38)
    assert result.ok
    assert result.text.splitlines()[0] == OFFLINE_BANNER
    assert "candidate input" in result.text and "matches the given output" in result.text
    assert result.text.rstrip().endswith('{"input": {"n": 61, "m": 4}}')
    got = extract_answer(result.text, "input")
    assert got.ok and got.value == {"n": 61, "m": 4} and list(got.value) == ["n", "m"]


def test_same_inputs_same_text_even_on_another_executor(teacher):
    first = _answer(teacher, "output", RICH, {"words": ["b", "a", "c"], "n": 9}, None).text
    second = _answer(teacher, "output", RICH, {"words": ["b", "a", "c"], "n": 9}, None).text
    assert first == second
    other = sandbox.create_executor(sandbox.SandboxConfig(workers=1))
    try:
        third = OfflineTeacher(other, LIMITS).answer("output", RICH, json.dumps({"words": ["b", "a", "c"], "n": 9}), "null").text
    finally:
        other.close()
    assert third == first


def test_reprs_are_sanitized_and_sets_sorted(teacher):
    text = _answer(teacher, "output", RICH, {"words": ["zeta", "alpha", "mid"], "n": 6}, None).text
    assert not re.search(r"0x[0-9a-fA-F]{6,}", text)
    assert " at 0x" not in text
    assert "{'alpha', 'mid', 'zeta'}" in text  # set shown in sorted order, not hash order
    assert "Node(value=0, children=[])" in text
    assert "<Opaque object>" in text


def test_numpy_values_stay_on_one_line(teacher):
    code = (
        "import numpy as np\n\n"
        "def main_solution(rows):\n"
        "    grid = np.array(rows, dtype=float)\n"
        "    total = 0.0\n"
        "    for row in grid:\n"
        "        total += float(row.sum())\n"
        "    return round(total, 3)\n"
    )
    result = _answer(teacher, "output", code, {"rows": [[1, 2], [3, 4.5]]}, 10.5)
    assert result.ok, result.error
    assert "array([[1. , 2. ], [3. , 4.5]])" in result.text
    steps = [line for line in result.text.splitlines() if line.startswith("Step ")]
    assert len(steps) >= 4 and all("array" not in line or line.count("[") >= 2 for line in steps)
    assert extract_answer(result.text, "output").value == 10.5


def test_recursion_loops_and_comprehensions_are_summarised(teacher):
    text = _answer(teacher, "output", RICH, {"words": ["a"], "n": 8}, None).text
    assert "`fib` is called" in text and "recursing up to" in text
    assert "The loop `for i in range(n):`" in text and "runs its body 8 times" in text
    assert "The loop `while k < 3:`" in text and "runs its body 3 times" in text
    assert "A list comprehension" in text
    got = extract_answer(text, "output")
    assert got.value == {"total": 33, "seen": ["a"], "ratio": 4.7143, "sq": [0, 1, 4], "k": 3}


NESTED = """
def main_solution(n):
    t = 0
    for i in range(n):
        for j in range(i):
            t += j
        if i == 2:
            continue
        t += 1
    k = 0
    while k < 5:
        k += 1
        if k == 2:
            break
    else:
        t = -1
    for q in range(2): t += q
    return [t, k]
"""


def test_nested_loops_break_and_continue_are_counted_exactly(teacher):
    text = _answer(teacher, "output", NESTED, {"n": 4}, [8, 2]).text
    assert "The loop `for i in range(n):` (line 4 in `main_solution`) runs its body 4 times" in text
    assert "The loop `for j in range(i):` (line 5 in `main_solution`) runs its body 6 times" in text
    assert "The loop `while k < 5:` (line 11 in `main_solution`) runs its body twice" in text
    assert "for q in range(2)" not in text  # a one-line loop has no body lines to count
    assert extract_answer(text, "output").value == [8, 2]


def test_a_loop_that_never_runs(teacher):
    text = _answer(teacher, "output", NESTED, {"n": 0}, [1, 2]).text
    assert "is reached, but its body never runs" in text


def test_revision_rederives_the_answer(teacher):
    first = _answer(teacher, "output", JOSEPHUS, {"n": 10, "m": 3}, 3)
    again = _answer(teacher, "output", JOSEPHUS, {"n": 10, "m": 3}, 3, feedback="[Mismatch] ... try again")
    assert again.ok and again.text != first.text
    assert again.text.splitlines()[0] == OFFLINE_BANNER
    assert "derived again" in again.text
    assert extract_answer(again.text, "output").value == extract_answer(first.text, "output").value == 3


def test_code_runs_in_the_sandbox_not_in_this_process(teacher):
    code = "import os\n\ndef main_solution(x):\n    return os.getpid() + x\n"
    result = _answer(teacher, "output", code, {"x": 0}, 0)
    assert result.ok
    assert extract_answer(result.text, "output").value != os.getpid()


def test_exception_is_reported_not_raised(teacher):
    code = "def main_solution(x):\n    return 1 // x\n"
    result = _answer(teacher, "output", code, {"x": 0}, 0)
    assert not result.ok and result.text == ""
    assert "ZeroDivisionError" in result.error


def test_timeout_is_reported(executor):
    slow = OfflineTeacher(executor, Limits(timeout_s=1.0))
    code = "def main_solution(x):\n    while True:\n        x += 1\n"
    result = slow.answer("output", code, '{"x": 0}', "0")
    assert not result.ok and "timeout" in result.error


def test_unserializable_result_is_reported(teacher):
    code = "def main_solution(x):\n    return {x}\n"
    result = _answer(teacher, "output", code, {"x": 1}, [1])
    assert not result.ok and "NotJSONSerializable" in result.error


def test_tampered_trace_is_a_failure_not_a_crash(teacher):
    """Hostile code can reach the tracer's state; whatever comes back, answer() never raises."""
    code = (
        "import gc\n\n"
        "def main_solution(x):\n"
        "    for obj in gc.get_objects():\n"
        "        if isinstance(obj, dict) and 'main_locals' in obj and 'truncated' in obj:\n"
        "            obj['main_locals'] = 5\n"
        "    return x\n"
    )
    result = _answer(teacher, "output", code, {"x": 1}, 1)
    assert isinstance(result, OfflineAnswer)
    assert result.ok is False or extract_answer(result.text, "output").value == 1


def test_bad_inputs(teacher):
    assert not teacher.answer("output", JOSEPHUS, "[1, 2]", "3").ok
    assert not teacher.answer("output", JOSEPHUS, "{not json", "3").ok
    assert not teacher.answer("sideways", JOSEPHUS, '{"n": 1, "m": 1}', "0").ok
    broken = teacher.answer("output", "def main_solution(:\n", '{"n": 1}', "0")
    assert not broken.ok and "parse" in broken.error


def test_long_runs_stop_recording_but_still_answer(teacher):
    code = "def main_solution(n):\n    total = 0\n    for i in range(n):\n        total += i\n    return total\n"
    n = MAX_LINE_EVENTS  # about 2 line events per pass: the trace budget runs out halfway
    result = _answer(teacher, "output", code, {"n": n}, n * (n - 1) // 2)
    assert result.ok
    assert "lower bounds" in result.text
    assert extract_answer(result.text, "output").value == n * (n - 1) // 2


def test_harness_keeps_line_numbers():
    code_map = analyse_code(JOSEPHUS)
    harness = build_harness(JOSEPHUS, code_map)
    assert harness.splitlines()[: len(JOSEPHUS.rstrip("\n").splitlines())] == JOSEPHUS.rstrip("\n").splitlines()
    assert [loop.source for loop in code_map.loops] == ["for i in range(2, n + 1):"]
    assert code_map.loops[0].function == "Solution2.last_remaining"


def _corpus_rows() -> list[dict]:
    return [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_every_corpus_function_gets_a_verified_offline_answer(teacher):
    """Both tasks on the first pair of every shipped function: the answer the
    offline teacher writes is the one verification accepts."""
    for row in _corpus_rows():
        pair = row["ios"][0]
        for task in ("output", "input"):
            result = _answer(teacher, task, row["refcode"], pair["input"], pair["output"])
            name = row["meta"]["name"]
            assert result.ok, (name, task, result.error)
            assert result.text.startswith(OFFLINE_BANNER), name
            got = extract_answer(result.text, task)
            assert got.ok, (name, task, got.reason)
            if task == "output":
                assert values_match(got.value, pair["output"]), name
            else:
                assert got.value == pair["input"], name


STATEFUL = '''
from functools import lru_cache
import random

calls = []

@lru_cache(maxsize=None)
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)

def main_solution(n, seen=[]):
    seen.append(n)
    calls.append(n)
    return {"fib": fib(n), "seen": len(seen), "calls": len(calls), "draw": random.randint(0, 10**6)}
'''


def test_a_batch_reads_exactly_like_answers_traced_one_by_one(teacher):
    """One sandbox batch per function: module state (caches, mutable defaults,
    counters) and the seeded random stream never leak from one traced call to the next."""
    from codeio.teachers.offline import OfflineQuestion

    inputs = [{"n": 7}, {"n": 9}, {"n": 7}]
    questions = [OfflineQuestion(task, json.dumps(inp), "null", feedback)
                 for inp in inputs for task in ("output", "input") for feedback in (None, "try again")]
    batch = teacher.answer_batch(STATEFUL, questions)
    alone = [teacher.answer(q.task, STATEFUL, q.input_json, q.output_json, feedback=q.feedback) for q in questions]
    assert [(a.ok, a.text, a.error) for a in batch] == [(a.ok, a.text, a.error) for a in alone]
    assert all(a.ok for a in batch)
    assert extract_answer(batch[4].text, "output").value["seen"] == 1  # the third call did not see the first two
    failing = teacher.answer_batch("def main_solution(x):\n    return 1 // x\n",
                                   [OfflineQuestion("output", '{"x": 0}', "0"), OfflineQuestion("output", '{"x": 2}', "0")])
    assert not failing[0].ok and "ZeroDivisionError" in failing[0].error
    assert failing[1].ok and extract_answer(failing[1].text, "output").value == 0
