"""No state survives from one call to the next (issue 13.2) nor from one function
to the next in the same server (issue 9.4), and the determinism re-check runs
the inputs in another order."""

from __future__ import annotations

import json
import textwrap

import pytest

from codeio.execution import ExecStatus, Limits, RunRequest, SampleRequest
from codeio.sandbox import SandboxConfig, create_executor
from codeio.stages.collect_io import CollectConfig, collect_io_shard

S = ExecStatus
THREADS = Limits(timeout_s=3.0, max_processes=4)


@pytest.fixture(scope="module")
def executor():
    ex = create_executor(SandboxConfig(workers=1, preload=("math", "random", "json", "collections")))
    yield ex
    ex.close()


def values(ex, code: str, inputs: list[dict], limits: Limits = Limits(timeout_s=3.0)) -> list:
    res = ex.run(RunRequest(code=textwrap.dedent(code), inputs_json=tuple(json.dumps(i) for i in inputs),
                            limits=limits, check_size=False))
    assert all(r.ok for r in res), [r.describe() for r in res]
    return [json.loads(r.value_json) for r in res]


def test_mutable_default_and_globals_start_fresh_for_every_input(executor):
    code = """
    import functools
    total = {"n": 0}

    @functools.lru_cache(maxsize=None)
    def cached(x):
        total["n"] += 1
        return total["n"]

    def main_solution(x, seen=[]):
        seen.append(x)
        return [len(seen), cached(0)]
    """
    assert values(executor, code, [{"x": i} for i in range(4)]) == [[1, 1]] * 4


def test_mutable_default_in_sampling_starts_fresh(executor):
    code = textwrap.dedent("""
    import random

    def main_solution(n, seen=[]):
        seen.append(n)
        return len(seen)

    def input_generator():
        return {"n": random.randint(0, 10 ** 6)}
    """)
    res = executor.sample(SampleRequest(code=code, max_attempts=50, max_pairs=5))
    assert res.status is S.OK and [p.output_json for p in res.pairs] == ["1"] * 5


@pytest.mark.parametrize("tamper", [
    "math.sqrt = lambda v: -1.0",
    "sys.modules['math'] = types.SimpleNamespace(sqrt=lambda v: -2.0)",
    "del sys.modules['math']",
    "random.random = lambda: 0.5",
    "builtins.sorted = lambda *a, **k: ['patched']",
    "sys.setrecursionlimit(50)",
    "os.environ['X'] = 'y'; os.chdir('/')",
    "threading.Thread(target=lambda: [setattr(math, 'sqrt', abs) or time.sleep(0.001) for _ in range(10 ** 6)],"
    " daemon=True).start(); time.sleep(0.05)",
    "open('state.txt', 'w').write('tampered')",
])
@pytest.mark.parametrize("clean_calls_before", [0, 12], ids=["first-call", "after-imports-split-off"])
def test_a_call_that_tampers_with_shared_state_does_not_change_the_next(executor, tamper, clean_calls_before):
    """Also after a dozen calls, when the top-level imports are no longer run
    again for each call (child.FAST_RELOAD_AFTER)."""
    code = f"""
    import builtins, math, os, random, sys, threading, time, types

    def main_solution(tamper):
        if tamper:
            {tamper}
            return None
        found = [path for path in ("state.txt",) if os.path.exists(path)]
        return [__import__("math").sqrt(16.0), random.random(), sorted([2, 1]), sys.getrecursionlimit() > 100,
                os.environ.get("X"), os.getcwd() != "/", found]
    """
    clean = values(executor, code, [{"tamper": False}])
    calls = [{"tamper": False}] * clean_calls_before + [{"tamper": True}, {"tamper": False}, {"tamper": False}]
    after = values(executor, code, calls, THREADS)
    assert after[:clean_calls_before] == clean * clean_calls_before
    assert after[clean_calls_before + 1:] == clean * 2
    assert clean[0][0] == 4.0 and clean[0][2] == [1, 2]


