"""The teacher client: any OpenAI-compatible chat endpoint through ``openai.AsyncOpenAI``.

Stages are synchronous functions (inside Prefect tasks or Dask workers), while
throughput needs many requests in flight. So :class:`OpenAIChatLLM.complete` is
synchronous for its caller and hands the batch to a per-process endpoint
runtime: one background event-loop thread owning one ``AsyncOpenAI`` client
(connection reuse, a bounded number of requests in flight). ``complete`` may be
called from any thread, including one that already runs an event loop.

What the layer guarantees, per request: transient failures (429, 5xx,
timeouts, connection errors, malformed bodies) are retried with exponential
backoff and jitter, honouring ``Retry-After`` and ``x-ratelimit-*`` headers;
other HTTP errors are not retried; a failed call is a ``ChatResult(ok=False)``
with a short reason, never an exception. Every finished answer is written to
the response cache as soon as it arrives, on writer threads of its own, and
before the request's slot is freed: no answer is returned (used) unless it is in
the cache, so a run killed at any moment pays again only for the requests in
flight (at most ``concurrency`` per process) and the few answers whose cache
write had not finished; an answer that cannot be cached comes back as a
transient failure (``cache_write``), retried by the next run. Requests and tokens per minute are paced by a token bucket shared per
endpoint in the process; a spend cap stops new requests cleanly.

The API key lives only in memory: it is not in ``repr`` of the config, and any
text that leaves this module (errors, logs) is scrubbed of it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import atexit
import email.utils
import hashlib
import json
import logging
import math
import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import httpx2
import openai

from codeio.llm.base import ChatRequest, ChatResult, KeyValueCache, UsageTotals

log = logging.getLogger("codeio.llm")

CACHE_FORMAT = 1
CHARS_PER_TOKEN = 4  # rough estimate for dry runs and the token bucket before usage is known
TOKENS_PER_MESSAGE = 4  # chat framing overhead per message, same rough spirit
ERROR_TEXT_LIMIT = 300  # characters of a server error message kept in a result
TRANSIENT_STATUS = frozenset({408, 409, 425, 429})  # plus every 5xx
PLACEHOLDER_API_KEY = "EMPTY"  # what local servers (vLLM, llama.cpp) accept when no key is set
DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")  # x-ratelimit-reset-* values: "1s", "6m0s", "20ms"
REDACT_WINDOW = 12  # any run this long of the key is scrubbed from error text
BUDGET_EXHAUSTED = "budget_exhausted"
CACHE_WRITE_FAILED = "cache_write"  # a transient failure reason (codeio.llm.base.TRANSIENT_FAILURES)
CACHE_WRITE_ATTEMPTS = 3
CACHE_WRITE_BACKOFF_S = 0.2
CACHE_WRITERS = 4  # threads that only write the response cache: a write never queues behind reads
HTTP_BACKENDS = ("httpx", "aiohttp")


# -- configuration ----------------------------------------------------------
@dataclass(frozen=True)
class LLMConfig:
    """Everything the client needs; built from settings with :meth:`from_settings`.

    ``prices`` holds ``(model, usd_per_1M_input, usd_per_1M_output)`` rows (a
    ``{model: (input, output)}`` mapping is accepted and turned into rows, so the
    config stays hashable). The key is kept out of ``repr`` so a logged config
    never shows it."""

    base_url: str | None = None  # None: the openai library's default endpoint
    api_key: str = field(default="", repr=False)
    model: str = "deepseek-chat"
    timeout: float = 120.0  # seconds per HTTP request
    concurrency: int = 64  # requests in flight per endpoint in this process
    max_attempts: int = 6  # HTTP requests per call, first one included
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    budget_usd: float | None = None
    prices: tuple[tuple[str, float, float], ...] | Mapping[str, tuple[float, float]] = ()
    fail_on_finish_reasons: tuple[str, ...] = ("length", "content_filter")
    backoff_base_s: float = 0.5  # first retry waits up to this (full jitter), doubling each time
    backoff_max_s: float = 30.0
    max_server_wait_s: float = 120.0  # longest Retry-After we honour
    rate_burst_s: float = 1.0  # a bucket holds this many seconds of its rate
    http_backend: str = "httpx"  # or "aiohttp": the openai library's aiohttp transport, less CPU per request

    def __post_init__(self) -> None:
        if isinstance(self.prices, Mapping):
            rows = tuple((str(m), float(p[0]), float(p[1])) for m, p in sorted(self.prices.items()))
            object.__setattr__(self, "prices", rows)
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.timeout <= 0:
            raise ValueError("timeout must be > 0")
        if self.http_backend not in HTTP_BACKENDS:
            raise ValueError(f"http_backend must be one of {HTTP_BACKENDS}")

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> "LLMConfig":
        """Read the ``llm_*`` fields of :class:`codeio.settings.Settings`."""
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key is not None else ""
        values: dict[str, Any] = dict(
            base_url=settings.llm_base_url,
            api_key=key,
            model=settings.llm_model,
            timeout=float(settings.llm_timeout),
            concurrency=int(settings.llm_concurrency),
            max_attempts=int(settings.llm_max_attempts),
            requests_per_minute=settings.llm_requests_per_minute,
            tokens_per_minute=settings.llm_tokens_per_minute,
            budget_usd=settings.llm_budget_usd,
            prices=dict(settings.llm_prices),
            fail_on_finish_reasons=tuple(settings.llm_fail_on_finish_reasons),
        )
        values.update(overrides)
        return cls(**values)

    def price(self, model: str) -> tuple[float, float] | None:
        for name, price_in, price_out in self.prices:
            if name == model:
                return price_in, price_out
        return None

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        price = self.price(model)
        if price is None:
            return 0.0
        return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000

    def public_dict(self) -> dict[str, Any]:
        """The config for lineage: everything but the key."""
        return {
            "base_url": self.base_url,
            "api_key": "**set**" if self.api_key else None,
            "model": self.model,
            "timeout": self.timeout,
            "concurrency": self.concurrency,
            "max_attempts": self.max_attempts,
            "requests_per_minute": self.requests_per_minute,
            "tokens_per_minute": self.tokens_per_minute,
            "budget_usd": self.budget_usd,
            "prices": [list(row) for row in self.prices],
            "fail_on_finish_reasons": list(self.fail_on_finish_reasons),
        }


def estimate_tokens(request: ChatRequest) -> int:
    """Prompt tokens, roughly (characters / 4 plus framing)."""
    chars = sum(len(str(m.get("content") or "")) for m in request.messages)
    return math.ceil(chars / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(request.messages)


def estimate_cost(
    requests: Sequence[ChatRequest],
    config: LLMConfig,
    cache: KeyValueCache | None = None,
    completion_tokens_per_request: int | None = None,
) -> dict[str, Any]:
    """What a batch would cost, for ``--dry-run``: requests not in the cache,
    estimated prompt tokens, completion tokens (``max_tokens`` as the upper bound
    unless a typical length is given) and the cost from the price table."""
    todo = [r for r in requests if cache is None or cache.get(r.cache_key()) is None]

    def completion(r: ChatRequest) -> int:
        return r.max_tokens if completion_tokens_per_request is None else min(r.max_tokens, completion_tokens_per_request)

    prompt_tokens = sum(estimate_tokens(r) for r in todo)
    completion_est = sum(completion(r) for r in todo)
    completion_max = sum(r.max_tokens for r in todo)
    models = sorted({r.model for r in todo})
    cost_est = sum(config.cost(r.model, estimate_tokens(r), completion(r)) for r in todo)
    cost_max = sum(config.cost(r.model, estimate_tokens(r), r.max_tokens) for r in todo)
    return {
        "requests": len(todo),
        "cached": len(requests) - len(todo),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_est,
        "completion_tokens_max": completion_max,
        "cost_usd": round(cost_est, 6),
        "cost_usd_max": round(cost_max, 6),
        "models": models,
        "prices_known": all(config.price(m) is not None for m in models),
        "budget_usd": config.budget_usd,
    }


# -- secrets ------------------------------------------------------------------
class _Redactor:
    """Scrubs the key (and any long run of it) from text that leaves the module."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def __call__(self, text: str) -> str:
        secret = self._secret
        if not secret or not text:
            return text
        text = text.replace(secret, "***")
        if len(secret) >= REDACT_WINDOW:
            for start in range(len(secret) - REDACT_WINDOW + 1):
                piece = secret[start : start + REDACT_WINDOW]
                if piece in text:
                    text = text.replace(piece, "***")
        return text


