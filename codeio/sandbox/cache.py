"""Execution cache: a repeated verification executes nothing already executed.

Only ``run()`` results that are OK, of requests that are not determinism
re-checks, are stored; ``sample()`` (generator calls) is never cached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

from codeio.execution import CallResult, ExecStatus, Executor, RunRequest, SampleRequest, SampleResult
from codeio.llm.base import KeyValueCache

CACHE_KEY_VERSION = "exec-v1"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class CachingExecutor:
    """Wraps an :class:`Executor`; thread-safe as long as ``inner`` and ``cache`` are."""

    def __init__(self, inner: Executor, cache: KeyValueCache) -> None:
        self.inner = inner
        self.cache = cache
        self.hits = 0
        self.misses = 0

    def key(self, request: RunRequest, input_json: str) -> str:
        basis = {
            "v": CACHE_KEY_VERSION,
            "code": _sha(request.code),
            "input": _sha(input_json),
            "entry": request.entry,
            "limits": dataclasses.asdict(request.limits),
            "check_size": request.check_size,
            "seed": request.seed,
            "env": self.inner.fingerprint(),
        }
        return "exec:" + _sha(json.dumps(basis, sort_keys=True))

    def run(self, request: RunRequest) -> list[CallResult]:
        if request.recheck:
            return self.inner.run(request)
        keys = [self.key(request, inp) for inp in request.inputs_json]
        results: list[CallResult | None] = []
        for key in keys:
            raw = self.cache.get(key)
            results.append(_decode(raw) if raw is not None else None)
        todo = [i for i, res in enumerate(results) if res is None]
        self.hits += len(keys) - len(todo)
        self.misses += len(todo)
        if todo:
            fresh = self.inner.run(dataclasses.replace(request, inputs_json=tuple(request.inputs_json[i] for i in todo)))
            for i, res in zip(todo, fresh):
                results[i] = res
                if res.status is ExecStatus.OK:
                    self.cache.put(keys[i], _encode(res))
        return [res for res in results if res is not None]

    def sample(self, request: SampleRequest) -> SampleResult:
        return self.inner.sample(request)

    def fingerprint(self) -> str:
        return self.inner.fingerprint()

    def close(self) -> None:
        self.inner.close()


def _encode(result: CallResult) -> bytes:
    return json.dumps({"value_json": result.value_json, "duration_s": result.duration_s}).encode("utf-8")


def _decode(raw: bytes) -> CallResult | None:
    try:
        data = json.loads(raw)
        return CallResult(status=ExecStatus.OK, value_json=str(data["value_json"]), duration_s=float(data["duration_s"]))
    except (ValueError, KeyError, TypeError):
        return None
