"""The sandbox engine on well-behaved code: contract, size checks, sampling,
seeds, determinism re-check, thread safety, cache, server lifecycle."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from codeio.execution import ExecStatus, Limits, RunRequest, SampleRequest, run_one
from codeio.sandbox import CachingExecutor, SandboxConfig, create_executor
from codeio.sandbox.sizecheck import is_finite, size_violation

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

ADD = "def main_solution(a, b):\n    return a + b\n"
GEN = textwrap.dedent(
    """
    import random

    def main_solution(n):
        if n == 3:
            return None
        if n == 4:
            return float("nan")
        if n == 5:
            return list(range(50))
        if n == 6:
            raise ValueError("six")
        return n * n

    def input_generator():
        return {"n": random.randint(0, 12)}
    """
)


@pytest.fixture(scope="module")
def executor():
    ex = create_executor(SandboxConfig(workers=2))
    yield ex
    ex.close()


def test_run_returns_json_values_in_order(executor):
    res = executor.run(RunRequest(code=ADD, inputs_json=('{"a": 1, "b": 2}', '{"a": "x", "b": "y"}', '{"a": [1], "b": [2]}')))
    assert [r.status for r in res] == [ExecStatus.OK] * 3
    assert [json.loads(r.value_json) for r in res] == [3, "xy", [1, 2]]


def test_exception_has_type_message_and_traceback(executor):
    r = run_one(executor, "def main_solution(x):\n    return 1 / x\n", '{"x": 0}', limits=Limits())
    assert r.status is ExecStatus.EXCEPTION
    assert r.error_type == "ZeroDivisionError"
    assert "division by zero" in r.error_message
    assert "<code>" in r.traceback


def test_nan_comes_back_as_text_and_size_check_applies(executor):
    code = "def main_solution(k):\n    return {'nan': float('nan'), 'big': list(range(30)), 's': 'x' * 200}[k]\n"
    res = executor.run(RunRequest(code=code, inputs_json=('{"k": "nan"}', '{"k": "big"}', '{"k": "s"}')))
    assert res[0].status is ExecStatus.OK and res[0].value_json == "NaN"
    assert res[1].status is ExecStatus.INVALID_VALUE and "too large" in res[1].error_message
    assert res[2].status is ExecStatus.INVALID_VALUE and "characters" in res[2].error_message
    unchecked = executor.run(RunRequest(code=code, inputs_json=('{"k": "big"}',), check_size=False))
    assert json.loads(unchecked[0].value_json) == list(range(30))


def test_not_json_serializable_is_invalid_value(executor):
    r = run_one(executor, "def main_solution():\n    return {1, 2}\n", "{}", limits=Limits())
    assert r.status is ExecStatus.INVALID_VALUE
    assert "JSON" in r.error_message


def test_missing_entry_and_syntax_error_fail_every_call(executor):
    res = executor.run(RunRequest(code="def other():\n    pass\n", inputs_json=("{}", "{}")))
    assert [r.error_type for r in res] == ["NameError", "NameError"]
    res = executor.run(RunRequest(code="def main_solution(:\n", inputs_json=("{}",)))
    assert res[0].status is ExecStatus.EXCEPTION and res[0].error_type == "SyntaxError"


COMPILED_EITHER_WAY = textwrap.dedent(
    """
    import math
    counter = [0]

    def main_solution(a: int, b):
        counter[0] += 1
        return {"sum": math.fsum([a, b]), "calls": counter[0], "annotations": main_solution.__annotations__,
                "file": __file__, "module": __name__, "line": main_solution.__code__.co_firstlineno}
    """
)


def test_code_compiled_by_the_server_or_the_child_behaves_the_same(executor):
    """The server compiles code up to SERVER_COMPILE_MAX_CHARS; longer code, and code the
    compiler warns about, is compiled in the child: same results, same errors."""
    from codeio.sandbox.server import SERVER_COMPILE_MAX_CHARS

    inputs = ('{"a": 1, "b": 2}', '{"a": 3, "b": 4}')
    short = executor.run(RunRequest(code=COMPILED_EITHER_WAY, inputs_json=inputs, check_size=False))
    padding = "#" * (SERVER_COMPILE_MAX_CHARS + 10) + "\n"
    long = executor.run(RunRequest(code=padding + COMPILED_EITHER_WAY, inputs_json=inputs, check_size=False))
    warned = executor.run(RunRequest(code="assert (1, 'always true')\n" + COMPILED_EITHER_WAY, inputs_json=inputs,
                                     check_size=False))
    for res, first_line in ((short, 5), (long, 6), (warned, 6)):
        assert [r.status for r in res] == [ExecStatus.OK] * 2
        values = [json.loads(r.value_json) for r in res]
        assert [v["calls"] for v in values] == [1, 1]  # every call from the code as loaded
        assert values[0] == {"sum": 3.0, "calls": 1, "annotations": {"a": "int"}, "file": "<code>",
                             "module": "__codeio_sandbox__", "line": first_line}
    broken = executor.run(RunRequest(code=padding + "def main_solution(:\n", inputs_json=("{}",)))
    assert broken[0].status is ExecStatus.EXCEPTION and broken[0].error_type == "SyntaxError"


@pytest.mark.parametrize("source", [
    "x = " + "(" * 20000 + ")" * 20000,
    "x = " + "-" * 60000 + "1",
    "x = 1" + "+1" * 30000,
    "x = " + "[" * 30000 + "]" * 30000,
    "x = " + "lambda: " * 8000 + "1",
    "x = 2 ** 10000000\nx = 'a' * 10 ** 9\n",
    "x = 1\0",
], ids=["parens", "unary", "binop", "lists", "lambdas", "folding", "nul"])
def test_hostile_source_does_not_hurt_the_server(executor, source):
    """Deep nesting, huge constants to fold, a NUL byte: the server's compile gives up
    (the child compiles and reports it) or stays small; the server lives on."""
    servers = set(executor.server_pids())
    res = executor.run(RunRequest(code=source + "\ndef main_solution():\n    return 1\n", inputs_json=("{}",),
                                  limits=Limits(timeout_s=5.0, memory_mb=512)))
    assert res[0].status in (ExecStatus.OK, ExecStatus.EXCEPTION, ExecStatus.MEMORY, ExecStatus.TIMEOUT)
    assert res[0].status is not ExecStatus.SANDBOX_ERROR
    assert executor.run(RunRequest(code=ADD, inputs_json=('{"a": 2, "b": 3}',)))[0].value_json == "5"
    assert set(executor.server_pids()) == servers


def test_child_only_import_works_and_missing_package_is_reported(executor):
    code = "import sqlite3, fractions, wave\ndef main_solution():\n    return str(fractions.Fraction(1, 3)) + sqlite3.sqlite_version[:0]\n"
    r = run_one(executor, code, "{}", limits=Limits())
    assert r.status is ExecStatus.OK and json.loads(r.value_json) == "1/3"
    r = run_one(executor, "import no_such_package_xyz\ndef main_solution():\n    return 1\n", "{}", limits=Limits())
    assert r.status is ExecStatus.EXCEPTION
    assert r.error_type == "ModuleNotFoundError" and "no_such_package_xyz" in r.error_message


def test_seed_is_set_before_each_call(executor):
    code = "import random\nimport numpy as np\ndef main_solution():\n    return [random.random(), float(np.random.rand())]\n"
    a = executor.run(RunRequest(code=code, inputs_json=("{}", "{}"), seed=7))
    b = executor.run(RunRequest(code=code, inputs_json=("{}",), seed=7))
    c = executor.run(RunRequest(code=code, inputs_json=("{}",), seed=8))
    assert a[0].value_json == a[1].value_json == b[0].value_json != c[0].value_json


def test_batch_stops_at_first_fatal_call_unless_asked_to_continue(executor):
    code = "def main_solution(x):\n    while x == 1:\n        pass\n    return x\n"
    inputs = ('{"x": 0}', '{"x": 1}', '{"x": 2}')
    limits = Limits(timeout_s=0.5)
    stopped = executor.run(RunRequest(code=code, inputs_json=inputs, limits=limits))
    assert [r.status for r in stopped] == [ExecStatus.OK, ExecStatus.TIMEOUT, ExecStatus.TIMEOUT]
    assert "not run" in stopped[2].error_message
    went_on = executor.run(RunRequest(code=code, inputs_json=inputs, limits=limits, stop_on_fatal=False))
    assert [r.status for r in went_on] == [ExecStatus.OK, ExecStatus.TIMEOUT, ExecStatus.OK]
    assert went_on[2].value_json == "2"


def test_module_level_state_is_not_shared_between_calls(executor):
    """Every call starts from the code as loaded (issue 13.2: state leaked between inputs)."""
    code = "calls = []\ndef main_solution():\n    calls.append(1)\n    return len(calls)\n"
    assert [r.value_json for r in executor.run(RunRequest(code=code, inputs_json=("{}",) * 3))] == ["1", "1", "1"]
    assert executor.run(RunRequest(code=code, inputs_json=("{}",)))[0].value_json == "1"


def test_sample_filters_and_counts_rejects(executor):
    res = executor.sample(SampleRequest(code=GEN, max_attempts=300, max_pairs=6, seed=3))
    assert res.status is ExecStatus.OK
    assert len(res.pairs) == 6
    inputs = [p.input_json for p in res.pairs]
    assert len(set(inputs)) == 6
    for pair in res.pairs:
        n = json.loads(pair.input_json)["n"]
        assert n not in (3, 4, 5, 6)
        assert json.loads(pair.output_json) == n * n
    assert res.rejected.get("duplicate", 0) > 0
    again = executor.sample(SampleRequest(code=GEN, max_attempts=300, max_pairs=6, seed=3))
    assert again.pairs == res.pairs  # seeded: reproducible


def test_sample_reasons_for_bad_outputs(executor):
    res = executor.sample(SampleRequest(code=GEN, max_attempts=400, max_pairs=100, seed=1))
    assert res.status is ExecStatus.OK
    assert res.attempts == 400
    for reason in ("output_none", "output_not_finite", "output_too_large", "entry_exception", "duplicate"):
        assert res.rejected.get(reason, 0) > 0, reason
    assert len(res.pairs) == 13 - 4


def test_sample_generator_failures(executor):
    flaky = "import random\ndef main_solution(x):\n    return x\ndef input_generator():\n    if random.random() < 0.5:\n        raise RuntimeError('flaky')\n    return {'x': random.randint(0, 9)}\n"
    res = executor.sample(SampleRequest(code=flaky, max_attempts=200, max_pairs=5))
    assert res.status is ExecStatus.OK and len(res.pairs) == 5
    assert res.rejected["generator_exception"] > 0
    broken = "def main_solution(x):\n    return x\ndef input_generator():\n    raise KeyError('always')\n"
    res = executor.sample(SampleRequest(code=broken, max_attempts=20))
    assert res.status is ExecStatus.EXCEPTION and res.error_type == "KeyError"
    assert res.attempts == 20 and res.pairs == ()


def test_sample_per_call_timeout_is_counted_and_hard_budget_holds(executor):
    slow = "import random, time\ndef main_solution(x):\n    if x == 0:\n        time.sleep(10)\n    return x\ndef input_generator():\n    return {'x': random.randint(0, 3)}\n"
    res = executor.sample(SampleRequest(code=slow, max_attempts=50, max_pairs=3, per_call_timeout_s=0.3, seed=2))
    assert res.status is ExecStatus.OK and len(res.pairs) == 3
    assert res.rejected.get("entry_timeout", 0) >= 1
    hostile = "import signal\ndef main_solution(x):\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n    while True:\n        pass\ndef input_generator():\n    return {'x': 1}\n"
    res = executor.sample(SampleRequest(code=hostile, max_attempts=5, per_call_timeout_s=0.3, limits=Limits(timeout_s=1.0)))
    assert res.status is ExecStatus.TIMEOUT and res.pairs == ()


def test_recheck_uses_a_different_hash_seed(executor):
    code = "import os\ndef main_solution(words):\n    return [list(set(words)), os.environ.get('PYTHONHASHSEED')]\n"
    inp = json.dumps({"words": ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"]})
    normal = executor.run(RunRequest(code=code, inputs_json=(inp,)))[0]
    again = executor.run(RunRequest(code=code, inputs_json=(inp,)))[0]
    recheck = executor.run(RunRequest(code=code, inputs_json=(inp,), recheck=True))[0]
    assert normal.value_json == again.value_json
    assert json.loads(normal.value_json)[1] != json.loads(recheck.value_json)[1]
    assert json.loads(normal.value_json)[0] != json.loads(recheck.value_json)[0]


def test_concurrent_threads_get_their_own_results(executor):
    def job(i: int) -> list[str | None]:
        code = f"def main_solution(x):\n    return x * {i}\n"
        inputs = tuple(json.dumps({"x": k}) for k in range(5))
        return [r.value_json for r in executor.run(RunRequest(code=code, inputs_json=inputs))]

    with ThreadPoolExecutor(8) as pool:
        out = list(pool.map(job, range(40)))
    assert out == [[str(k * i) for k in range(5)] for i in range(40)]


def test_fingerprint_names_python_and_is_stable(executor):
    fp = executor.fingerprint()
    assert fp.startswith(f"py{sys.version_info.major}.{sys.version_info.minor}")
    assert fp == executor.fingerprint()
    other = create_executor(SandboxConfig(workers=1, preload=("math",)))
    try:
        assert other.fingerprint() != fp
    finally:
        other.close()


def test_server_is_replaced_after_it_dies(executor):
    before = set(executor.server_pids())
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    res = executor.run(RunRequest(code=ADD, inputs_json=('{"a": 1, "b": 1}',)))
    assert res[0].value_json == "2"
    with ThreadPoolExecutor(2) as pool:  # touch both servers
        list(pool.map(lambda _: executor.run(RunRequest(code=ADD, inputs_json=('{"a": 1, "b": 1}',))), range(4)))
    assert not before & set(executor.server_pids())


class DictCache:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def put(self, key: str, value: bytes) -> None:
        self.data[key] = value


def test_cache_serves_repeated_ok_runs_and_nothing_else(executor):
    cache = DictCache()
    cached = CachingExecutor(executor, cache)
    code = "def main_solution(x):\n    return 10 // x\n"
    inputs = ('{"x": 1}', '{"x": 0}', '{"x": 5}')
    first = cached.run(RunRequest(code=code, inputs_json=inputs))
    assert [r.status for r in first] == [ExecStatus.OK, ExecStatus.EXCEPTION, ExecStatus.OK]
    assert len(cache.data) == 2 and cached.misses == 3
    second = cached.run(RunRequest(code=code, inputs_json=inputs))
    assert [r.value_json for r in second] == [r.value_json for r in first]
    assert cached.hits == 2 and cached.misses == 4  # the exception is executed again
    cached.run(RunRequest(code=code, inputs_json=inputs, seed=1))  # seed is part of the key
    cached.run(RunRequest(code=code, inputs_json=inputs, limits=Limits(timeout_s=2.0)))  # so are limits
    assert cached.hits == 2
    cached.run(RunRequest(code=code, inputs_json=inputs, recheck=True))  # never read nor written
    assert cached.hits == 2 and len(cache.data) == 6
    cached.sample(SampleRequest(code=GEN, max_attempts=10))
    assert len(cache.data) == 6


def test_size_check_rules():
    assert size_violation(5) is None
    assert size_violation({"a": [1, 2, 3], "b": "xyz"}) is None
    assert size_violation(list(range(19))) is None
    assert "entries" in size_violation(list(range(20)))
    assert "entries" in size_violation({"k": [[0] * 20]})
    assert "characters" in size_violation("x" * 100)
    assert "scalar" in size_violation(10 ** 300)
    assert "deep size" in size_violation([[f"{i}{j}" + "a" * 80 for j in range(5)] for i in range(3)])
    assert is_finite({"a": [1.0, 2]}) and not is_finite({"a": [1.0, math.inf]}) and not is_finite([math.nan])


def test_servers_die_with_their_owner(tmp_path):
    script = tmp_path / "owner.py"
    script.write_text(textwrap.dedent(
        """
        import sys, time
        from codeio.sandbox import SandboxConfig, create_executor
        ex = create_executor(SandboxConfig(workers=2, preload=("math",)))
        ex.fingerprint()
        print(" ".join(map(str, ex.server_pids())), flush=True)
        time.sleep(60)
        """
    ))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    pids = [int(p) for p in owner.stdout.readline().split()]
    assert len(pids) == 2
    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not (SHARED / "data" / "codeio-toy").exists(), reason="../shared/data/codeio-toy not present")
def test_toy_functions_reproduce_their_pairs(executor):
    rows = [json.loads(line) for line in (SHARED / "data" / "codeio-toy" / "unified_with_ios.jsonl").read_text().splitlines()[:30]]
    prefix = "import math, random, json, collections, itertools, heapq, bisect, functools, re, string\nfrom typing import *\nimport numpy as np\n"
    same = total = 0
    for row in rows:
        inputs = tuple(json.dumps(io["input"]) for io in row["ios"])
        res = executor.run(RunRequest(code=prefix + row["refcode"], inputs_json=inputs, check_size=False))
        for io, r in zip(row["ios"], res):
            total += 1
            same += r.ok and json.loads(r.value_json) == io["output"]
    assert same >= 0.8 * total
