"""OpenAIChatLLM through the real openai client against the local fake server."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from codeio.llm.base import ChatRequest, ChatResult
from codeio.llm.openai_client import (
    LLMConfig,
    estimate_tokens,
    OpenAIChatLLM,
    RateLimiter,
    close_all_clients,
    estimate_cost,
    parse_duration_s,
    server_wait_s,
)
from llm_server import (
    FakeLLMServer,
    Reply,
    by_attempt,
    fixed,
    hang,
    last_user_message,
    malformed,
    rate_limited,
    server_error,
    sliding_window_limit,
    truncated,
)

MODEL = "fake-model"
SECRET = "sk-test-0123456789abcdefSECRET"


class DictCache:
    """The KeyValueCache contract on a dict (thread-safe)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self.data.get(key)

    def put(self, key: str, value: bytes) -> None:
        with self._lock:
            self.data[key] = value


@pytest.fixture(autouse=True)
def _stop_clients():
    yield
    close_all_clients()


def echo(body, info) -> Reply:
    return Reply(content=f"answer to {last_user_message(body)}")


def config_for(server: FakeLLMServer, **overrides) -> LLMConfig:
    values = dict(base_url=server.base_url, api_key=SECRET, model=MODEL, timeout=5.0, backoff_base_s=0.01,
                  backoff_max_s=0.05, max_attempts=4)
    values.update(overrides)
    return LLMConfig(**values)


def req(text: str, **fields) -> ChatRequest:
    return ChatRequest(messages=({"role": "user", "content": text},), model=MODEL, **fields)


def test_results_in_order_with_usage():
    with FakeLLMServer(echo) as server:
        llm = OpenAIChatLLM(config_for(server))
        results, usage = llm.complete([req(f"q{i} two three") for i in range(20)])
    assert [r.text for r in results] == [f"answer to q{i} two three" for i in range(20)]
    assert all(r.ok and r.attempts == 1 and not r.cached and r.finish_reason == "stop" for r in results)
    assert all(r.prompt_tokens == 3 and r.completion_tokens == 5 for r in results)
    assert usage.requests == 20 and usage.retries == 0 and usage.failed == 0
    assert usage.prompt_tokens == 60 and usage.completion_tokens == 100
    assert results[0].call_id == req("q0 two three").cache_key()
    assert llm.complete([]) == ([], llm.complete([])[1])


@pytest.mark.parametrize(
    "make_handler, reason",
    [
        (lambda: rate_limited(echo, times=2, retry_after_s=0.05), "http_429"),
        (lambda: server_error(echo, times=2), "http_500"),
        (lambda: server_error(echo, times=2, status=503), "http_503"),
        (lambda: malformed(echo, times=2), "malformed"),
        (lambda: malformed(echo, times=2, raw_body=b'{"id": "x"}'), "malformed"),
        (lambda: hang(echo, times=2, seconds=30), "timeout"),
    ],
)
def test_transient_failures_are_retried(make_handler, reason):
    with FakeLLMServer(make_handler()) as server:
        results, usage = OpenAIChatLLM(config_for(server, timeout=0.5)).complete([req("a"), req("b")])
        assert len(server.requests) == 6
    assert [r.text for r in results] == ["answer to a", "answer to b"]
    assert all(r.ok and r.attempts == 3 for r in results)
    assert usage.requests == 6 and usage.retries == 4 and usage.failed == 0


def test_transient_failures_end_in_a_recorded_failure():
    with FakeLLMServer(server_error(echo, times=99)) as server:
        results, usage = OpenAIChatLLM(config_for(server, max_attempts=3)).complete([req("a")])
        assert len(server.requests) == 3
    (result,) = results
    assert not result.ok and result.attempts == 3
    assert result.error.startswith("http_500: internal error") and "after 3 attempts" in result.error
    assert usage.failed == 1 and usage.failures_by_reason == {"http_500": 1}


@pytest.mark.parametrize("status", [400, 401, 404])
def test_client_errors_are_not_retried(status):
    with FakeLLMServer(server_error(echo, times=99, status=status)) as server:
        results, usage = OpenAIChatLLM(config_for(server)).complete([req("a")])
        assert len(server.requests) == 1
    assert not results[0].ok and results[0].attempts == 1
    assert results[0].error.startswith(f"http_{status}")
    assert usage.failures_by_reason == {f"http_{status}": 1}


