"""collect_io: run each unified function to collect input/output pairs.

Functions with an input generator are sampled (up to 1000 generator calls, 10
distinct pairs, at least 2 kept). Functions from unified sources bring their
own pairs, which must reproduce here (within the answer tolerance, or as the
same elements listed in another order: LeetCode examples show one order of an
answer "in any order"); a kept pair holds the output the code returned here,
the given one stays as provenance.
When the row also has an input generator, it tops them up to the same 10; when
it has none, inputs drawn after the shapes of the reproduced pairs' values do
(codeio.examples.typegen). Either way the kept inputs are run again in a server
with another hash seed and random seed: a result that differs from the first
execution marks the function nondeterministic. All execution goes through the
sandbox executor.
"""

from __future__ import annotations

import ast
import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

from codeio.answers import canonical_json, values_match
from codeio.examples import typegen
from codeio.execution import ExecStatus, Executor, Limits, RunRequest, SampleRequest
from codeio.sandbox.sizecheck import size_violation
from codeio.records import IO_PAIR, UNIFIED_FUNCTION, dumps, reject, stable_id
from codeio.stages.base import StageOutput

VERSION = "8"  # 2: kept given pairs hold the executed output; the re-check compares two executions
# 3: given pairs topped up from the row's input generator, else from type-driven inputs
# 4: a given output in another list order reproduces; given inputs over the size check vet a generator
# 5: type-driven inputs never shorter than every example
# 6: type-driven inputs keep a binary search tree (level order) when every example is one
# 7: type-driven inputs keep the order every example keeps between two arguments (k <= len(nums))
# 8: ... and distinct values in lists with nulls (level-order trees) when every example has them
READS = UNIFIED_FUNCTION
WRITES = IO_PAIR
MISSING_PACKAGE_ERRORS = ("ModuleNotFoundError", "ImportError")
DROPS_NAMED = 5  # dropped given pairs named in a function's reject detail
DROP_DETAIL_CHARS = 200


@dataclass(frozen=True)
class CollectConfig:
    max_attempts: int = 1000
    max_pairs: int = 10
    min_pairs: int = 2
    sample_timeout_s: float = 60.0  # the whole sampling of one function
    call_timeout_s: float = 5.0  # one main_solution call when re-validating or re-checking
    memory_mb: int = 1024
    seed: int = 0
    recheck_seed: int = 1
    check_determinism: bool = True
    # functions with given pairs but no input generator: inputs drawn from the shapes of
    # the reproduced pairs' values (codeio.examples.typegen), run here like the rest
    type_driven_pairs: bool = True


@dataclass
class _FunctionOutcome:
    pairs: list[dict[str, Any]]
    reject: dict[str, str] | None
    dropped: list[dict[str, str]]


def collect_io_shard(
    functions: Sequence[dict[str, Any]], config: CollectConfig, executor: Executor, parallelism: int = 1
) -> StageOutput:
    READS.check(functions)
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        outcomes = list(pool.map(lambda f: _collect_one(f, config, executor), functions))
    # counted in functions (in = kept + rejected); the pairs written are a counter
    out = StageOutput(stats={"functions_in": len(functions), "functions_kept": 0, "pairs": 0, "pairs_dropped": {}},
                      kept=0)
    for outcome in outcomes:
        if outcome.reject is not None:
            out.rejects.append(outcome.reject)
        else:
            out.stats["functions_kept"] += 1
            out.stats["pairs"] += len(outcome.pairs)
            out.records.extend(outcome.pairs)
        for dropped in outcome.dropped:
            reason = dropped["reason"]
            out.stats["pairs_dropped"][reason] = out.stats["pairs_dropped"].get(reason, 0) + 1
    out.kept = out.stats["functions_kept"]
    return out


def _limits(config: CollectConfig, timeout: float) -> Limits:
    return Limits(timeout_s=timeout, memory_mb=config.memory_mb)


