"""eval_judge: a verdict per (question, sample), with the pipeline's verification.

JSON questions (LeetCode-O, unified) go through ``codeio.stages.verify`` as they
are: extraction, the JSON/float comparison rule, input prediction run through
``main_solution`` in the sandbox. Python-literal questions (CRUXEval) are judged
by Python value, since their values may be tuples or sets: the answer is read
from the same ``{"output": ...}`` / ``{"input": {...}}`` objects, keeping Python
literals as such; a predicted input runs ``f(**arguments)`` in the sandbox, which
hands back the ``repr`` of the result, read here with ``ast.literal_eval`` only.
"""

from __future__ import annotations

import ast
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

from codeio import prompting
from codeio.answers import REASON_MISSING_KEY, REASON_NO_JSON, REASON_NOT_A_DICT, extract_answer, find_json_objects
from codeio.evaluation.benchmarks import PYTHON, question_origin, read_value
from codeio.execution import CallResult, ExecStatus, Executor, Limits, RunRequest
from codeio.records import BOOL, INSTANCE, INT, RESPONSE, STR, Schema
from codeio.stages import verify
from codeio.stages.base import StageOutput

VERSION = "1"
READS = (INSTANCE, RESPONSE)
JUDGEMENT = Schema("eval_judgement", (
    ("question_id", STR),
    ("item_id", STR),  # the problem (LeetCode-O) or row id
    ("task", STR),
    ("sample", INT),  # 0 .. n-1
    ("status", STR),  # verify.STATUSES
    ("correct", BOOL),
    ("reason", STR),  # why not: extraction reason, mismatch detail, error
    ("extracted", STR),  # the answer as read (JSON, or a Python literal for CRUXEval), or null
    ("category", STR),
    ("difficulty", STR),
))
WRITES = JUDGEMENT
UNPARSEABLE = "no_answer"
PYTHON_ENTRY = "_codeio_eval_call"
MAX_REPR_CHARS = 100_000
# Appended to the benchmark's code for input prediction: literal arguments in, repr out.
PYTHON_HARNESS = f'''


def {PYTHON_ENTRY}(arguments):
    import ast as _ast
    _result = repr(f(**_ast.literal_eval(arguments)))
    return _result if len(_result) <= {MAX_REPR_CHARS} else None
'''
_LITERAL_ERRORS = (ValueError, SyntaxError, TypeError, MemoryError, RecursionError)


@dataclass(frozen=True)
class JudgeConfig:
    timeout_s: float = 5.0
    memory_mb: int = 1024
    seed: int = 0
    template_hash: str = ""  # verify's feedback templates (verdicts carry feedback text)


def judge_shard(questions: Sequence[dict[str, Any]], samples: Sequence[Sequence[dict[str, Any]]],
                config: JudgeConfig, executor: Executor, templates: prompting.PromptTemplates,
                parallelism: int = 1) -> StageOutput:
    """``samples[s]`` holds sample s's responses to these questions."""
    INSTANCE.check(questions)
    by_id = {q["instance_id"]: q for q in questions}
    out = StageOutput(stats={"judged": {status: 0 for status in verify.STATUSES}})
    for sample, responses in enumerate(samples):
        RESPONSE.check(responses)
        python = [r for r in responses if question_origin(by_id[r["instance_id"]])["format"] == PYTHON]
        others = [r for r in responses if question_origin(by_id[r["instance_id"]])["format"] != PYTHON]
        verdicts: dict[str, dict[str, Any]] = {}
        if others:
            checked = verify.verify_shard([by_id[r["instance_id"]] for r in others], others,
                                          verify.VerifyConfig(config.timeout_s, config.memory_mb, config.seed,
                                                              config.template_hash),
                                          executor, templates, parallelism)
            for response, verdict in zip(others, checked.records):
                verdicts[response["response_id"]] = {"status": verdict["status"], "extracted": verdict["extracted"],
                                                      "reason": _json_reason(response, verdict, by_id)}
        verdicts.update(_judge_python(python, by_id, config, executor, parallelism))
        for response in responses:
            question, verdict = by_id[response["instance_id"]], verdicts[response["response_id"]]
            origin = question_origin(question)
            out.records.append({
                "question_id": question["instance_id"], "item_id": origin["item_id"], "task": question["task"],
                "sample": sample, "status": verdict["status"], "correct": verdict["status"] == "success",
                "reason": verdict["reason"], "extracted": verdict["extracted"], "category": origin["category"],
                "difficulty": origin["difficulty"],
            })
            out.stats["judged"][verdict["status"]] += 1
    return out