def test_length_is_a_failure_with_partial_text_and_not_cached():
    cache = DictCache()
    with FakeLLMServer(truncated("half an ans")) as server:
        llm = OpenAIChatLLM(config_for(server), cache)
        results, usage = llm.complete([req("a")])
        assert results[0] == ChatResult(
            ok=False, text="half an ans", finish_reason="length", model=MODEL, prompt_tokens=1, completion_tokens=3,
            attempts=1, latency_s=results[0].latency_s, error="finish_reason=length", call_id=req("a").cache_key(),
        )
        assert usage.failures_by_reason == {"finish_reason=length": 1} and usage.completion_tokens == 3
        assert cache.data == {}
        llm.complete([req("a")])
        assert len(server.requests) == 2  # asked again: a truncated answer is no answer


def test_finish_reason_failures_are_configurable():
    cache = DictCache()
    with FakeLLMServer(fixed("filtered", finish_reason="content_filter")) as server:
        default, _ = OpenAIChatLLM(config_for(server), cache).complete([req("a")])
        lenient, _ = OpenAIChatLLM(config_for(server, fail_on_finish_reasons=("length",)), cache).complete([req("b")])
    assert default[0].error == "finish_reason=content_filter" and not default[0].ok
    assert lenient[0].ok and lenient[0].finish_reason == "content_filter"
    with FakeLLMServer(truncated("cut")) as server:
        results, _ = OpenAIChatLLM(config_for(server, fail_on_finish_reasons=()), cache).complete([req("c")])
    assert results[0].ok and results[0].finish_reason == "length"
    assert set(cache.data) == {req("b").cache_key()}  # a length answer is never cached


def test_cache_hit_avoids_a_request_and_max_tokens_change_reuses_it():
    cache = DictCache()
    with FakeLLMServer(echo) as server:
        llm = OpenAIChatLLM(config_for(server), cache)
        first, _ = llm.complete([req("a"), req("b", max_tokens=100)])
        again, usage = llm.complete([req("a", max_tokens=8192), req("b", max_tokens=50)])
        assert len(server.requests) == 2
    assert [r.text for r in again] == [r.text for r in first]
    assert all(r.cached and r.attempts == 0 and r.ok for r in again)
    assert [r.call_id for r in again] == [r.call_id for r in first]
    assert usage.cached == 2 and usage.requests == 0 and usage.cost_usd == 0
    # sampling parameters and the sample index are part of the key
    with FakeLLMServer(echo) as server:
        OpenAIChatLLM(config_for(server), cache).complete([req("a", temperature=0.2), req("a", sample_index=1)])
        assert len(server.requests) == 2


def test_another_port_same_model_reuses_the_cache():
    cache = DictCache()
    with FakeLLMServer(echo) as first:
        OpenAIChatLLM(config_for(first), cache).complete([req("a"), req("b")])
    with FakeLLMServer(echo) as second:
        results, _ = OpenAIChatLLM(config_for(second), cache).complete([req("a"), req("b")])
        assert second.requests == [] and first.port != second.port
    assert all(r.cached for r in results)


def test_cache_is_written_as_each_response_arrives():
    cache = DictCache()
    seen: list[int] = []

    def handler(body, info):
        seen.append(len(cache.data))
        return echo(body, info)

    with FakeLLMServer(handler) as server:
        OpenAIChatLLM(config_for(server, concurrency=1), cache).complete([req(f"q{i}") for i in range(5)])
    assert seen == [0, 1, 2, 3, 4]


def test_budget_cap_stops_new_requests():
    prices = ((MODEL, 1_000_000.0, 0.0),)  # one dollar per prompt token
    # a call in flight reserves its worst case (estimated prompt, free completion here);
    # each call really costs $1, so four fit under this cap and a fifth would not
    worst = float(estimate_tokens(req("q0")))
    budget = worst + 3.0
    with FakeLLMServer(fixed("x", prompt_tokens=1, completion_tokens=0)) as server:
        llm = OpenAIChatLLM(config_for(server, concurrency=1, budget_usd=budget, prices=prices))
        results, usage = llm.complete([req(f"q{i}") for i in range(10)])
        assert len(server.requests) == 4
    assert [r.ok for r in results] == [True] * 4 + [False] * 6
    assert {r.error for r in results[4:]} == {"budget_exhausted"}
    assert all(r.attempts == 0 for r in results[4:])
    assert usage.cost_usd == pytest.approx(4.0) and usage.failures_by_reason == {"budget_exhausted": 6}
    assert llm.spent_usd == pytest.approx(4.0) and llm.spent_usd <= budget


