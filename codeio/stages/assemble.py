"""assemble: one training sample per instance, ``prompt, turn_1, feedback_1,
turn_2, feedback_2`` (CodeI/O++), plus the ablation switches that only change
how samples are cut: revision rounds kept, rejection sampling, and replacing
wrong answers with the ground truth (no chain of thought)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Sequence

from codeio import prompting
from codeio.records import INSTANCE, RESPONSE, SAMPLE, VERDICT, dumps, reject, stable_id
from codeio.stages.base import StageOutput

VERSION = "1"
READS = (INSTANCE, RESPONSE, VERDICT)
WRITES = SAMPLE
MAX_TURNS = 3
WRONG_ANSWER_POLICIES = ("keep", "ground_truth")


@dataclass(frozen=True)
class AssembleConfig:
    revision_rounds: int = 1  # R: turns kept = R + 1
    rejection_sampling: bool = False  # keep only samples whose last turn verified
    wrong_answer_policy: str = "keep"  # "ground_truth": wrong answers become the bare correct answer
    # training-sample scaling: keep an instance when its seeded hash falls under the
    # fraction, so the 1/4 subset is always inside the 1/2 subset
    instance_fraction: float = 1.0
    subset_seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.instance_fraction <= 1.0:
            raise ValueError("instance_fraction must be in (0, 1]")
        if not 0 <= self.revision_rounds <= MAX_TURNS - 1:
            raise ValueError(f"revision_rounds must be between 0 and {MAX_TURNS - 1}")
        if self.wrong_answer_policy not in WRONG_ANSWER_POLICIES:
            raise ValueError(f"wrong_answer_policy must be one of {WRONG_ANSWER_POLICIES}")

    def variant(self, placement: str) -> str:
        return (f"code={placement};rounds={self.revision_rounds};"
                f"rejection={'on' if self.rejection_sampling else 'off'};wrong={self.wrong_answer_policy}")

    def keeps(self, instance_id: str) -> bool:
        if self.instance_fraction >= 1.0:
            return True
        digest = hashlib.sha256(f"{self.subset_seed}:{instance_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.instance_fraction


def assemble_shard(
    instances: Sequence[dict[str, Any]],
    rounds: dict[int, tuple[Sequence[dict[str, Any]], Sequence[dict[str, Any]]]],
    config: AssembleConfig,
    templates: prompting.PromptTemplates,
) -> StageOutput:
    """``rounds`` maps round number to this shard's (responses, verdicts)."""
    INSTANCE.check(instances)
    turns: dict[str, dict[int, tuple[dict[str, Any], dict[str, Any]]]] = {}
    for round_number, (responses, verdicts) in sorted(rounds.items()):
        if round_number > config.revision_rounds + 1:
            continue
        verdict_by_id = {v["instance_id"]: v for v in verdicts}
        for response in responses:
            turns.setdefault(response["instance_id"], {})[round_number] = (response, verdict_by_id[response["instance_id"]])
    out = StageOutput(stats={"final_status": {}, "verified": 0})
    for instance in instances:
        if not config.keeps(instance["instance_id"]):
            out.rejects.append(reject(instance["instance_id"], "not_in_subset", f"instance_fraction={config.instance_fraction}"))
            continue
        own = turns.get(instance["instance_id"], {})
        first = own.get(1)
        if first is None:
            out.rejects.append(reject(instance["instance_id"], "no_response", "no round-1 response"))
            continue
        if not first[0]["ok"]:
            out.rejects.append(reject(instance["instance_id"], "llm_failed", f"{first[0]['error']}\n---\n{first[0]['text']}"))
            continue
        kept = [own[r] for r in sorted(own) if own[r][0]["ok"]]
        last_status = kept[-1][1]["status"]
        if last_status == "sandbox_error":
            out.rejects.append(reject(instance["instance_id"], "verification_sandbox_error", kept[-1][1]["feedback"]))
            continue
        verified = last_status == "success"
        if config.rejection_sampling and not verified:
            out.rejects.append(reject(instance["instance_id"], f"rejection_sampling:{last_status}", ""))
            continue
        prefix = prompting.response_prefix(instance["main_code"], instance["variant"], templates)
        sample = _sample(instance, kept, verified, last_status, config, prefix)
        out.records.append(sample)
        out.stats["final_status"][last_status] = out.stats["final_status"].get(last_status, 0) + 1
        out.stats["verified"] += int(verified)
    return out


def ground_truth_answer(instance: dict[str, Any]) -> str:
    """The correct answer in the final-answer format, without reasoning."""
    if instance["task"] == "output":
        return dumps({"output": json.loads(instance["output"])})
    return dumps({"input": json.loads(instance["input"])})


def _sample(instance: dict[str, Any], kept: list[tuple[dict[str, Any], dict[str, Any]]], verified: bool,
            last_status: str, config: AssembleConfig, response_prefix: str) -> dict[str, Any]:
    messages = json.loads(instance["messages"])
    prompt = prompting.prompt_text(messages)
    texts = [response["text"] for response, _ in kept]
    feedbacks = [verdict["feedback"] for _, verdict in kept]
    if config.wrong_answer_policy == "ground_truth" and not verified:
        texts, feedbacks = [ground_truth_answer(instance)], [""]
    if response_prefix:
        texts[0] = f"{response_prefix.rstrip()}\n\n{texts[0]}"
    texts += [""] * (MAX_TURNS - len(texts))
    feedbacks += [""] * (MAX_TURNS - len(feedbacks))
    variant = config.variant(instance["variant"])
    first_response = kept[0][0]
    sample = {
        "instance_id": instance["instance_id"],
        "function_id": instance["function_id"],
        "source_id": instance["source_id"],
        "task": instance["task"],
        "variant": variant,
        "prompt": prompt,
        "rounds": len([t for t in texts if t]),
        "verified": verified,
        "final_status": last_status,
        "teacher": first_response["teacher"],
        "model": first_response["model"],
        "origin": instance["origin"],
    }
    for index in range(MAX_TURNS):
        sample[f"turn_{index + 1}"] = texts[index]
        sample[f"feedback_{index + 1}"] = feedbacks[index]
    sample["sample_id"] = stable_id("sample", instance["instance_id"], variant, prompt, texts, feedbacks)
    return sample
