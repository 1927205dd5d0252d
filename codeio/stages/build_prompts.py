"""build_prompts: the first K pairs of each function give one output-prediction
and one input-prediction instance each (50/50 by construction).

Its books are kept in pairs, the unit it reads: in = the pairs, out = the pairs
used, and the pairs beyond K are counted ``not_sampled`` (no reject record: they
are the input pairs, unchanged). It writes ``len(tasks)`` instances per pair
used (the summary's ``written``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from codeio import prompting
from codeio.records import INSTANCE, IO_PAIR, UNIFIED_FUNCTION, dumps, stable_id
from codeio.stages.base import StageOutput

VERSION = "1"
NOT_SAMPLED = "not_sampled"  # a pair beyond the first K of its function
NO_FUNCTION = "function_missing"  # a pair whose function is not in the shard (never, from collect_io)
READS = (UNIFIED_FUNCTION, IO_PAIR)
WRITES = INSTANCE
TASKS = ("output", "input")
PLACEMENTS = ("prompt", "response", "none")


@dataclass(frozen=True)
class PromptConfig:
    pairs_per_function: int = 3  # K
    tasks: tuple[str, ...] = TASKS  # task mix: both, ("input",) or ("output",)
    placement: str = "prompt"  # where the reference code goes: prompt, response, none
    template_version: str = prompting.TEMPLATE_VERSION
    template_hash: str = ""  # hash of the template texts in use (user overrides change it)

    def __post_init__(self) -> None:
        if self.pairs_per_function < 1:
            raise ValueError("pairs_per_function must be >= 1")
        unknown = set(self.tasks) - set(TASKS)
        if unknown or not self.tasks:
            raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {self.tasks}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {self.placement!r}")


def build_prompts_shard(
    functions: Sequence[dict[str, Any]],
    pairs: Sequence[dict[str, Any]],
    config: PromptConfig,
    templates: prompting.PromptTemplates,
) -> StageOutput:
    UNIFIED_FUNCTION.check(functions)
    IO_PAIR.check(pairs)
    by_function: dict[str, list[dict[str, Any]]] = {}
    for pair in pairs:
        by_function.setdefault(pair["function_id"], []).append(pair)
    out = StageOutput(stats={"functions": 0, "pairs_used": 0, "pairs_unused": 0})
    for function in functions:
        own = sorted(by_function.get(function["function_id"], []), key=lambda p: p["pair_index"])
        if not own:
            continue  # rejected upstream by collect_io
        out.stats["functions"] += 1
        chosen = own[: config.pairs_per_function]
        out.stats["pairs_used"] += len(chosen)
        out.stats["pairs_unused"] += len(own) - len(chosen)
        for pair in chosen:
            for task in config.tasks:
                out.records.append(_instance(function, pair, task, config, templates))
    out.kept = out.stats["pairs_used"]
    out.not_selected = {NOT_SAMPLED: out.stats["pairs_unused"],
                        NO_FUNCTION: len(pairs) - out.stats["pairs_used"] - out.stats["pairs_unused"]}
    return out


def _instance(function: dict[str, Any], pair: dict[str, Any], task: str, config: PromptConfig,
              templates: prompting.PromptTemplates) -> dict[str, Any]:
    given = pair["input"] if task == "output" else pair["output"]
    messages = prompting.build_prediction_messages(
        task=task,
        problem_statement=function["problem_statement"],
        io_description=function["io_description"],
        given_json_text=given,
        main_code=function["main_code"],
        placement=config.placement,
        templates=templates,
    )
    return {
        "instance_id": stable_id("instance", pair["pair_id"], task, config.placement, config.template_version,
                                 config.template_hash, messages),
        "function_id": function["function_id"],
        "source_id": function["source_id"],
        "pair_id": pair["pair_id"],
        "pair_index": pair["pair_index"],
        "task": task,
        "messages": dumps(messages),
        "template_version": config.template_version,
        "variant": config.placement,
        "main_code": function["main_code"],
        "input": pair["input"],
        "output": pair["output"],
        "origin": function["origin"],
    }
