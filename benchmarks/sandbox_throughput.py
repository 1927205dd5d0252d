"""Throughput of the sandbox engine against a spawn-per-check baseline and plain
in-process calls, over every pair of the authors' toy functions.

    .venv/bin/python benchmarks/sandbox_throughput.py [--spawn-sample N]

All three run in the same process run on both cores (2 workers each) over the
same code text (the reference import prefix + ``refcode``). The spawn baseline
is measured on a sample of checks (default: the first pair of every function)
because it is ~20 checks/s; its rate is what the ratio uses. The in-process
baseline runs in two worker processes with a per-call interval timer and a
per-function watchdog, so a hanging toy function cannot wedge the benchmark.
"Light" checks are those that take under 1 ms in-process; the engine and the
in-process baselines are timed again on exactly those (median of 5 interleaved
rounds).

The in-process baseline of the final line runs each check on its own (exec the
program, call once), as the reference checker does and as STACK-NOTES measured
it (~250 checks/s overall, ~3,400/s light). A stricter variant that execs each
function once and makes all its calls (the engine's batching without any
isolation) is printed on the line before, as "strict".

The engine is also timed with its isolation turned off (``isolate_network=False``:
no user/network/mount/PID namespaces, no minimal filesystem view; what issue 9
added), over the same checks, as "isolation off": the cost of the isolation is
the ratio of the two, printed as ``isolated/unisolated`` (target: at least 0.8). The
two full passes are interleaved, five rounds each; each rate is the median of its rounds,
and the ratio the median of the five back-to-back pairs' ratios (a single pass of each
swung it between 0.71 and 1.30 on the shared machine, the median of three rounds once gave 0.71).

Last line: ``checks_per_s=<x> ratio_vs_spawn=<x> ratio_vs_inprocess=<x> light_ratio_vs_inprocess=<x>``.

Figures of 3 Dec 2026 (flock /work/wt/bench.lock for each run; the machine is shared with another
helper's ingest work, which also runs outside the lock; "main" is the engine before this day's
changes: server compiles, child inherits the job and code, libc fork, seccomp in the server):

    run as  engine        load start->end  checks/s  isolated/unisolated  light engine/strict  ratio  last line
    root    this change   2.36 -> 2.22     228.4     1.02 (3 rounds)      1577 / 15662         0.10   checks_per_s=228.4 ratio_vs_spawn=16.09 ratio_vs_inprocess=0.96 light_ratio_vs_inprocess=0.50
    root    main          2.79 -> 3.43     163.5     0.95 (1 pass)        1094 / 8283          0.13   checks_per_s=163.5 ratio_vs_spawn=9.76 ratio_vs_inprocess=1.16 light_ratio_vs_inprocess=0.62
    nobody  this change   1.64 -> 3.58     126.1     1.02 (3 rounds)      1476 / 13417         0.11   checks_per_s=126.1 ratio_vs_spawn=7.98 ratio_vs_inprocess=0.96 light_ratio_vs_inprocess=0.52
    nobody  main          2.27 -> 2.10     195.9     0.83 (1 pass)        1419 / 14117         0.10   checks_per_s=195.9 ratio_vs_spawn=12.50 ratio_vs_inprocess=0.82 light_ratio_vs_inprocess=0.48
    root    this change   2.41 -> 2.10     171.1     0.71 (3 rounds)      1633 / 16006         0.10   checks_per_s=171.1 ratio_vs_spawn=12.05 ratio_vs_inprocess=1.11 light_ratio_vs_inprocess=0.51
    nobody  this change   2.10 -> 2.08     220.9     0.96 (3 rounds)      1513 / 13444         0.11   checks_per_s=220.9 ratio_vs_spawn=16.95 ratio_vs_inprocess=0.92 light_ratio_vs_inprocess=0.58
    root    this change   0.70 -> 1.69     226.6     1.07 (3 rounds)      1449 / 14518         0.10   checks_per_s=226.6 ratio_vs_spawn=15.70 ratio_vs_inprocess=0.87 light_ratio_vs_inprocess=0.48
    root    this (final)  1.30 -> 1.95     249.9     1.00 (5 pairs)       1968 / 15956         0.12   checks_per_s=249.9 ratio_vs_spawn=14.75 ratio_vs_inprocess=0.96 light_ratio_vs_inprocess=0.52
    nobody  this (final)  1.56 -> 4.00     162.9     1.06 (5 pairs)       1039 / 6558          0.16   checks_per_s=162.9 ratio_vs_spawn=21.84 ratio_vs_inprocess=0.71 light_ratio_vs_inprocess=0.63
    root    main 10:35    0.80 -> 2.00     203.6     0.98 (5 pairs)       1713 / 11853         0.14   checks_per_s=203.6 ratio_vs_spawn=14.04 ratio_vs_inprocess=1.06 light_ratio_vs_inprocess=0.68
    nobody  main 10:37    2.00 -> 2.04     190.1     0.97 (5 pairs)       1829 / 12485         0.15   checks_per_s=190.1 ratio_vs_spawn=13.17 ratio_vs_inprocess=0.91 light_ratio_vs_inprocess=0.67

"3 rounds": the median of three interleaved rounds per rate (one run still gave 0.71), hence
the final method (this file): five rounds, the ratio the median of the five pairs' ratios.
The last nobody run had another helper's work start mid-run (load 4.0): the baselines halved.
"main 10:35/10:37": main's engine on a fresh machine with nothing else of the session running (no lock needed).

The strict light ratio (target 0.3) is not met: a light function costs the strict baseline ~1 ms of
CPU and the engine ~8-9 ms (fork and exit ~1.8 ms, ~760 copy-on-write faults in the child, the
server's ~500); see "Performance" in docs/SANDBOX.md for each change, what it gave, and where the rest goes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import select
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATA = ROOT.parent / "shared" / "data" / "codeio-toy" / "unified_with_ios.jsonl"
WORKERS = 2
CALL_TIMEOUT_S = 5.0
FUNCTION_WATCHDOG_S = 60.0
LIGHT_CALL_S = 1e-3
LIGHT_ROUNDS = 5
FULL_ROUNDS = 5
# The reference scripts' import prefix (what a generated function may rely on).
SOLUTION_PREFIX = """\
from itertools import accumulate, chain, combinations, count, permutations, product, groupby, islice, repeat
from copy import deepcopy
import signal
from string import ascii_lowercase, ascii_uppercase
from math import floor, log2, log10, sqrt, hypot, comb, gcd, ceil, inf, isqrt, lcm, factorial, dist
from collections import defaultdict, deque, Counter
from bisect import bisect, bisect_left, bisect_right, insort
from heapq import heappush, heappop, heapify, merge, heapreplace
from functools import reduce, lru_cache, cache, cmp_to_key
from random import randrange, shuffle
from operator import itemgetter, sub, or_, xor, and_
from re import search as re_search
from os.path import commonprefix
from typing import List, Tuple, Dict, Set, Optional, Union, Any, Callable, Iterable, Iterator, Generator
import copy
import datetime
import string
import math
from math import atan2, pi
import collections
import bisect
import heapq
from heapq import nlargest
import functools
import random
from random import randint
import itertools
import operator
import re
import json
import numpy as np
from math import log, prod
from collections import deque, defaultdict, Counter, OrderedDict
from itertools import accumulate, permutations, combinations, product, groupby, islice, chain, repeat, zip_longest, cycle
from functools import lru_cache, reduce, partial
import sys
from itertools import pairwise
"""
PRELOAD = ("math", "random", "itertools", "collections", "functools", "heapq", "bisect", "re", "string",
           "json", "copy", "datetime", "typing", "operator", "signal", "os.path", "numpy")
SPAWN_DRIVER = """
import json as _json, sys as _sys
_args = _json.loads({inp!r})
_out = main_solution(**_args)
_sys.__stdout__.write("\\n__RESULT__" + _json.dumps(_out))
"""


def load_functions() -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    return [{"code": SOLUTION_PREFIX + "\n\n" + r["refcode"],
             "inputs": [json.dumps(io["input"]) for io in r["ios"]],
             "outputs": [io["output"] for io in r["ios"]]} for r in rows]


def is_close(pred: Any, target: Any, tol: float = 1e-3) -> bool:
    if isinstance(pred, dict) and isinstance(target, dict):
        return pred.keys() == target.keys() and all(is_close(pred[k], target[k], tol) for k in pred)
    if isinstance(pred, list) and isinstance(target, list):
        return len(pred) == len(target) and all(is_close(p, t, tol) for p, t in zip(pred, target))
    if isinstance(pred, (int, float)) and isinstance(target, (int, float)):
        if isinstance(pred, float) or isinstance(target, float):
            if not (math.isfinite(pred) and math.isfinite(target)):
                return False
            return abs(pred - target) <= tol * abs(target) and int(pred) == int(target)
        return pred == target
    return pred == target


def matches(value_json: str | None, expected: Any) -> bool:
    if value_json is None:
        return False
    try:
        return json.dumps(expected) == value_json or is_close(json.loads(value_json), expected)
    except ValueError:
        return False


# ---- in-process baseline: worker processes ------------------------------------
def inprocess_worker() -> None:
    """Reads jobs (JSON lines) on stdin, answers on a private dup of stdout."""
    out = os.fdopen(os.dup(1), "w")
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    sys.stdout = sys.stderr = open(os.devnull, "w")

    class CallTimeout(BaseException):
        pass

    def on_alarm(signum: int, frame: Any) -> None:
        raise CallTimeout()

    signal.signal(signal.SIGALRM, on_alarm)
    exec(SOLUTION_PREFIX, {})  # warm the imports, like a fork server would
    def load(code: str) -> tuple[Any, str | None]:
        namespace: dict[str, Any] = {"__name__": "__bench__"}
        try:
            exec(compile(code, "<code>", "exec"), namespace)
            return namespace["main_solution"], None
        except BaseException as exc:  # noqa: BLE001 - benchmark: any failure is an error
            return None, type(exc).__name__

    for line in sys.stdin:
        job = json.loads(line)
        results = []
        fn, load_error = load(job["code"])
        for k, inp in enumerate(job["inputs"]):
            if job.get("per_check") and k:
                fn, load_error = load(job["code"])  # each check on its own, as the reference checker does
            if fn is None:
                results.append([None, 0.0, load_error])
                continue
            random.seed(0)
            t0 = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, CALL_TIMEOUT_S)
            try:
                value = fn(**json.loads(inp))
                dur = time.perf_counter() - t0
                signal.setitimer(signal.ITIMER_REAL, 0)
                results.append([json.dumps(value), dur, None])
            except BaseException as exc:  # noqa: BLE001
                signal.setitimer(signal.ITIMER_REAL, 0)
                results.append([None, time.perf_counter() - t0, type(exc).__name__])
        out.write(json.dumps(results) + "\n")
        out.flush()


class InProcessPool:
    @staticmethod
    def _start() -> subprocess.Popen[str]:
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        return subprocess.Popen([sys.executable, __file__, "--inprocess-worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)

    def __init__(self, per_check: bool = False) -> None:
        self.per_check = per_check
        self.procs = [self._start() for _ in range(WORKERS)]

    def run_one(self, slot: int, code: str, inputs: list[str]) -> list[list[Any]]:
        proc = self.procs[slot]
        proc.stdin.write(json.dumps({"code": code, "inputs": inputs, "per_check": self.per_check}) + "\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], FUNCTION_WATCHDOG_S)
        line = proc.stdout.readline() if ready else ""
        if not line:  # hung (ignored the timer) or died: replace the worker, count errors
            proc.kill()
            proc.wait()
            self.procs[slot] = self._start()
            return [[None, CALL_TIMEOUT_S, "Watchdog"] for _ in inputs]
        return json.loads(line)

    def run_all(self, jobs: list[tuple[str, list[str]]]) -> list[list[list[Any]]]:
        out: list[list[list[Any]] | None] = [None] * len(jobs)
        next_job = iter(range(len(jobs)))
        lock = __import__("threading").Lock()

        def drive(slot: int) -> None:
            while True:
                with lock:
                    idx = next(next_job, None)
                if idx is None:
                    return
                out[idx] = self.run_one(slot, *jobs[idx])

        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(drive, range(WORKERS)))
        return [o or [] for o in out]

    def close(self) -> None:
        for proc in self.procs:
            proc.stdin.close()
            proc.wait(timeout=10)


# ---- spawn baseline -------------------------------------------------------------
def spawn_check(code: str, inp: str) -> str | None:
    script = code + "\n" + SPAWN_DRIVER.format(inp=inp)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    try:
        proc = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True,
                              timeout=CALL_TIMEOUT_S, env=env, cwd="/tmp")
    except subprocess.TimeoutExpired:
        return None
    marker = proc.stdout.rfind("\n__RESULT__")
    return proc.stdout[marker + len("\n__RESULT__"):].strip() if marker >= 0 else None


def engine_runner(executor: Any, limits: Any) -> Any:
    from codeio.execution import RunRequest

    def run(job: tuple[str, list[str]]) -> list[Any]:
        return executor.run(RunRequest(code=job[0], inputs_json=tuple(job[1]), limits=limits, check_size=False,
                                       stop_on_fatal=True))
    return run


def timed_pass(pool: ThreadPoolExecutor, run: Any, jobs: list[tuple[str, list[str]]]) -> tuple[list[Any], float]:
    """Warm both servers up, then run every job once: (results, seconds)."""
    list(pool.map(run, [("pass", ["{}"])] * WORKERS * 2))
    t0 = time.perf_counter()
    results = list(pool.map(run, jobs))
    return results, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawn-sample", type=int, default=1, help="pairs per function for the spawn baseline")
    parser.add_argument("--inprocess-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inprocess_worker:
        inprocess_worker()
        return
    if not DATA.exists():
        sys.exit(f"dataset not found: {DATA}")
    from codeio.execution import Limits
    from codeio.sandbox import SandboxConfig, create_executor

    funcs = load_functions()
    total = sum(len(f["inputs"]) for f in funcs)
    print(f"{len(funcs)} functions, {total} checks, {WORKERS} workers")

    jobs = [(f["code"], f["inputs"]) for f in funcs]
    # In-process, two ways. "per check" (the baseline of the final line): every
    # check execs its program on its own, as the reference checker and the
    # STACK-NOTES measurement do. "per function" (stricter, printed too): exec
    # once, then all calls, exactly the engine's batching without isolation.
    per_check = InProcessPool(per_check=True)
    per_func = InProcessPool(per_check=False)
    for pool_ in (per_check, per_func):
        pool_.run_all([("pass", ["{}"])] * WORKERS * 2)  # warm-up: both workers ready
    t0 = time.perf_counter()
    inproc_results = per_check.run_all(jobs)
    t_inproc = time.perf_counter() - t0
    t0 = time.perf_counter()
    per_func.run_all(jobs)
    t_inproc_func = time.perf_counter() - t0
    inproc_ok = sum(matches(r[0], f["outputs"][i]) for f, rs in zip(funcs, inproc_results) for i, r in enumerate(rs))
    light = [[i for i, r in enumerate(rs) if r[2] is None and r[1] < LIGHT_CALL_S] for rs in inproc_results]
    light_funcs = [(f, idx) for f, idx in zip(funcs, light) if idx]
    n_light = sum(len(idx) for _, idx in light_funcs)
    light_jobs = [(f["code"], [f["inputs"][i] for i in idx]) for f, idx in light_funcs]

    executor = create_executor(SandboxConfig(workers=WORKERS, preload=PRELOAD))
    executor.fingerprint()
    # The same engine without the namespaces and the filesystem view (the pre-isolation engine).
    plain = create_executor(SandboxConfig(workers=WORKERS, preload=PRELOAD, isolate_network=False))
    plain.fingerprint()
    limits = Limits(timeout_s=CALL_TIMEOUT_S)

    engine_run = engine_runner(executor, limits)
    plain_run = engine_runner(plain, limits)
    with ThreadPoolExecutor(WORKERS) as pool:
        # Full passes, isolated and not, interleaved; each rate is the median of its
        # rounds, the ratio the median of the pairs' ratios (one 8-15 s pass on a
        # shared machine swings by +-30%; a pair shares the machine's state).
        full: dict[str, list[float]] = {"engine": [], "plain": []}
        engine_results: list[Any] = []
        for _ in range(FULL_ROUNDS):
            engine_results, seconds = timed_pass(pool, engine_run, jobs)
            full["engine"].append(seconds)
            _, seconds = timed_pass(pool, plain_run, jobs)
            full["plain"].append(seconds)
        t_engine = statistics.median(full["engine"])
        t_plain = statistics.median(full["plain"])
        engine_ok = sum(matches(r.value_json, f["outputs"][i])
                        for f, rs in zip(funcs, engine_results) for i, r in enumerate(rs))
        # Light checks only, all three again: short passes, so the median of
        # interleaved rounds (the machine is shared; one round is noisy).
        rounds: dict[str, list[float]] = {"engine": [], "check": [], "func": []}
        for _ in range(LIGHT_ROUNDS):
            for name, runner in (("engine", lambda: list(pool.map(engine_run, light_jobs))),
                                 ("check", lambda: per_check.run_all(light_jobs)),
                                 ("func", lambda: per_func.run_all(light_jobs))):
                t0 = time.perf_counter()
                runner()
                rounds[name].append(time.perf_counter() - t0)
    per_check.close()
    per_func.close()
    executor.close()
    plain.close()

    # spawn per check, on a sample
    sample = [(f["code"], f["inputs"][i], f["outputs"][i]) for f in funcs for i in range(min(args.spawn_sample, len(f["inputs"])))]
    with ThreadPoolExecutor(WORKERS) as pool:
        t0 = time.perf_counter()
        spawn_out = list(pool.map(lambda s: spawn_check(s[0], s[1]), sample))
        t_spawn = time.perf_counter() - t0
    spawn_ok = sum(matches(v, s[2]) for v, s in zip(spawn_out, sample))

    light_rate = {name: n_light / statistics.median(ts) if n_light else float("nan") for name, ts in rounds.items()}
    rate_engine = total / t_engine
    rate_inproc = total / t_inproc
    rate_inproc_func = total / t_inproc_func
    rate_spawn = len(sample) / t_spawn
    print(f"in-process (per check)    : {rate_inproc:8.1f} checks/s  ({inproc_ok} of {total} match, {t_inproc:.2f} s)")
    print(f"in-process (per function) : {rate_inproc_func:8.1f} checks/s  ({t_inproc_func:.2f} s)")
    print(f"engine                    : {rate_engine:8.1f} checks/s  ({engine_ok} of {total} match, {t_engine:.2f} s)")
    print(f"isolation off             : {total / t_plain:8.1f} checks/s  ({t_plain:.2f} s); "
          f"isolated/unisolated {statistics.median(p / e for e, p in zip(full['engine'], full['plain'])):.2f} "
          f"(median of {FULL_ROUNDS} back-to-back pairs)")
    print(f"spawn per check           : {rate_spawn:8.1f} checks/s  ({spawn_ok} of {len(sample)} sampled checks match, {t_spawn:.2f} s)")
    print(f"light ({n_light} checks under {LIGHT_CALL_S * 1e3:.0f} ms in-process, {len(light_funcs)} functions): "
          f"engine {light_rate['engine']:.0f}/s, in-process per check {light_rate['check']:.0f}/s, "
          f"per function {light_rate['func']:.0f}/s")
    print(f"strict (vs in-process per function): ratio {rate_engine / rate_inproc_func:.2f}, "
          f"light ratio {light_rate['engine'] / light_rate['func']:.2f}")
    print(f"checks_per_s={rate_engine:.1f} ratio_vs_spawn={rate_engine / rate_spawn:.2f} "
          f"ratio_vs_inprocess={rate_engine / rate_inproc:.2f} "
          f"light_ratio_vs_inprocess={light_rate['engine'] / light_rate['check']:.2f}")


if __name__ == "__main__":
    main()
