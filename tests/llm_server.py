"""A real OpenAI-compatible chat server on 127.0.0.1, scriptable per test.

It serves ``POST /v1/chat/completions`` (non-streaming) and ``GET /v1/models``
over real HTTP (aiohttp in a background thread with its own event loop, so
hundreds of requests can be in flight at once; delays never block other
requests). Every behaviour of the LLM layer is tested through the real openai
client against it, and the pipeline's end-to-end tests use it as the teacher.

API (small on purpose)::

    def handler(body: dict, info: AttemptInfo) -> Reply: ...

    with FakeLLMServer(handler) as server:      # or server.start() / server.stop()
        server.base_url                          # "http://127.0.0.1:PORT/v1"
        server.requests                          # JSON bodies received (a copy, thread-safe)
        server.max_in_flight                     # most requests seen in flight at once
        server.replies_by_status                 # {200: n, 429: n, ...} as answered

``Reply(content, finish_reason="stop", status=200, delay_s=0.0, headers={},
raw_body=None, prompt_tokens=None, completion_tokens=None)``: ``status != 200``
sends an OpenAI-style error body (``content`` is its message); ``raw_body``
replaces the whole body (malformed replies); token counts default to word
counts of the messages and of the answer. ``AttemptInfo`` tells the handler
the request's global index (0-based), which attempt of the same prompt this is
(1-based; the prompt is the model plus the messages) and the prompt's key.

Helper handlers (each returns a handler): :func:`fixed`, :func:`by_attempt`
(a sequence of replies per prompt), :func:`rate_limited`, :func:`server_error`,
:func:`hang`, :func:`truncated`, :func:`malformed`, :func:`sliding_window_limit`
(429 above N requests per window), :func:`wrong_answers` (a seeded fraction of
prompts gets another handler's answer) and :func:`fault_injector`, which fails
a seeded, deterministic fraction of requests in each listed way
(:data:`FAULT_KINDS`: 429 with Retry-After, 500, hang, malformed body,
``finish_reason=length`` with half the answer). ``last_user_message(body)``
helps handlers key on the question; ``set_handler`` swaps the script.

The module is importable as ``llm_server`` (pytest puts ``tests/`` on
``sys.path``). ``spawn_server_process`` runs a fixed-latency server in a child
process for benchmarks, so the client's CPU is measured alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from aiohttp import web

DEFAULT_MODEL = "fake-model"
FAULT_KINDS = ("429", "500", "hang", "malformed", "length")
MALFORMED_BODY = b'{"id": "chatcmpl-broken", "choices": [{"index": 0, "mess'
HANG_SECONDS = 3600.0  # a hang lasts until the client gives up or the server stops


@dataclass(frozen=True)
class Reply:
    content: str = ""
    finish_reason: str = "stop"
    status: int = 200
    delay_s: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)
    raw_body: bytes | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class AttemptInfo:
    index: int  # global 0-based request number on this server
    attempt: int  # 1-based: how many requests with this prompt (model + messages) so far
    prompt_key: str  # sha256 of model + messages


Handler = Callable[[dict[str, Any], AttemptInfo], Reply]


def prompt_key(body: Mapping[str, Any]) -> str:
    blob = json.dumps([body.get("model"), body.get("messages")], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def last_user_message(body: Mapping[str, Any]) -> str:
    """The text of the last user message of a request body (handlers key on it)."""
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def _words(text: str) -> int:
    return len(text.split())


class FakeLLMServer:
    """The server; a context manager. ``port=0`` picks a free port."""

    def __init__(self, handler: Handler, *, model: str = DEFAULT_MODEL, port: int = 0) -> None:
        self._handler = handler
        self._model = model
        self._port = port
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._attempts: dict[str, int] = {}
        self._by_status: dict[int, int] = {}
        self._in_flight = 0
        self._max_in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> "FakeLLMServer":
        if self._thread is not None:
            return self
        ready = threading.Event()
        errors: list[BaseException] = []
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._serve())
            except BaseException as exc:  # reported to start() below
                errors.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-llm-server", daemon=True)
        self._thread.start()
        ready.wait(30)
        if errors:
            raise RuntimeError(f"fake LLM server failed to start: {errors[0]!r}")
        return self

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port, backlog=1024)
        await site.start()
        sockets = site._server.sockets if site._server is not None else []  # noqa: SLF001 (aiohttp has no public accessor)
        self._port = sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        loop = self._loop

        async def shutdown() -> None:
            if self._stopping is not None:
                self._stopping.set()  # releases hanging handlers
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(30)
        loop.close()
        self._thread = None
        self._loop = None

    def __enter__(self) -> "FakeLLMServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- observation -------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests)

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    @property
    def replies_by_status(self) -> dict[int, int]:
        with self._lock:
            return dict(self._by_status)

    def set_handler(self, handler: Handler) -> None:
        self._handler = handler

    # -- HTTP --------------------------------------------------------------
    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": self._model, "object": "model", "created": 0, "owned_by": "codeio-tests"}]}
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "request body is not JSON", "invalid_request_error")
        with self._lock:
            index = len(self._requests)
            self._requests.append(body)
            key = prompt_key(body)
            attempt = self._attempts.get(key, 0) + 1
            self._attempts[key] = attempt
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            reply = self._handler(body, AttemptInfo(index=index, attempt=attempt, prompt_key=key))
            if reply.delay_s > 0 and self._stopping is not None:
                try:
                    await asyncio.wait_for(self._stopping.wait(), reply.delay_s)
                except asyncio.TimeoutError:
                    pass
            response = self._render(body, reply)
        finally:
            with self._lock:
                self._in_flight -= 1
        with self._lock:
            self._by_status[reply.status] = self._by_status.get(reply.status, 0) + 1
        return response

    def _render(self, body: Mapping[str, Any], reply: Reply) -> web.Response:
        headers = dict(reply.headers)
        if reply.raw_body is not None:
            headers.setdefault("Content-Type", "application/json")
            return web.Response(status=reply.status, body=reply.raw_body, headers=headers)
        if reply.status != 200:
            kind = "rate_limit_error" if reply.status == 429 else "server_error" if reply.status >= 500 else "invalid_request_error"
            return _error(reply.status, reply.content or f"error {reply.status}", kind, headers)
        prompt_text = " ".join(
            m.get("content") if isinstance(m.get("content"), str) else "" for m in body.get("messages") or []
        )
        prompt_tokens = reply.prompt_tokens if reply.prompt_tokens is not None else _words(prompt_text)
        completion_tokens = reply.completion_tokens if reply.completion_tokens is not None else _words(reply.content)
        payload = {
            "id": f"chatcmpl-{random.getrandbits(48):012x}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self._model),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.content},
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        return web.json_response(payload, headers=headers)


def _error(status: int, message: str, kind: str, headers: Mapping[str, str] | None = None) -> web.Response:
    body = {"error": {"message": message, "type": kind, "code": None, "param": None}}
    return web.json_response(body, status=status, headers=dict(headers or {}))


# -- helper handlers -------------------------------------------------------
def fixed(content: str = "ok", **reply_fields: Any) -> Handler:
    """Always the same answer (``reply_fields`` go to :class:`Reply`)."""
    reply = Reply(content=content, **reply_fields)
    return lambda body, info: reply


def by_attempt(replies: Sequence[Reply | str]) -> Handler:
    """The n-th request for the same prompt gets ``replies[n-1]`` (the last one repeats)."""
    items = [Reply(content=r) if isinstance(r, str) else r for r in replies]
    if not items:
        raise ValueError("by_attempt needs at least one reply")
    return lambda body, info: items[min(info.attempt, len(items)) - 1]


def rate_limited(then: Handler, *, times: int = 1, retry_after_s: float = 0.1, headers: Mapping[str, str] | None = None) -> Handler:
    """429 with ``Retry-After`` for the first ``times`` attempts of each prompt, then ``then``."""
    extra = {"Retry-After": f"{retry_after_s:g}", **(headers or {})}
    reply = Reply(content="Rate limit reached, retry later", status=429, headers=extra)
    return lambda body, info: reply if info.attempt <= times else then(body, info)


def server_error(then: Handler, *, times: int = 1, status: int = 500) -> Handler:
    """An HTTP error (500 unless ``status``) for the first ``times`` attempts of each prompt."""
    reply = Reply(content="internal error", status=status)
    return lambda body, info: reply if info.attempt <= times else then(body, info)


def hang(then: Handler, *, times: int = 1, seconds: float = HANG_SECONDS) -> Handler:
    """No answer for ``seconds`` (past any client timeout) for the first ``times`` attempts."""

    def handle(body: dict[str, Any], info: AttemptInfo) -> Reply:
        if info.attempt <= times:
            return Reply(content="too late", delay_s=seconds)
        return then(body, info)

    return handle


def truncated(content: str = "partial answer") -> Handler:
    """A reply cut by the generation limit (``finish_reason=length``)."""
    return fixed(content, finish_reason="length")


def malformed(then: Handler, *, times: int = 1, raw_body: bytes = MALFORMED_BODY) -> Handler:
    """A 200 whose body is not valid JSON, for the first ``times`` attempts of each prompt."""
    reply = Reply(raw_body=raw_body)
    return lambda body, info: reply if info.attempt <= times else then(body, info)


def sliding_window_limit(then: Handler, *, max_requests: int, window_s: float = 1.0) -> Handler:
    """Answer 429 whenever more than ``max_requests`` arrived within the last ``window_s``."""
    lock = threading.Lock()
    arrivals: list[float] = []

    def handle(body: dict[str, Any], info: AttemptInfo) -> Reply:
        now = time.monotonic()
        with lock:
            arrivals.append(now)
            while arrivals and arrivals[0] < now - window_s:
                arrivals.pop(0)
            over = len(arrivals) > max_requests
        if over:
            return Reply(content="window limit", status=429, headers={"Retry-After": f"{window_s:g}"})
        return then(body, info)

    return handle


def _unit(seed: int, *parts: object) -> float:
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def fault_injector(
    then: Handler,
    *,
    fraction: float = 0.25,
    kinds: Sequence[str] = FAULT_KINDS,
    seed: int = 0,
    hang_s: float = HANG_SECONDS,
    retry_after_s: float = 0.05,
) -> Handler:
    """Fail ``fraction`` of requests, spread over ``kinds`` (see :data:`FAULT_KINDS`).

    The draw depends on (seed, prompt, attempt) only, not on arrival order, so a
    run is reproducible whatever the client's concurrency."""
    unknown = set(kinds) - set(FAULT_KINDS)
    if unknown:
        raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
    kinds = tuple(kinds)

    def handle(body: dict[str, Any], info: AttemptInfo) -> Reply:
        if not kinds or _unit(seed, info.prompt_key, info.attempt, "fail") >= fraction:
            return then(body, info)
        kind = kinds[int(_unit(seed, info.prompt_key, info.attempt, "kind") * len(kinds))]
        if kind == "429":
            return Reply(content="slow down", status=429, headers={"Retry-After": f"{retry_after_s:g}"})
        if kind == "500":
            return Reply(content="boom", status=500)
        if kind == "hang":
            return Reply(content="never", delay_s=hang_s)
        if kind == "malformed":
            return Reply(raw_body=MALFORMED_BODY)
        good = then(body, info)
        cut = good.content[: max(1, len(good.content) // 2)]
        return Reply(content=cut, finish_reason="length")

    return handle


def wrong_answers(right: Handler, wrong: Handler, *, fraction: float = 0.3, seed: int = 0) -> Handler:
    """``wrong`` for a seeded ``fraction`` of prompts (the same prompts on every attempt), else ``right``."""
    return lambda body, info: wrong(body, info) if _unit(seed, info.prompt_key, "wrong") < fraction else right(body, info)


# -- a server in a child process (benchmarks) -------------------------------
def _serve_in_child(latency_s: float, content: str, conn: Any) -> None:
    server = FakeLLMServer(fixed(content, delay_s=latency_s)).start()
    conn.send(server.port)
    conn.recv()  # blocks until the parent asks to stop
    server.stop()


class ServerProcess:
    """A fixed-latency :class:`FakeLLMServer` in a child process (``stop()`` ends it)."""

    def __init__(self, latency_s: float, content: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve_in_child, args=(latency_s, content, child), daemon=True)
        self._process.start()
        if not self._conn.poll(60):
            self._process.kill()
            raise RuntimeError("fake LLM server process did not start")
        self.port: int = self._conn.recv()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        try:
            self._conn.send("stop")
        except (BrokenPipeError, OSError):
            pass
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def spawn_server_process(latency_s: float, content: str = '{"output": 1}') -> ServerProcess:
    return ServerProcess(latency_s, content)
