"""PyEdu-R's optional third rule: an LLM judge of reasoning focus.

After the ``int_score`` threshold and the transparent reasoning-focus score
(``codeio.ingest.pyedu``), each surviving raw file goes to the teacher LLM with
the ``pyedu_judge`` prompt template (``codeio/prompts/pyedu_judge.v1.txt``,
overridable from ``CODEIO_PROMPT_DIR`` like every template). The reply must hold
``SCORE: <0-5>`` (:data:`VERDICT_PATTERN`) and may hold ``REASON: ...``
(:data:`REASON_PATTERN`); a file scoring under ``min_score`` is rejected as
``judge_low_score``, a reply without a score as ``judge_malformed_verdict``
(the reply is kept in the reject's detail), a failed call as
``judge_failed:<reason>`` (transient ones are counted ``retryable``: the next run
retries exactly those, finished answers come from the response cache). Files the
PyEdu-R rules did not score (unified rows, problems, PyEdu off) pass untouched.
Counts reconcile: candidates in = candidates out + rejects.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

from codeio.ingest.select import _name as record_name  # noqa: PLC2701 - the name rejects use
from codeio.llm.base import ChatLLM, ChatRequest
from codeio.records import dumps, reject
from codeio.stages.base import StageOutput

VERSION = "1"
TEMPLATE_NAME = "pyedu_judge"
TEMPLATE_VERSION = "v1"
PLACEHOLDERS = frozenset({"code", "path"})
# the verdict: a line "SCORE: 4" (also "Score = 4", "**SCORE:** 4/5"); the last one counts
VERDICT_PATTERN = re.compile(r"^[\s*#>_-]*SCORE[\s*_]*[:=][\s*_]*([0-5])(?:\s*/\s*5)?[\s*_.]*$",
                             re.IGNORECASE | re.MULTILINE)
REASON_PATTERN = re.compile(r"^[\s*#>_-]*REASON[\s*_]*[:=][\s*_]*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
TRUNCATION_NOTE = "\n# ... [file truncated for the judge]\n"
MAX_REASON_CHARS = 300
LOW_SCORE, MALFORMED, FAILED = "judge_low_score", "judge_malformed_verdict", "judge_failed"


@dataclass(frozen=True)
class JudgeConfig:
    """The judge's settings; all of them (with the template's hash) enter the dataset key."""

    model: str = ""  # filled from CODEIO_NORMALIZE_MODEL / CODEIO_LLM_MODEL when empty
    min_score: int = 3  # keep files the judge scores at least this (0-5)
    temperature: float = 0.0
    max_tokens: int = 256
    max_code_chars: int = 12000  # longer files are cut (the verdict needs the gist, not every line)
    template_version: str = TEMPLATE_VERSION
    template_hash: str = ""


@dataclass(frozen=True)
class Verdict:
    score: int
    reason: str


def parse_verdict(text: str) -> Verdict | None:
    """The score and reason of a judge's reply; None when the reply holds no score."""
    scores = VERDICT_PATTERN.findall(text or "")
    if not scores:
        return None
    reasons = REASON_PATTERN.findall(text)
    return Verdict(int(scores[-1]), (reasons[-1] if reasons else "").strip()[:MAX_REASON_CHARS])


def is_judged(record: dict[str, Any]) -> bool:
    """A raw file the PyEdu-R rules scored (its origin carries the reasoning score)."""
    if record["kind"] != "raw":
        return False
    selection = json.loads(record["origin"] or "{}").get("selection") or {}
    return "reasoning_score" in selection


def judge_messages(record: dict[str, Any], config: JudgeConfig, template: str) -> tuple[dict[str, str], ...]:
    from string import Template

    code = record["content"]
    if len(code) > config.max_code_chars:
        code = code[:config.max_code_chars] + TRUNCATION_NOTE
    origin = json.loads(record["origin"] or "{}")
    path = str(origin.get("path") or record["source_name"])
    return ({"role": "user", "content": Template(template).substitute(code=code, path=path)},)


def judge_shard(candidates: Sequence[dict[str, Any]], config: JudgeConfig, llm: ChatLLM | None,
                template: str) -> StageOutput:
    """Candidates (``ingest_select`` rows) -> the ones kept, with the verdict in
    ``origin.selection`` (``judge_score``, ``judge_reason``, ``judge_call_id``)."""
    out = StageOutput()
    judged = [record for record in candidates if is_judged(record)]
    rules: Counter[str] = Counter({"judged": len(judged), "judge": 0})
    verdicts: dict[str, tuple[Any, Verdict | None]] = {}
    if judged:
        if llm is None:
            raise ValueError("the PyEdu-R judge needs an LLM endpoint: set CODEIO_LLM_BASE_URL (and CODEIO_LLM_API_KEY)")
        requests = [ChatRequest(messages=judge_messages(record, config, template), model=config.model,
                                temperature=config.temperature, max_tokens=config.max_tokens) for record in judged]
        results, usage = llm.complete(requests)
        out.stats["llm"] = usage.as_dict()
        for record, result in zip(judged, results):
            verdicts[record["source_id"]] = (result, parse_verdict(result.text) if result.ok else None)
    for record in candidates:
        if record["source_id"] not in verdicts:
            out.records.append(record)
            continue
        result, verdict = verdicts[record["source_id"]]
        name = f"{record['source_id']} ({record_name(record)})"
        if not result.ok:
            out.reject_failed_call(name, FAILED, result.error, result.text)
        elif verdict is None:
            out.rejects.append(reject(name, MALFORMED, f"no 'SCORE: <0-5>' line in the reply\n---\n{result.text}"))
        elif verdict.score < config.min_score:
            out.rejects.append(reject(name, LOW_SCORE, f"judge score {verdict.score} < {config.min_score}: "
                                                       f"{verdict.reason}"))
        else:
            origin = json.loads(record["origin"] or "{}")
            origin.setdefault("selection", {}).update(judge_score=verdict.score, judge_reason=verdict.reason,
                                                      judge_call_id=result.call_id)
            out.records.append(dict(record, origin=dumps(origin)))
            rules["judge"] += 1
    out.stats["rules"] = dict(rules)
    return out