def test_concurrency_bound_is_respected():
    with FakeLLMServer(fixed("x", delay_s=0.05)) as server:
        results, _ = OpenAIChatLLM(config_for(server, concurrency=4)).complete([req(f"q{i}") for i in range(40)])
        assert 1 < server.max_in_flight <= 4
    assert all(r.ok for r in results)


def test_requests_per_minute_keep_under_the_servers_window():
    # 600/min with one second of burst: at most 20 requests in any one-second window
    with FakeLLMServer(sliding_window_limit(echo, max_requests=25, window_s=1.0)) as server:
        results, usage = OpenAIChatLLM(config_for(server, requests_per_minute=600)).complete(
            [req(f"q{i}") for i in range(35)]
        )
        assert server.replies_by_status == {200: 35}
    assert all(r.ok for r in results) and usage.retries == 0


def test_rate_limiter_counts():
    limiter = RateLimiter(requests_per_minute=600, tokens_per_minute=None)
    waits = [limiter.reserve(1) for _ in range(30)]
    assert sum(w == 0 for w in waits) == 10 and limiter.delayed == 20
    assert waits == sorted(waits)
    tokens = RateLimiter(requests_per_minute=None, tokens_per_minute=6000)  # 100 tokens/s, burst 100
    assert [tokens.reserve(40) == 0 for _ in range(4)] == [True, True, False, False]
    big = RateLimiter(requests_per_minute=None, tokens_per_minute=60)  # bigger than the bucket: granted when full
    assert big.reserve(500) == 0 and big.reserve(1) > 0


def test_server_rate_limit_headers_are_honoured():
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "20ms"}
    handler = by_attempt([Reply(content="slow", status=429, headers=headers), Reply(content="fine")])
    with FakeLLMServer(handler) as server:
        results, usage = OpenAIChatLLM(config_for(server)).complete([req("a")])
    assert results[0].text == "fine" and usage.retries == 1
    assert server_wait_s({"Retry-After": "2"}, rate_limited=True) == 2.0
    assert server_wait_s({"retry-after-ms": "150"}, rate_limited=True) == 0.15
    assert server_wait_s({"x-ratelimit-reset-tokens": "6m0s"}, rate_limited=True) == 360.0
    assert server_wait_s({"x-ratelimit-reset-tokens": "6m0s", "x-ratelimit-remaining-tokens": "5"}, rate_limited=False) is None
    assert parse_duration_s("1m30.5s") == 90.5 and parse_duration_s("soon") is None


def test_api_key_never_leaks(caplog):
    caplog.set_level(logging.DEBUG)
    leaky = server_error(echo, times=99, status=401)

    def handler(body, info):
        reply = leaky(body, info)
        return Reply(content=f"Incorrect API key provided: {SECRET}", status=reply.status)

    with FakeLLMServer(handler) as server:
        llm = OpenAIChatLLM(config_for(server))
        results, usage = llm.complete([req("a")])
    assert results[0].error.startswith("http_401") and SECRET not in results[0].error
    assert SECRET[:14] not in repr(results) and SECRET not in repr(llm) and SECRET not in repr(usage.as_dict())
    assert SECRET not in caplog.text
    assert llm.config.public_dict()["api_key"] == "**set**"


def test_complete_from_threads_and_from_inside_an_event_loop():
    with FakeLLMServer(echo) as server:
        llm = OpenAIChatLLM(config_for(server))
        outputs: dict[int, list[str]] = {}

        def work(n: int) -> None:
            results, _ = llm.complete([req(f"t{n}-{i}") for i in range(5)])
            outputs[n] = [r.text for r in results]

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        async def inside_a_loop() -> list[ChatResult]:
            return llm.complete([req("loop")])[0]

        in_loop = asyncio.run(inside_a_loop())
    assert outputs == {n: [f"answer to t{n}-{i}" for i in range(5)] for n in range(4)}
    assert in_loop[0].text == "answer to loop"


def test_response_format_and_sampling_parameters_are_sent():
    with FakeLLMServer(fixed('{"a": 1}')) as server:
        OpenAIChatLLM(config_for(server)).complete(
            [req("json please", response_format={"type": "json_object"}, temperature=0.2, max_tokens=77)]
        )
        (body,) = server.requests
    assert body["response_format"] == {"type": "json_object"}
    assert body["temperature"] == 0.2 and body["max_tokens"] == 77 and body["model"] == MODEL
    assert "stream" not in body or body["stream"] is False


