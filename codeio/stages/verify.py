"""verify: check each answer by execution.

Output prediction: the extracted value must match the true output (JSON-equal,
or close by the float rule of codeio.answers). Input prediction: the predicted
input is run through ``main_solution`` in the sandbox and its result must match
the given output. Every answer gets a verdict and the feedback text used by the
next revision round.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

from codeio import prompting
from codeio.answers import extract_answer, values_match
from codeio.execution import CallResult, ExecStatus, Executor, Limits, RunRequest
from codeio.records import INSTANCE, RESPONSE, VERDICT, dumps
from codeio.stages.base import StageOutput

VERSION = "1"
READS = (INSTANCE, RESPONSE)
WRITES = VERDICT
STATUSES = ("success", "mismatch", "no_answer", "exception", "timeout", "llm_failed", "sandbox_error")


@dataclass(frozen=True)
class VerifyConfig:
    timeout_s: float = 5.0
    memory_mb: int = 1024
    seed: int = 0
    template_hash: str = ""  # the feedback templates' texts: rewording them re-verifies


def verify_shard(
    instances: Sequence[dict[str, Any]],
    responses: Sequence[dict[str, Any]],
    config: VerifyConfig,
    executor: Executor,
    templates: prompting.PromptTemplates,
    parallelism: int = 1,
) -> StageOutput:
    INSTANCE.check(instances)
    RESPONSE.check(responses)
    by_id = {i["instance_id"]: i for i in instances}
    verdicts: dict[str, dict[str, Any]] = {}
    to_run: dict[str, list[tuple[dict[str, Any], dict[str, Any], Any]]] = {}  # main_code -> pending input checks
    for response in responses:
        instance = by_id[response["instance_id"]]
        if not response["ok"]:
            verdicts[response["response_id"]] = _verdict(response, "llm_failed", f"the teacher call failed: {response['error']}")
            continue
        extracted = extract_answer(response["text"], instance["task"])
        if not extracted.ok:
            feedback = prompting.build_feedback("no_answer", templates=templates, task=instance["task"],
                                                reason=extracted.reason)
            verdicts[response["response_id"]] = _verdict(response, "no_answer", feedback)
            continue
        if instance["task"] == "output":
            expected = json.loads(instance["output"])
            if values_match(extracted.value, expected):
                verdicts[response["response_id"]] = _verdict(
                    response, "success", prompting.build_feedback("success", templates=templates, task="output"),
                    extracted.value)
            else:
                feedback = prompting.build_feedback("mismatch", templates=templates, task="output",
                                                    given_json=instance["input"], predicted_json=dumps(extracted.value))
                verdicts[response["response_id"]] = _verdict(response, "mismatch", feedback, extracted.value)
        else:
            to_run.setdefault(instance["main_code"], []).append((response, instance, extracted.value))

    def check(item: tuple[str, list[tuple[dict[str, Any], dict[str, Any], Any]]]):
        code, pending = item
        inputs = tuple(dumps(value) for _, _, value in pending)
        results = executor.run(RunRequest(code=code, inputs_json=inputs, limits=Limits(timeout_s=config.timeout_s,
                               memory_mb=config.memory_mb), stop_on_fatal=False, seed=config.seed))
        return [_input_verdict(response, instance, value, result, templates, config.timeout_s)
                for (response, instance, value), result in zip(pending, results)]

    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        for batch in pool.map(check, list(to_run.items())):
            for verdict in batch:
                verdicts[verdict.pop("_response_id")] = verdict
    out = StageOutput(records=[verdicts[r["response_id"]] for r in responses])
    counts = {status: 0 for status in STATUSES}
    for verdict in out.records:
        counts[verdict["status"]] += 1
    out.stats = {"verdicts": counts}
    return out


def _verdict(response: dict[str, Any], status: str, feedback: str, extracted: Any = None, actual: Any = None,
             has_extracted: bool | None = None) -> dict[str, Any]:
    keep = has_extracted if has_extracted is not None else status in ("success", "mismatch")
    return {
        "instance_id": response["instance_id"],
        "round": response["round"],
        "status": status,
        "feedback": feedback,
        "extracted": dumps(extracted) if keep else None,
        "actual": dumps(actual) if actual is not None else None,
    }


def _input_verdict(response: dict[str, Any], instance: dict[str, Any], predicted: Any, result: CallResult,
                   templates: prompting.PromptTemplates, timeout_s: float) -> dict[str, Any]:
    expected = json.loads(instance["output"])
    if result.status is ExecStatus.OK:
        actual = json.loads(result.value_json)
        if values_match(actual, expected):
            verdict = _verdict(response, "success", prompting.build_feedback("success", templates=templates, task="input"),
                               predicted, actual, True)
        else:
            feedback = prompting.build_feedback("mismatch", templates=templates, task="input",
                                                given_json=instance["output"], predicted_json=dumps(predicted),
                                                actual_json=result.value_json)
            verdict = _verdict(response, "mismatch", feedback, predicted, actual, True)
    elif result.status is ExecStatus.TIMEOUT:
        feedback = prompting.build_feedback("timeout", templates=templates, task="input",
                                            given_json=instance["output"], predicted_json=dumps(predicted),
                                            timeout_s=timeout_s)
        verdict = _verdict(response, "timeout", feedback, predicted, None, True)
    elif result.status is ExecStatus.SANDBOX_ERROR:
        verdict = _verdict(response, "sandbox_error", f"verification could not run: {result.describe()}", predicted,
                           None, True)
    else:
        feedback = prompting.build_feedback(
            "exception", templates=templates, task="input", given_json=instance["output"],
            predicted_json=dumps(predicted), error_type=result.error_type or result.status.value,
            error_message=result.error_message or result.describe())
        verdict = _verdict(response, "exception", feedback, predicted, None, True)
    verdict["_response_id"] = response["response_id"]
    return verdict