def _collect_one(function: dict[str, Any], config: CollectConfig, executor: Executor) -> _FunctionOutcome:
    function_id = function["function_id"]
    if function.get("given_pairs") is not None:
        candidates, failure, dropped, vetted = _revalidate(function, config, executor)
        if _wants_more(function, candidates, failure, config, vetted):
            candidates, failure, dropped = _more_pairs(function, candidates, dropped, config, executor)
        elif failure is None and candidates and len(candidates) < config.max_pairs and config.type_driven_pairs \
                and not function.get("generator_code"):
            candidates, dropped = _typed_pairs(function, candidates, dropped, config, executor)
    else:
        candidates, failure, dropped = _sample(function, config, executor)
    if failure is not None:
        return _FunctionOutcome([], failure, dropped)
    if len(candidates) < config.min_pairs:
        detail = f"{len(candidates)} pair(s) kept, {config.min_pairs} needed; {_dropped_detail(dropped)}"
        return _FunctionOutcome([], reject(function_id, _too_few_reason(candidates, dropped), detail), dropped)
    candidates = candidates[: config.max_pairs]
    if config.check_determinism:
        failure = _recheck(function, candidates, config, executor)
        if failure is not None:
            return _FunctionOutcome([], failure, dropped)
    pairs = [
        {
            "pair_id": stable_id("pair", function_id, index, input_json, output_json),
            "function_id": function_id,
            "source_id": function["source_id"],
            "pair_index": index,
            "input": input_json,
            "output": output_json,
            "given_output": given_json,
            "determinism_checked": config.check_determinism,
        }
        for index, (input_json, output_json, given_json) in enumerate(candidates)
    ]
    return _FunctionOutcome(pairs, None, dropped)


def _too_few_reason(candidates: list, dropped: list[dict[str, str]]) -> str:
    """When no pair survived, the function is rejected for what killed its pairs
    (timeout, memory, killed, exception:TypeError, not_reproduced ...), so the
    summary shows rejects by execution status; else for having too few."""
    if candidates or not dropped:
        return "too_few_pairs"
    reason, _ = max(_count(dropped).items(), key=lambda kv: (kv[1], kv[0]))
    return reason.removeprefix("pair_")


def _dropped_detail(dropped: list[dict[str, str]]) -> str:
    """Counts by reason, then the first given pairs dropped, each by its index among
    the given pairs (``fid#pair3``), so the reject says which pair to look at."""
    named = [f"{item['record_id']} {item['reason']}: {item['detail'][:DROP_DETAIL_CHARS]}"
             for item in dropped if item.get("record_id")][:DROPS_NAMED]
    return f"dropped: {_count(dropped)}" + "".join(f"; {line}" for line in named)