LEAVE_BEHIND = """
import math, os, random, sys, threading, time

def main_solution(x):
    math.floor = lambda v: 7
    sys.modules["json"] = None
    random.seed(12345)
    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
    for folder in ("/dev/shm", "/tmp", "/var/tmp"):
        try:
            with open(os.path.join(folder, "left-behind"), "wb") as fh:
                fh.write(b"x" * 4096)
        except OSError:
            pass
    if os.fork() == 0:  # double fork: an orphan outside the call's process group
        os.setsid()
        if os.fork() == 0:
            time.sleep(30)
        os._exit(0)
    return x
"""

NEXT = """
import json, math, os, random

def main_solution(x):
    left = sorted(p for p in ("/dev/shm", "/tmp", "/var/tmp") if os.path.exists(os.path.join(p, "left-behind")))
    return [math.floor(2.5), json.dumps([x]), random.random(), left, len(os.listdir("."))]
"""


def test_next_function_is_unaffected_by_the_previous_ones_leftovers():
    with create_executor(SandboxConfig(workers=1, preload=("math", "random", "json"))) as ex:
        fresh = values(ex, NEXT, [{"x": 1}])
    with create_executor(SandboxConfig(workers=1, preload=("math", "random", "json"))) as ex:
        values(ex, LEAVE_BEHIND, [{"x": 1}], THREADS)
        after = values(ex, NEXT, [{"x": 1}])
    assert after == fresh
    assert fresh[0][:2] == [2, "[1]"] and fresh[0][3] == []


def test_recheck_runs_inputs_in_another_order():
    """State kept where no guard looks (a class attribute) makes results depend on
    the order of calls: the re-check in reverse order catches it."""
    code = textwrap.dedent("""
    import collections

    def main_solution(x):
        n = getattr(collections.Counter, "_calls", 0)
        collections.Counter._calls = n + 1
        return n
    """)
    pairs = [{"input": {"x": i}, "output": i} for i in range(3)]
    fn = {"function_id": "f1", "source_id": "s1", "main_code": code, "io_description": "", "generator_code": None,
          "problem_statement": "", "given_pairs": json.dumps(pairs), "teacher": "source", "llm_call_id": None,
          "origin": "{}"}
    with create_executor(SandboxConfig(workers=1, preload=("collections",))) as ex:
        out = collect_io_shard([fn], CollectConfig(), ex)
    assert [r["reason"] for r in out.rejects] == ["nondeterministic"]


def test_top_level_imports_rebound_later_are_run_again(executor):
    """Imports are not re-run between calls only when that provably binds the same names."""
    code = """
    import math
    from collections import Counter
    math = {"pi": 3}
    Counter = len

    def main_solution(x, acc=[]):
        acc.append(x)
        return [math["pi"], Counter(acc)]
    """
    assert values(executor, code, [{"x": i} for i in range(20)]) == [[3, 1]] * 20


def test_imports_split_off_bind_what_a_whole_run_binds(executor):
    """The split is prepared after some calls, from a whole run of the top level
    made then: a call that rebinds a global import name (or changes the load's
    namespace) before that does not leak into the later calls."""
    code = """
    import math
    from collections import Counter

    def main_solution(x):
        global math, Counter
        out = [math.floor(2.5), Counter("aab")["a"], __name__]
        math = None
        Counter = None
        return out
    """
    assert values(executor, code, [{"x": i} for i in range(20)]) == [[2, 2, "__codeio_sandbox__"]] * 20