# -- rate limiting --------------------------------------------------------------
class _Bucket:
    """A token bucket in virtual time: reservations are granted in order, and a
    reservation larger than the capacity is granted when the bucket is full."""

    def __init__(self, per_second: float, capacity: float) -> None:
        self.rate = per_second
        self.capacity = capacity
        self.level = capacity
        self.stamp = time.monotonic()

    def level_at(self, t: float) -> float:
        return min(self.capacity, self.level + (t - self.stamp) * self.rate)

    def earliest(self, start: float, amount: float) -> float:
        t = max(start, self.stamp)
        need = min(amount, self.capacity)
        have = self.level_at(t)
        if have >= need:
            return t
        return t + (need - have) / self.rate

    def take(self, t: float, amount: float) -> None:
        self.level = self.level_at(t) - amount
        self.stamp = t

    def adjust(self, amount: float) -> None:
        """Take ``amount`` more (negative: give back) once the real cost is known."""
        self.level = min(self.capacity, self.level - amount)


class RateLimiter:
    """Requests/min and tokens/min for one endpoint, shared by every client of
    the process (thread-safe, not tied to an event loop), plus a pause that the
    server's rate-limit signals extend."""

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None, burst_s: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._requests = _bucket(requests_per_minute, burst_s)
        self._tokens = _bucket(tokens_per_minute, burst_s)
        self._paused_until = 0.0
        self.delayed = 0  # reservations that had to wait

    def reserve(self, tokens: int) -> float:
        """Book one request of ``tokens`` estimated tokens; seconds to wait before sending."""
        with self._lock:
            now = time.monotonic()
            t = max(now, self._paused_until)
            if self._requests is not None:
                t = max(t, self._requests.earliest(t, 1))
            if self._tokens is not None:
                t = max(t, self._tokens.earliest(t, tokens))
            if self._requests is not None:
                self._requests.take(t, 1)
            if self._tokens is not None:
                self._tokens.take(t, tokens)
            if t > now:
                self.delayed += 1
            return t - now

    def settle(self, extra_tokens: int) -> None:
        """Correct the token bucket once the real usage of a call is known."""
        if self._tokens is None or extra_tokens == 0:
            return
        with self._lock:
            self._tokens.adjust(extra_tokens)

    def pause(self, seconds: float) -> None:
        """Hold every new request of the endpoint for ``seconds`` (server said so)."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)


def _bucket(per_minute: float | None, burst_s: float) -> _Bucket | None:
    if per_minute is None or per_minute <= 0:
        return None
    per_second = per_minute / 60.0
    return _Bucket(per_second, max(1.0, per_second * burst_s))


def parse_duration_s(value: str) -> float | None:
    """``"1.5"``, ``"6m0s"``, ``"20ms"`` -> seconds; None when unreadable."""
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = DURATION_PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value.replace(" ", ""):
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


def server_wait_s(headers: Mapping[str, str], rate_limited: bool) -> float | None:
    """How long the server asks us to wait, from ``retry-after-ms``, ``retry-after``
    (seconds or an HTTP date) and, when rate limited or out of quota,
    ``x-ratelimit-reset-{requests,tokens}``."""
    lower = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lower:
        try:
            return max(0.0, float(lower["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    if "retry-after" in lower:
        seconds = parse_duration_s(lower["retry-after"])
        if seconds is not None:
            return seconds
        try:
            when = email.utils.parsedate_to_datetime(lower["retry-after"])
            return max(0.0, when.timestamp() - time.time())
        except (TypeError, ValueError):
            pass
    waits = []
    for kind in ("requests", "tokens"):
        remaining = lower.get(f"x-ratelimit-remaining-{kind}")
        reset = lower.get(f"x-ratelimit-reset-{kind}")
        if reset is None:
            continue
        exhausted = remaining is not None and remaining.strip() in ("0", "0.0")
        if rate_limited or exhausted:
            seconds = parse_duration_s(reset)
            if seconds is not None:
                waits.append(seconds)
    return max(waits) if waits else None


# -- the per-process endpoint runtime -----------------------------------------
class _Runtime:
    """One event-loop thread and one AsyncOpenAI client for an endpoint."""

    def __init__(self, config: LLMConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="codeio-llm-loop", daemon=True)
        self.thread.start()
        self._ready.wait()
        self.client, self.semaphore = asyncio.run_coroutine_threadsafe(self._build(config), self.loop).result()
        self.cache_writer = ThreadPoolExecutor(max_workers=CACHE_WRITERS, thread_name_prefix="codeio-llm-cache-write")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    async def _build(self, config: LLMConfig) -> tuple[openai.AsyncOpenAI, asyncio.Semaphore]:
        limits = httpx2.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency)
        backend = openai.DefaultAioHttpClient if config.http_backend == "aiohttp" else openai.DefaultAsyncHttpxClient
        http_client = backend(limits=limits, timeout=config.timeout)
        client = openai.AsyncOpenAI(
            base_url=config.base_url,
            api_key=config.api_key or PLACEHOLDER_API_KEY,
            timeout=config.timeout,
            max_retries=0,  # retries are ours: they must honour the server's signals and our budget
            http_client=http_client,
        )
        return client, asyncio.Semaphore(config.concurrency)

    def close(self) -> None:
        if not self.loop.is_running():
            return
        try:
            asyncio.run_coroutine_threadsafe(self.client.close(), self.loop).result(10)
        except (RuntimeError, TimeoutError, OSError) as exc:
            log.debug("closing the LLM client: %s", type(exc).__name__)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.cache_writer.shutdown(wait=True)


class _Registry:
    """Per-process runtimes and rate limiters, keyed by endpoint (a lazily built
    process resource: after a fork the child builds its own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runtimes: dict[tuple[Any, ...], _Runtime] = {}
        self._limiters: dict[tuple[Any, ...], RateLimiter] = {}

    def runtime(self, config: LLMConfig) -> _Runtime:
        fingerprint = hashlib.sha256(config.api_key.encode()).hexdigest()
        key = (os.getpid(), config.base_url, fingerprint, config.timeout, config.concurrency, config.http_backend)
        with self._lock:
            runtime = self._runtimes.get(key)
            if runtime is None or not runtime.thread.is_alive():
                runtime = _Runtime(config)
                self._runtimes[key] = runtime
            return runtime

    def limiter(self, config: LLMConfig) -> RateLimiter:
        key = (os.getpid(), config.base_url, config.requests_per_minute, config.tokens_per_minute, config.rate_burst_s)
        with self._lock:
            limiter = self._limiters.get(key)
            if limiter is None:
                limiter = RateLimiter(config.requests_per_minute, config.tokens_per_minute, config.rate_burst_s)
                self._limiters[key] = limiter
            return limiter

    def close_all(self) -> None:
        with self._lock:
            runtimes = [r for k, r in self._runtimes.items() if k[0] == os.getpid()]
            self._runtimes.clear()
            self._limiters.clear()
        for runtime in runtimes:
            runtime.close()


_REGISTRY = _Registry()
atexit.register(_REGISTRY.close_all)


def close_all_clients() -> None:
    """Stop every endpoint runtime of this process (tests; it is also done at exit)."""
    _REGISTRY.close_all()


# -- one HTTP attempt -------------------------------------------------------------
@dataclass
class _Attempt:
    kind: str  # "ok", "transient", "permanent"
    reason: str = ""  # short machine reason: http_429, timeout, malformed, ...
    message: str = ""
    wait_s: float | None = None  # what the server asked for
    text: str = ""
    finish_reason: str | None = None
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0


class OpenAIChatLLM:
    """:class:`codeio.llm.base.ChatLLM` over an OpenAI-compatible endpoint.

    ``cache`` is the response cache (None: no caching). Spend is counted per
    object across ``complete`` calls: give each run (or what is left of its
    budget) its own object, with ``LLMConfig.budget_usd``."""

    def __init__(self, config: LLMConfig, cache: KeyValueCache | None = None, *, seed: int | None = None) -> None:
        self.config = config
        self._cache = cache
        self._redact = _Redactor(config.api_key)
        self._rng = random.Random(seed)
        self._spent_usd = 0.0
        self._reserved_usd = 0.0  # worst-case cost of the calls in flight
        self._lock = threading.Lock()
        if config.budget_usd is not None and config.price(config.model) is None:
            log.warning("a budget is set but the price table has no entry for model %r: its cost counts as 0", config.model)

    def __repr__(self) -> str:
        return f"OpenAIChatLLM({self.config!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # a worker process rebuilds its own runtime; spend starts from zero there
        return (type(self), (self.config, self._cache))

    @property
    def spent_usd(self) -> float:
        return self._spent_usd

    def with_budget(self, budget_usd: float | None) -> "OpenAIChatLLM":
        return type(self)(replace(self.config, budget_usd=budget_usd), self._cache)

    # -- the sync API --------------------------------------------------------
    def complete(self, requests: Sequence[ChatRequest]) -> tuple[list[ChatResult], UsageTotals]:
        requests = list(requests)
        if not requests:
            return [], UsageTotals()
        runtime = _REGISTRY.runtime(self.config)
        if threading.current_thread() is runtime.thread:
            raise RuntimeError("OpenAIChatLLM.complete is synchronous; do not call it from its own event loop")
        future = asyncio.run_coroutine_threadsafe(self._complete(runtime, requests), runtime.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    # -- the async core --------------------------------------------------------
    async def _complete(self, runtime: _Runtime, requests: list[ChatRequest]) -> tuple[list[ChatResult], UsageTotals]:
        totals = UsageTotals()
        limiter = _REGISTRY.limiter(self.config)
        # identical requests (same cache key) in one batch are sent once: the copies
        # get the same answer, marked as served from the cache
        first_of: dict[str, int] = {}
        for index, request in enumerate(requests):
            first_of.setdefault(request.cache_key(), index)
        unique = sorted(set(first_of.values()))
        answers = await asyncio.gather(*(self._one(runtime, limiter, requests[i], totals) for i in unique))
        by_index = dict(zip(unique, answers))
        results: list[ChatResult] = []
        for index, request in enumerate(requests):
            first = first_of[request.cache_key()]
            if first == index:
                results.append(by_index[index])
            else:
                copy = by_index[first]
                results.append(dataclasses.replace(copy, cached=copy.ok, attempts=0) if copy.ok else copy)
                totals.cached += int(copy.ok)
        return results, totals

    async def _one(self, runtime: _Runtime, limiter: RateLimiter, request: ChatRequest, totals: UsageTotals) -> ChatResult:
        key = request.cache_key()
        try:
            cached = await self._cache_get(key)
            if cached is not None:
                totals.cached += 1
                return cached
            result = await self._call(runtime, limiter, request, key, totals)
        except Exception as exc:  # a bug or a broken cache must not sink the whole batch
            log.exception("LLM call %s failed unexpectedly", key[:12])
            result = ChatResult(ok=False, model=request.model, error=f"internal: {type(exc).__name__}", call_id=key)
        if not result.ok:
            totals.failed += 1
            reason = (result.error or "unknown").split(":", 1)[0]
            totals.failures_by_reason[reason] = totals.failures_by_reason.get(reason, 0) + 1
        return result

    async def _call(
        self, runtime: _Runtime, limiter: RateLimiter, request: ChatRequest, key: str, totals: UsageTotals
    ) -> ChatResult:
        started = time.perf_counter()
        attempts = 0
        last = _Attempt("transient", "not_attempted")
        worst = self._worst_cost(request)
        for attempt in range(1, self.config.max_attempts + 1):
            if self._budget_reached():
                return self._failure(request, key, BUDGET_EXHAUSTED, attempts, started)
            async with runtime.semaphore:
                if not self._reserve(worst):
                    return self._failure(request, key, BUDGET_EXHAUSTED, attempts, started)
                try:
                    estimate = estimate_tokens(request)
                    wait = limiter.reserve(estimate)
                    if wait > 0:
                        await asyncio.sleep(wait)
                    last = await self._attempt(runtime.client, request)
                    attempts += 1
                    totals.requests += 1
                    if attempt > 1:
                        totals.retries += 1
                    if last.wait_s is not None:
                        limiter.pause(min(last.wait_s, self.config.max_server_wait_s))
                    if last.kind == "ok":
                        limiter.settle(last.prompt_tokens + last.completion_tokens - estimate)
                        # inside the slot: the answer is in the cache before the next request goes out
                        return await self._finished(runtime, request, key, last, attempts, started, totals)
                finally:
                    self._release(worst)
            if last.kind == "permanent":
                break
            if attempt < self.config.max_attempts:
                log.debug("LLM call %s: %s, retry %d", key[:12], last.reason, attempt)
                await asyncio.sleep(self._backoff(attempt, last.wait_s))
        suffix = f" (after {attempts} attempts)" if last.kind == "transient" else ""
        error = f"{last.reason}: {last.message}"[:ERROR_TEXT_LIMIT] + suffix
        return self._failure(request, key, error, attempts, started)

    def _budget_reached(self) -> bool:
        budget = self.config.budget_usd
        return budget is not None and self._spent_usd >= budget

    def _worst_cost(self, request: ChatRequest) -> float:
        """What one call can cost at most: its prompt (estimated) and max_tokens of answer."""
        return self.config.cost(request.model, estimate_tokens(request), request.max_tokens)

    def _reserve(self, worst: float) -> bool:
        """Hold a call's worst cost against the budget while it is in flight, so that
        the calls in flight together can never carry the spend past the cap."""
        budget = self.config.budget_usd
        with self._lock:
            if budget is not None and self._spent_usd + self._reserved_usd + worst > budget:
                return False
            self._reserved_usd += worst
            return True

    def _release(self, worst: float) -> None:
        with self._lock:
            self._reserved_usd -= worst

    def _backoff(self, attempt: int, server_wait: float | None) -> float:
        ceiling = min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** (attempt - 1))
        jittered = self._rng.uniform(0, ceiling)
        if server_wait is None:
            return jittered
        # the server's wait, plus a little jitter so that waiters do not return in lockstep
        return min(self.config.max_server_wait_s, server_wait) + self._rng.uniform(0, min(1.0, ceiling) * 0.1)

    async def _attempt(self, client: openai.AsyncOpenAI, request: ChatRequest) -> _Attempt:
        params: dict[str, Any] = {
            "model": request.model,
            "messages": list(request.messages),
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        if request.response_format is not None:
            params["response_format"] = request.response_format
        try:
            raw = await client.chat.completions.with_raw_response.create(**params)
            headers = raw.headers
            completion = raw.parse()
        except openai.APITimeoutError:
            return _Attempt("transient", "timeout", f"no answer within {self.config.timeout:g} s")
        except openai.APIConnectionError as exc:
            return _Attempt("transient", "connection", self._redact(_cause(exc)))
        except openai.APIStatusError as exc:
            status = exc.status_code
            message = self._redact(_status_message(exc))
            wait = server_wait_s(exc.response.headers, rate_limited=status == 429)
            kind = "transient" if status in TRANSIENT_STATUS or status >= 500 else "permanent"
            return _Attempt(kind, f"http_{status}", message, wait_s=wait)
        except (ValueError, TypeError, openai.APIResponseValidationError) as exc:
            return _Attempt("transient", "malformed", f"unreadable response body ({type(exc).__name__})")
        try:
            attempt = _read_completion(completion, request.model)
        except (AttributeError, TypeError, ValueError, IndexError):
            attempt = None  # the library does not validate bodies: any shape can arrive
        if attempt is None:
            return _Attempt("transient", "malformed", "response without a readable choice")
        attempt.wait_s = server_wait_s(headers, rate_limited=False)
        return attempt

    async def _finished(
        self, runtime: _Runtime, request: ChatRequest, key: str, got: _Attempt, attempts: int, started: float,
        totals: UsageTotals,
    ) -> ChatResult:
        cost = self.config.cost(request.model, got.prompt_tokens, got.completion_tokens)
        with self._lock:
            self._spent_usd += cost
        totals.prompt_tokens += got.prompt_tokens
        totals.completion_tokens += got.completion_tokens
        totals.cost_usd += cost
        failed = got.finish_reason in self.config.fail_on_finish_reasons
        result = ChatResult(
            ok=not failed,
            text=got.text,
            finish_reason=got.finish_reason,
            model=got.model,
            prompt_tokens=got.prompt_tokens,
            completion_tokens=got.completion_tokens,
            attempts=attempts,
            latency_s=time.perf_counter() - started,
            error=f"finish_reason={got.finish_reason}" if failed else None,
            call_id=key,
        )
        if result.ok and got.finish_reason != "length":
            error = await self._cache_put(runtime, key, result)
            if error is not None:  # never used unless cached: the next run asks again
                return self._failure(request, key, f"{CACHE_WRITE_FAILED}: {error}", attempts, started)
        return result

    def _failure(self, request: ChatRequest, key: str, error: str, attempts: int, started: float) -> ChatResult:
        return ChatResult(
            ok=False,
            model=request.model,
            attempts=attempts,
            latency_s=time.perf_counter() - started,
            error=self._redact(error),
            call_id=key,
        )

    # -- the response cache --------------------------------------------------------
    async def _cache_get(self, key: str) -> ChatResult | None:
        if self._cache is None:
            return None
        blob = await asyncio.to_thread(self._cache.get, key)
        if blob is None:
            return None
        try:
            entry = json.loads(blob)
            if entry.get("format") != CACHE_FORMAT:
                return None
            return ChatResult(
                ok=True,
                text=entry["text"],
                finish_reason=entry.get("finish_reason"),
                model=entry.get("model", ""),
                prompt_tokens=int(entry.get("prompt_tokens", 0)),
                completion_tokens=int(entry.get("completion_tokens", 0)),
                cached=True,
                attempts=0,
                call_id=key,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("ignoring an unreadable response-cache entry %s", key[:12])
            return None

    async def _cache_put(self, runtime: _Runtime, key: str, result: ChatResult) -> str | None:
        """Write an answer to the cache (a few attempts); the error when it could not."""
        if self._cache is None:
            return None
        entry = {
            "format": CACHE_FORMAT,
            "text": result.text,
            "finish_reason": result.finish_reason,
            "model": result.model,
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
        }
        blob = json.dumps(entry, ensure_ascii=False, sort_keys=True).encode("utf-8")
        loop = asyncio.get_running_loop()
        for attempt in range(1, CACHE_WRITE_ATTEMPTS + 1):
            try:
                await loop.run_in_executor(runtime.cache_writer, self._cache.put, key, blob)
                return None
            except OSError as exc:
                error = f"{type(exc).__name__}: {exc}"[:ERROR_TEXT_LIMIT]
                log.warning("response cache write %d/%d failed for %s: %s", attempt, CACHE_WRITE_ATTEMPTS, key[:12],
                            type(exc).__name__)
            if attempt < CACHE_WRITE_ATTEMPTS:
                await asyncio.sleep(CACHE_WRITE_BACKOFF_S * attempt)
        return error


def _read_completion(completion: Any, model: str) -> _Attempt | None:
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list) or not choices:
        return None
    choice = choices[0]
    content = choice.message.content
    finish_reason = choice.finish_reason
    if not isinstance(content, (str, type(None))) or not isinstance(finish_reason, (str, type(None))):
        return None
    usage = getattr(completion, "usage", None)
    served_by = getattr(completion, "model", None)
    return _Attempt(
        "ok",
        text=content or "",
        finish_reason=finish_reason,
        model=served_by if isinstance(served_by, str) and served_by else model,
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
    )


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return f"{type(cause).__name__}" if cause is not None else "connection failed"


def _status_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and inner.get("message"):
            return str(inner["message"])
        if isinstance(body.get("message"), str):
            return body["message"]
    if isinstance(body, str) and body:
        return body
    return exc.message or f"HTTP {exc.status_code}"