def _json_reason(response: dict[str, Any], verdict: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> str | None:
    if verdict["status"] == "success":
        return None
    if verdict["status"] == UNPARSEABLE:
        return extract_answer(response["text"], by_id[response["instance_id"]]["task"]).reason
    if verdict["status"] == "llm_failed":
        return response["error"]
    return verdict["status"]


# -- Python values (CRUXEval) ------------------------------------------------------------


def extract_python_answer(text: str, task: str) -> tuple[bool, Any, str | None]:
    """(found, value, reason): the last ``{"<task>": ...}`` object, Python
    literals kept (tuples, sets); else the pipeline's extraction (boxed answers,
    JSON fences), whose values are JSON."""
    for obj in reversed(find_json_objects(text or "")):
        if task in obj:
            value = obj[task]
            if task == "input" and not isinstance(value, dict):
                return False, None, REASON_NOT_A_DICT
            return True, value, None
    extracted = extract_answer(text or "", task)
    if extracted.ok:
        return True, extracted.value, None
    return False, None, extracted.reason or REASON_NO_JSON


def python_equal(predicted: Any, expected: Any) -> bool:
    """Python ``==`` (the benchmark's own rule): a list is not a tuple, a set has no order."""
    try:
        return bool(predicted == expected)
    except (TypeError, ValueError, RecursionError):
        return False


def _judge_python(responses: list[dict[str, Any]], by_id: dict[str, dict[str, Any]], config: JudgeConfig,
                  executor: Executor, parallelism: int) -> dict[str, dict[str, Any]]:
    verdicts: dict[str, dict[str, Any]] = {}
    to_run: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    for response in responses:
        question = by_id[response["instance_id"]]
        if not response["ok"]:
            verdicts[response["response_id"]] = _verdict("llm_failed", None, response["error"])
            continue
        found, value, reason = extract_python_answer(response["text"], question["task"])
        if not found:
            verdicts[response["response_id"]] = _verdict(UNPARSEABLE, None, reason or REASON_MISSING_KEY)
            continue
        if question["task"] == "output":
            right = python_equal(value, read_value(question["output"]))
            verdicts[response["response_id"]] = _verdict("success" if right else "mismatch", value,
                                                          None if right else "value differs")
        else:
            to_run.setdefault(question["main_code"], []).append((response, value))

    def check(item: tuple[str, list[tuple[dict[str, Any], Any]]]) -> list[tuple[str, dict[str, Any]]]:
        code, pending = item
        inputs = tuple(json.dumps({"arguments": repr(value)}) for _, value in pending)
        results = executor.run(RunRequest(code=code + PYTHON_HARNESS, inputs_json=inputs, entry=PYTHON_ENTRY,
                                          limits=Limits(timeout_s=config.timeout_s, memory_mb=config.memory_mb),
                                          stop_on_fatal=False, check_size=False, seed=config.seed))
        return [(response["response_id"], _input_verdict(by_id[response["instance_id"]], value, result))
                for (response, value), result in zip(pending, results)]

    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        for batch in pool.map(check, list(to_run.items())):
            verdicts.update(batch)
    return verdicts


def _input_verdict(question: dict[str, Any], predicted: Any, result: CallResult) -> dict[str, Any]:
    if result.status is ExecStatus.OK:
        try:
            actual = ast.literal_eval(json.loads(result.value_json or "null") or "")
        except _LITERAL_ERRORS:
            return _verdict("mismatch", predicted, "the result is not a Python literal")
        if python_equal(actual, read_value(question["output"])):
            return _verdict("success", predicted, None)
        return _verdict("mismatch", predicted, f"f returned {_cut(repr(actual))}")
    if result.status is ExecStatus.TIMEOUT:
        return _verdict("timeout", predicted, result.describe())
    if result.status is ExecStatus.SANDBOX_ERROR:
        return _verdict("sandbox_error", predicted, result.describe())
    return _verdict("exception", predicted, _cut(result.describe()))


def _verdict(status: str, extracted: Any, reason: str | None) -> dict[str, Any]:
    return {"status": status, "extracted": None if extracted is None else _cut(repr(extracted), 2000),
            "reason": reason}


def _cut(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
