"""What every stage returns, and the dataset key that makes work reusable."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping

from codeio.records import reject, stable_id


@dataclass
class StageOutput:
    """A shard's result: kept records, rejects (id + reason + detail) and
    counters for the summary (LLM usage, pass counts, ...)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, str]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    # the stage's unit kept, when its records are not that unit (collect_io counts functions in,
    # kept and rejected, and writes pairs): the summary's out, so that in = out + rejected
    kept: int | None = None
    # inputs a selection left out, counted by reason without a reject record each: they are
    # unchanged input records (the pairs beyond K of build_prompts), not failures
    not_selected: dict[str, int] = field(default_factory=dict)

    def rejects_by_reason(self) -> dict[str, int]:
        counts = Counter(r["reason"] for r in self.rejects)
        counts.update({reason: n for reason, n in self.not_selected.items() if n})
        return dict(counts)

    def reject_failed_call(self, record_id: str, prefix: str, error: str | None, text: str | None) -> None:
        """An LLM call that failed, as a reject ``<prefix>:<reason head>`` (``http_400``,
        ``finish_reason=length``...) holding the whole error and reply; a transient one is
        counted ``retryable``, so the shard is not marked done and the next run retries it."""
        from codeio.llm.base import is_transient_failure

        head = (error or "unknown").split(":", 1)[0].split(" ", 1)[0][:40]
        self.rejects.append(reject(record_id, f"{prefix}:{head}", f"{error}\n---\n{text or ''}"))
        if is_transient_failure(error):
            self.stats["retryable"] = self.stats.get("retryable", 0) + 1

    def rejected(self) -> int:
        """Rejects in the unit of the shard's input: the reject records and the not selected."""
        return len(self.rejects) + sum(self.not_selected.values())


def config_dict(config: Any) -> dict[str, Any]:
    """A frozen config as plain data (for keys, manifests and lineage)."""
    if config is None:
        return {}
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    if isinstance(config, Mapping):
        return dict(config)
    raise TypeError(f"unsupported config type {type(config).__name__}")


def dataset_key(stage: str, version: str, config: Any, parents: Mapping[str, str] | None = None) -> str:
    """Content hash of (stage, stage code version, config, parent dataset keys):
    same inputs and config give the same key, on any store or cluster."""
    return stable_id(stage, version, config_dict(config), dict(sorted((parents or {}).items())), length=20)


def reason_head(reason: str) -> str:
    """The counted part of a reason (``missing_package:sympy`` counts as itself;
    long details stay in the reject's detail column)."""
    return reason.split("\n", 1)[0][:80]
