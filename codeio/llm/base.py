"""The contract between stages and a chat LLM.

Stages build :class:`ChatRequest` objects and get one :class:`ChatResult` per
request, in order, never an exception for a single failed call: a failure is a
result with ``ok == False`` and a reason, recorded on the row by the caller.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence


# Failure reasons (the part of ChatResult.error before the colon) that another
# attempt may fix: a shard holding such failures is written but not marked done,
# so the next run retries exactly those calls (finished ones come from the cache).
TRANSIENT_FAILURES = frozenset({"http_429", "timeout", "connection", "malformed", "budget_exhausted", "internal",
                                "cache_write"})


def is_transient_failure(error: str | None) -> bool:
    reason = (error or "").split(":", 1)[0].strip()
    return reason in TRANSIENT_FAILURES or reason.startswith("http_5")


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[dict[str, str], ...]  # {"role": ..., "content": ...}
    model: str
    temperature: float = 0.7
    max_tokens: int = 4096
    sample_index: int = 0  # distinguishes repeated samples of the same prompt in the cache
    response_format: dict[str, Any] | None = None

    def cache_key(self) -> str:
        """Key of the response cache: model, messages, sampling parameters except
        ``max_tokens``, sample index. Never the endpoint's host or port."""
        payload = {
            "model": self.model,
            "messages": list(self.messages),
            "temperature": self.temperature,
            "sample_index": self.sample_index,
            "response_format": self.response_format,
        }
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChatResult:
    ok: bool
    text: str = ""  # the answer, or the partial text of a failed call
    finish_reason: str | None = None
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False  # served from the response cache (no request made)
    attempts: int = 0  # HTTP requests made for this result
    latency_s: float = 0.0
    error: str | None = None  # reason when not ok: "finish_reason=length", "http_400: ...", "budget_exhausted", ...
    call_id: str = ""  # the cache key: ties a response row to the cached completion


@dataclass
class UsageTotals:
    requests: int = 0
    cached: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    retries: int = 0
    failures_by_reason: dict[str, int] = field(default_factory=dict)

    def add(self, other: "UsageTotals") -> None:
        self.requests += other.requests
        self.cached += other.cached
        self.failed += other.failed
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_usd += other.cost_usd
        self.retries += other.retries
        for k, v in other.failures_by_reason.items():
            self.failures_by_reason[k] = self.failures_by_reason.get(k, 0) + v

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "cached": self.cached,
            "failed": self.failed,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "retries": self.retries,
            "failures_by_reason": dict(self.failures_by_reason),
        }


class ChatLLM(Protocol):
    """A chat model. ``complete`` runs the batch with the client's own bounded
    concurrency and returns results in request order."""

    def complete(self, requests: Sequence[ChatRequest]) -> tuple[list[ChatResult], UsageTotals]: ...


class KeyValueCache(Protocol):
    """Byte store used by the response and execution caches (implemented in
    ``storage/`` on the dataset store; a dict works in unit tests)."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes) -> None: ...