def test_code_runs_as_a_registered_module_for_every_call(executor):
    """Dataclasses under postponed annotations, typing.get_type_hints, enum and
    pickle look the code's module up in sys.modules by ``__module__``: it is
    there for the load and for every call (each call with its own fresh module),
    and the guard does not take that entry for tampering (the calls stay in one child)."""
    code = """
    from __future__ import annotations

    import enum, os, pickle, sys, typing
    from dataclasses import dataclass, field

    class Color(enum.Enum):
        RED = 1

    @dataclass
    class Node:
        val: int
        left: Node | None = None
        children: list[int] = field(default_factory=list)

    def main_solution(x):
        @dataclass
        class Local:
            v: int

        node = Node(x, Node(x + 1))
        back = pickle.loads(pickle.dumps(node))
        hints = sorted(typing.get_type_hints(Node))
        module = sys.modules[Node.__module__]
        return [back.left.val, Local(x).v, hints, module.Node is Node, vars(module) is globals(),
                pickle.loads(pickle.dumps(Color.RED)) is Color.RED, os.getpid()]
    """
    out = values(executor, code, [{"x": i} for i in range(20)])
    assert [row[:6] for row in out] == [[i + 1, i, ["children", "left", "val"], True, True, True] for i in range(20)]
    assert len({row[6] for row in out}) == 1  # one child: registering the module is not tampering


def test_tampering_with_the_codes_own_module_entry_does_not_carry_over(executor):
    code = """
    from __future__ import annotations

    import sys
    from dataclasses import dataclass

    def main_solution(tamper):
        if tamper:
            sys.modules[__name__] = None
            return None

        @dataclass
        class Point:
            x: int

        return [Point(3).x, sys.modules[__name__] is not None]
    """
    assert values(executor, code, [{"tamper": True}, {"tamper": False}])[1:] == [[3, True]]


def test_sys_modules_tampering_by_the_generator_still_stops_sampling(executor):
    """Registering the code's module between calls must not hide a write to
    sys.modules made by the generator just before it."""
    code = textwrap.dedent("""
    import random, sys, types

    calls = []

    def main_solution(n):
        return __import__("math").sqrt(16.0)

    def input_generator():
        calls.append(1)
        if len(calls) == 1:
            sys.modules["math"] = types.SimpleNamespace(sqrt=lambda v: -2.0)
        return {"n": random.randint(0, 10 ** 6)}
    """)
    res = executor.sample(SampleRequest(code=code, max_attempts=20, max_pairs=5))
    assert "-2.0" not in [p.output_json for p in res.pairs][1:]


GETSOURCE = """
import inspect
import sys
import traceback


class Shape:
    \"\"\"A shape.\"\"\"

    sides = 3

    def area(self):
        return 0


def helper(x):
    return x + 1


def main_solution(x):
    try:
        raise ValueError("boom")
    except ValueError:
        tb = traceback.format_exc()
    return [inspect.getsource(Shape).splitlines()[0], inspect.getsource(Shape.area).strip(),
            inspect.getsource(helper).splitlines()[1].strip(), inspect.getsource(main_solution).splitlines()[0],
            inspect.getsourcelines(helper)[1], inspect.getsource(sys.modules[__name__]).count("def "),
            'raise ValueError("boom")' in tb, __file__ == inspect.getsourcefile(Shape)]


def input_generator():
    return {"x": len(inspect.getsource(helper))}
"""


def test_inspect_getsource_works_on_the_codes_own_classes_and_functions(executor):
    """Code that reads its own source (inspect.getsource of a class, a method, a
    function or the module; source lines in tracebacks) works as from a file, for
    the load's namespace and every fresh one, and in sampling."""
    expected = ["class Shape:", "def area(self):\n        return 0", "return x + 1", "def main_solution(x):",
                16, 5, True, True]
    assert values(executor, GETSOURCE, [{"x": i} for i in range(12)]) == [expected] * 12
    res = executor.sample(SampleRequest(code=GETSOURCE, max_attempts=3, max_pairs=3))
    assert res.status is S.OK and len(res.pairs) == 1  # the generator's one input, then duplicates
    assert json.loads(res.pairs[0].input_json) == {"x": len("def helper(x):\n    return x + 1\n")}