def test_estimate_cost_for_a_dry_run():
    cache = DictCache()
    config = LLMConfig(base_url="http://127.0.0.1:9/v1", model=MODEL, prices=((MODEL, 1.0, 2.0),))
    requests = [req("x" * 400, max_tokens=1000), req("y" * 400, max_tokens=1000)]
    cache.put(requests[1].cache_key(), b"{}")
    estimate = estimate_cost(requests, config, cache)
    assert estimate["requests"] == 1 and estimate["cached"] == 1
    assert estimate["prompt_tokens"] == 104 and estimate["completion_tokens_max"] == 1000
    assert estimate["cost_usd_max"] == pytest.approx((104 * 1.0 + 1000 * 2.0) / 1e6)
    assert estimate["prices_known"] is True


def test_config_from_settings_keeps_the_key_out_of_repr():
    from codeio.settings import Settings

    settings = Settings(llm_base_url="http://127.0.0.1:1/v1", llm_api_key=SECRET, llm_prices={MODEL: (0.5, 1.5)})
    config = LLMConfig.from_settings(settings, concurrency=8)
    assert config.api_key == SECRET and SECRET not in repr(config)
    assert config.prices == ((MODEL, 0.5, 1.5),) and config.concurrency == 8
    assert config.fail_on_finish_reasons == ("length", "content_filter")
    assert LLMConfig(prices={MODEL: (0.5, 1.5)}).prices == ((MODEL, 0.5, 1.5),)
    assert hash(config) == hash(LLMConfig.from_settings(settings, concurrency=8))


@pytest.mark.parametrize(
    "raw_body, headers",
    [
        (b"<html>bad gateway</html>", {"Content-Type": "text/html"}),
        (b"[]", {}),
        (b'"hello"', {}),
        (b'{"choices": null}', {}),
        (b'{"choices": [{"message": "not an object"}]}', {}),
        (b"", {}),
    ],
    ids=["html", "list", "string", "null-choices", "bad-choice", "empty"],
)
def test_every_malformed_shape_is_retried(raw_body, headers):
    handler = by_attempt([Reply(raw_body=raw_body, headers=headers), Reply(content="fine")])
    with FakeLLMServer(handler) as server:
        results, usage = OpenAIChatLLM(config_for(server)).complete([req("a")])
    assert results[0].ok and results[0].text == "fine" and usage.retries == 1


def test_connection_errors_end_in_a_recorded_failure():
    with FakeLLMServer(echo) as server:
        config = config_for(server, max_attempts=2)
    results, usage = OpenAIChatLLM(config).complete([req("a")])  # the server is gone
    assert not results[0].ok and results[0].attempts == 2
    assert results[0].error.startswith("connection") and "after 2 attempts" in results[0].error
    assert usage.failures_by_reason == {"connection": 1}


def test_an_answer_is_never_used_unless_it_is_in_the_response_cache(tmp_path):
    """A run killed right after ``complete`` returned must find every answer it used in
    the cache. The store's cache folders are made immutable (chattr +i: even root
    cannot add files there, reads still work): answers that cannot be written come
    back as transient ``cache_write`` failures, and the next run asks for them again."""
    import shutil
    import subprocess

    from codeio.llm.base import is_transient_failure
    from storage.store import DataStore

    if shutil.which("chattr") is None:
        pytest.skip("chattr (e2fsprogs) is not installed")
    store = DataStore(str(tmp_path / "store"))
    cache = store.kv("llm")
    folders = [tmp_path / "store" / "cache" / "llm" / f"{i:02x}" for i in range(256)]
    for folder in folders:
        folder.mkdir(parents=True)
    locked = subprocess.run(["chattr", "+i", *map(str, folders)], capture_output=True, text=True)
    if locked.returncode != 0:
        pytest.skip(f"this filesystem has no immutable flag: {locked.stderr.strip()}")
    requests = [req(f"q{i}") for i in range(6)]
    try:
        with FakeLLMServer(echo) as server:
            results, usage = OpenAIChatLLM(config_for(server, concurrency=3), cache).complete(requests)
            assert len(server.requests) == 6
        assert not [r for r, q in zip(results, requests) if r.ok and cache.get(q.cache_key()) is None]
        assert all(not r.ok and r.error.startswith("cache_write:") and is_transient_failure(r.error) for r in results)
        assert usage.failures_by_reason == {"cache_write": 6}
    finally:
        subprocess.run(["chattr", "-i", *map(str, folders)], check=True)
    with FakeLLMServer(echo) as server:  # the store is writable again: asked once more, then cached
        results, _ = OpenAIChatLLM(config_for(server), cache).complete(requests)
        assert len(server.requests) == 6
    assert all(r.ok and cache.get(q.cache_key()) is not None for r, q in zip(results, requests))
