"""synthesize / revise: the teacher writes a chain-of-thought answer per instance.

Round 1 answers every instance. Round r > 1 (CodeI/O++ revision) answers only
the instances whose round r-1 answer was verified wrong, as a multi-turn
conversation: the earlier answer as an assistant message, the execution
feedback as a user message. Failed calls are kept as rows with ``ok = False``
and their reason, never dropped.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

from codeio import prompting
from codeio.llm.base import ChatLLM, ChatRequest, UsageTotals, is_transient_failure
from codeio.records import INSTANCE, RESPONSE, VERDICT, dumps, stable_id
from codeio.stages.base import StageOutput
from codeio.teachers.offline import OfflineQuestion

VERSION = "1"
READS = (INSTANCE, RESPONSE, VERDICT)
WRITES = RESPONSE
REVISABLE = frozenset({"mismatch", "no_answer", "exception", "timeout"})
OFFLINE = "offline"


@dataclass(frozen=True)
class TeacherConfig:
    teacher: str  # "offline" or "openai"
    model: str
    temperature: float = 0.7
    max_tokens: int = 4096
    sample_index: int = 0


class OfflineAnswerer:
    """What the stage needs from the offline teacher (codeio.teachers.offline):
    the answers to many questions about one function, in order, from one sandbox
    batch (one fork per function, not per instance)."""

    def answer_batch(self, main_code: str, questions: Sequence[Any]) -> list[Any]: ...


def round_messages(
    instance: dict[str, Any], round_number: int, previous: dict[int, tuple[dict[str, Any], dict[str, Any]]]
) -> list[dict[str, str]]:
    """Messages of a round: round 1 is the instance's prompt; each revision appends
    the last answer and its feedback to the previous round's messages."""
    if round_number == 1:
        return json.loads(instance["messages"])
    last_response, last_verdict = previous[round_number - 1]
    return prompting.revision_messages(json.loads(last_response["messages"]), last_response["text"], last_verdict["feedback"])


def synthesize_shard(
    instances: Sequence[dict[str, Any]],
    config: TeacherConfig,
    round_number: int,
    history: dict[int, tuple[Sequence[dict[str, Any]], Sequence[dict[str, Any]]]],
    llm: ChatLLM | None = None,
    offline: OfflineAnswerer | None = None,
    parallelism: int = 1,
) -> StageOutput:
    """``history`` maps each earlier round to its (responses, verdicts) of this shard."""
    INSTANCE.check(instances)
    per_instance: dict[str, dict[int, tuple[dict[str, Any], dict[str, Any]]]] = {}
    for past_round, (responses, verdicts) in history.items():
        verdict_by_id = {v["instance_id"]: v for v in verdicts}
        for response in responses:
            verdict = verdict_by_id.get(response["instance_id"])
            if verdict is not None:
                per_instance.setdefault(response["instance_id"], {})[past_round] = (response, verdict)
    todo: list[tuple[dict[str, Any], list[dict[str, str]], str | None]] = []
    for instance in instances:
        previous = per_instance.get(instance["instance_id"], {})
        if round_number > 1:
            last = previous.get(round_number - 1)
            if last is None or last[1]["status"] not in REVISABLE:
                continue
            feedback = last[1]["feedback"]
        else:
            feedback = None
        todo.append((instance, round_messages(instance, round_number, previous), feedback))
    out = StageOutput(stats={"eligible": len(todo), "answered": 0, "failed": 0})
    if config.teacher == OFFLINE:
        if offline is None:
            raise ValueError("the offline teacher needs an OfflineAnswerer")
        rows = _offline_rows(todo, config, round_number, offline, parallelism)
        out.stats["llm"] = UsageTotals().as_dict()
    else:
        if llm is None:
            raise ValueError("the openai teacher needs an LLM client")
        rows, usage = _llm_rows(todo, config, round_number, llm)
        out.stats["llm"] = usage.as_dict()
    for row in rows:
        out.stats["answered" if row["ok"] else "failed"] += 1
    retryable = sum(1 for row in rows if not row["ok"] and row["teacher"] != OFFLINE and is_transient_failure(row["error"]))
    if retryable:
        out.stats["retryable"] = retryable
    out.records = rows
    return out


def _row(instance: dict[str, Any], round_number: int, messages: list[dict[str, str]], text: str, ok: bool,
         error: str | None, teacher: str, model: str, finish_reason: str | None, prompt_tokens: int,
         completion_tokens: int, call_id: str | None) -> dict[str, Any]:
    return {
        "response_id": stable_id("response", instance["instance_id"], round_number, teacher, model, text, ok),
        "instance_id": instance["instance_id"],
        "round": round_number,
        "messages": dumps(messages),
        "text": text,
        "ok": ok,
        "error": error,
        "teacher": teacher,
        "model": model,
        "finish_reason": finish_reason,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "llm_call_id": call_id,
    }


def _offline_rows(todo, config: TeacherConfig, round_number: int, offline: OfflineAnswerer, parallelism: int):
    by_code: dict[str, list[int]] = {}  # main_code -> positions in todo, in order
    for position, (instance, _, _) in enumerate(todo):
        by_code.setdefault(instance["main_code"], []).append(position)

    def answer(item: tuple[str, list[int]]):
        code, positions = item
        questions = [OfflineQuestion(todo[p][0]["task"], todo[p][0]["input"], todo[p][0]["output"], todo[p][2])
                     for p in positions]
        return positions, offline.answer_batch(code, questions)

    rows: list[dict[str, Any] | None] = [None] * len(todo)
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        for positions, results in pool.map(answer, list(by_code.items())):
            for position, result in zip(positions, results):
                instance, messages, _ = todo[position]
                rows[position] = _row(instance, round_number, messages, result.text, result.ok, result.error, OFFLINE,
                                      OFFLINE, "stop" if result.ok else "error", 0, 0, None)
    return rows


def _llm_rows(todo, config: TeacherConfig, round_number: int, llm: ChatLLM):
    requests = [
        ChatRequest(messages=tuple(messages), model=config.model, temperature=config.temperature,
                    max_tokens=config.max_tokens, sample_index=config.sample_index)
        for _, messages, _ in todo
    ]
    results, usage = llm.complete(requests) if requests else ([], UsageTotals())
    rows = [
        _row(instance, round_number, messages, result.text, result.ok, result.error, "openai",
             result.model or config.model, result.finish_reason, result.prompt_tokens, result.completion_tokens,
             result.call_id)
        for (instance, messages, _), result in zip(todo, results)
    ]
    return rows, usage