def _count(dropped: list[dict[str, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in dropped:
        counts[item["reason"]] = counts.get(item["reason"], 0) + 1
    return counts


def _failure_reason(result_type: str | None, message: str | None, status: ExecStatus) -> str:
    if status is ExecStatus.EXCEPTION and result_type in MISSING_PACKAGE_ERRORS:
        return f"missing_package:{_module_name(message)}"
    if status is ExecStatus.EXCEPTION:
        return f"exception:{result_type}"
    return status.value


def _module_name(message: str | None) -> str:
    """'No module named 'sympy.core'' -> 'sympy'."""
    text = message or ""
    if "'" in text:
        return text.split("'")[1].split(".")[0] or "unknown"
    return "unknown"


def _sample(function: dict[str, Any], config: CollectConfig, executor: Executor):
    function_id = function["function_id"]
    if not function.get("generator_code"):
        return [], reject(function_id, "no_input_generator", "the function has neither pairs nor an input generator"), []
    code = f"{function['main_code']}\n\n{function['generator_code']}\n"
    result = executor.sample(
        SampleRequest(
            code=code,
            max_attempts=config.max_attempts,
            max_pairs=config.max_pairs,
            limits=_limits(config, config.sample_timeout_s),
            per_call_timeout_s=config.call_timeout_s,
            seed=config.seed,
        )
    )
    dropped = [{"reason": f"pair_{reason}"} for reason, n in result.rejected.items() for _ in range(n)]
    if result.status is not ExecStatus.OK and not result.pairs:
        reason = _failure_reason(result.error_type, result.error_message, result.status)
        return [], reject(function_id, f"sampling_failed:{reason}", f"{result.error_type}: {result.error_message}"), dropped
    return [(p.input_json, p.output_json, None) for p in result.pairs], None, dropped


def _wants_more(function: dict[str, Any], kept: list, failure: dict[str, str] | None, config: CollectConfig,
                vetted: int = 0) -> bool:
    """Given pairs are topped up to ``max_pairs`` from the row's input generator
    when at least one of them reproduced (or none were given; or only examples over
    the size check did, ``vetted``): a function whose own examples all fail is not
    trusted with new inputs."""
    if len(kept) >= config.max_pairs or not function.get("generator_code"):
        return False
    if failure is None:
        return bool(kept) or vetted > 0 or not json.loads(function["given_pairs"])
    return failure["reason"] == "no_valid_pairs" and not json.loads(function["given_pairs"])


def _more_pairs(function: dict[str, Any], kept: list[tuple[str, str, str | None]], dropped: list[dict[str, str]],
                config: CollectConfig, executor: Executor):
    """The kept given pairs, then new pairs from the input generator (new inputs only)."""
    sampled, failure, sample_dropped = _sample(function, config, executor)
    dropped = dropped + sample_dropped
    if failure is not None and not kept:
        return [], failure, dropped
    seen = {canonical_json(json.loads(pair[0])) for pair in kept}
    merged = list(kept)
    for pair in sampled:
        if len(merged) >= config.max_pairs:
            break
        key = canonical_json(json.loads(pair[0]))
        if key in seen:
            dropped.append({"reason": "pair_duplicate"})
            continue
        seen.add(key)
        merged.append(pair)
    return merged, None, dropped


def _typed_pairs(function: dict[str, Any], kept: list[tuple[str, str, str | None]], dropped: list[dict[str, str]],
                 config: CollectConfig, executor: Executor):
    """The kept given pairs, then pairs from inputs drawn after their shapes
    (smallest first; a fatal outcome ends the batch). Outputs that fail, are None,
    not finite or over the size limits are dropped as ``generated_<reason>``."""
    examples = [json.loads(pair[0]) for pair in kept]
    wanted = config.max_pairs - len(kept)
    inputs = typegen.candidate_inputs(_entry_parameters(function["main_code"]) or list(examples[0]), examples,
                                      count=wanted * 3, seed=int(stable_id(function["function_id"], config.seed), 16))
    if not inputs:
        return kept, dropped
    results = executor.run(
        RunRequest(code=function["main_code"], inputs_json=tuple(dumps(i) for i in inputs),
                   limits=_limits(config, config.call_timeout_s), stop_on_fatal=True, seed=config.seed)
    )
    merged, dropped = list(kept), list(dropped)
    for value, result in zip(inputs, results):
        if len(merged) >= config.max_pairs:
            break
        if not result.ok:
            dropped.append({"reason": f"generated_{_failure_reason(result.error_type, result.error_message, result.status)}"})
            continue
        output = json.loads(result.value_json)
        if output is None or not is_finite_value(output):
            dropped.append({"reason": "generated_output_none" if output is None else "generated_non_finite_output"})
            continue
        merged.append((dumps(value), result.value_json, None))
    return merged, dropped


def _entry_parameters(code: str, entry: str = "main_solution") -> list[str]:
    """The parameter names of the entry point, read from the syntax tree."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == entry:
            args = node.args
            return [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    return []


def _revalidate(function: dict[str, Any], config: CollectConfig, executor: Executor):
    """Pairs given by a unified source count only if running the code reproduces them.
    A given pair over the size check is never kept, but when the function has an input
    generator it still runs: one that reproduces vouches for the wrapping (``vetted``),
    so the generator may draw small inputs (a design problem's examples are often
    longer than 1 KiB even cut to the constructor and one call)."""
    function_id = function["function_id"]
    given = json.loads(function["given_pairs"])
    dropped: list[dict[str, str]] = []
    indices: list[int] = []  # each input's position among the given pairs: rejects name that one
    inputs: list[str] = []
    expected: list[Any] = []
    vet_only: set[int] = set()  # positions in inputs that are run to vet the function, never kept
    for index, pair in enumerate(given):
        pair_ref = f"{function_id}#pair{index}"
        problem = _given_pair_problem(pair, inputs)
        if problem is not None:
            dropped.append(reject(pair_ref, problem, dumps(pair.get("input"))[:500]))
            if problem != "pair_input_too_large" or not function.get("generator_code") \
                    or not isinstance(pair.get("input"), dict) or not is_finite_value(pair.get("output")):
                continue
            vet_only.add(len(inputs))
        indices.append(index)
        inputs.append(dumps(pair["input"]))
        expected.append(pair["output"])
    if not inputs:
        return [], reject(function_id, "no_valid_pairs", _dropped_detail(dropped)), dropped, 0
    results = executor.run(
        # every given pair gets its own chance: a slow pair must not drop the ones after it
        RunRequest(code=function["main_code"], inputs_json=tuple(inputs), limits=_limits(config, config.call_timeout_s),
                   stop_on_fatal=False, seed=config.seed)
    )
    kept: list[tuple[str, str, str | None]] = []  # (input, output as executed here, output given)
    vetted = 0
    for position, (index, input_json, want, result) in enumerate(zip(indices, inputs, expected, results)):
        pair_ref = f"{function_id}#pair{index}"
        if position in vet_only:
            vetted += _reproduces(result, want)
            continue
        if result.status is ExecStatus.EXCEPTION and result.error_type in MISSING_PACKAGE_ERRORS:
            reason = _failure_reason(result.error_type, result.error_message, result.status)
            return [], reject(function_id, reason, result.describe()), dropped, 0
        if not result.ok:
            dropped.append(reject(pair_ref, f"pair_{_failure_reason(result.error_type, result.error_message, result.status)}",
                                  result.describe()))
            continue
        actual = json.loads(result.value_json)
        if not is_finite_value(actual):
            dropped.append(reject(pair_ref, "pair_non_finite_output", result.value_json))
        elif not values_match(actual, want) and not same_elements(actual, want):
            dropped.append(reject(pair_ref, "pair_not_reproduced", f"given {dumps(want)}, got {result.value_json}"))
        else:
            kept.append((input_json, result.value_json, dumps(want)))
    if len(vet_only) == len(inputs) and not vetted:
        return [], reject(function_id, "no_valid_pairs", _dropped_detail(dropped)), dropped, 0
    return kept, None, dropped, vetted


def _reproduces(result: Any, want: Any) -> bool:
    """Whether an execution result reproduces a given output."""
    if not result.ok:
        return False
    actual = json.loads(result.value_json)
    return is_finite_value(actual) and (values_match(actual, want) or same_elements(actual, want))


def same_elements(actual: Any, given: Any) -> bool:
    """Whether two outputs hold the same elements, each list's items in any order
    (nested lists too). It only vets a given pair: the pair kept holds what the code
    returned, so a looser vetting never puts a wrong output in a pair."""
    if not isinstance(actual, list) or not isinstance(given, list) or len(actual) != len(given):
        return False
    try:
        return canonical_json(_unordered(actual)) == canonical_json(_unordered(given))
    except RecursionError:
        return False


def _unordered(value: Any) -> Any:
    """The value with every list's items sorted by their canonical JSON, recursively."""
    if isinstance(value, list):
        return sorted((_unordered(item) for item in value), key=lambda item: canonical_json(item) or "")
    if isinstance(value, dict):
        return {key: _unordered(item) for key, item in value.items()}
    return value


def _given_pair_problem(pair: dict[str, Any], seen_inputs: list[str]) -> str | None:
    """The checks sampled pairs get inside the sandbox, applied to given pairs:
    a dict input, new, finite, within the size limits; a finite output."""
    value = pair.get("input")
    if not isinstance(value, dict):
        return "pair_input_not_a_dict"
    if dumps(value) in seen_inputs:
        return "pair_duplicate_input"
    if not is_finite_value(value):
        return "pair_non_finite_input"
    if size_violation(value) is not None:
        return "pair_input_too_large"
    if not is_finite_value(pair.get("output")):
        return "pair_non_finite_output"
    return None


def _recheck(function: dict[str, Any], pairs: list[tuple[str, str, str | None]], config: CollectConfig,
             executor: Executor):
    """Run every kept input again with other seeds, last first; a result different from
    the first execution (not from a given output, which only had to match within
    tolerance) rejects the function."""
    pairs = pairs[::-1]  # in another order: a result that depends on the calls before it shows up
    results = executor.run(
        RunRequest(code=function["main_code"], inputs_json=tuple(pair[0] for pair in pairs),
                   limits=_limits(config, config.call_timeout_s), stop_on_fatal=True, seed=config.recheck_seed,
                   recheck=True)
    )
    for (input_json, output_json, _), result in zip(pairs, results):
        if not result.ok:
            return reject(function["function_id"], f"recheck_failed:{_failure_reason(result.error_type, result.error_message, result.status)}",
                          f"input {input_json}: {result.describe()}")
        again = canonical_json(json.loads(result.value_json))
        if again is None or again != canonical_json(json.loads(output_json)):
            # exact: the paper keeps only functions whose re-run gives the same output
            return reject(function["function_id"], "nondeterministic",
                          f"input {input_json}: first {output_json}, re-run {result.value_json}")
    return None


def is_finite_value(value: Any) -> bool:
    """False when a NaN or infinity hides anywhere in the value."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(is_finite_value(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(is_finite_value(v) for v in value)
    return True
