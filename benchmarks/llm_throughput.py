"""Teacher-call throughput: the synthesize stage through OpenAIChatLLM at
increasing concurrency, next to the reference scripts' scheme, against the same
local OpenAI-compatible endpoint with a fixed latency.

    .venv/bin/python benchmarks/llm_throughput.py [--latency 0.2] [--levels 8,16,32,64]

The endpoint is ``tests/llm_server.py`` in a child process (so this process's
CPU time is the client's alone). Prompts are real output-prediction prompts
built from the authors' toy functions (``../shared``) when present, else
synthetic ones of similar size; answers are ~150-word chains of thought.

Baseline, the reference scripts' scheme in this process: a pool of 10 threads,
one submit every 0.1 s, a new (sync) OpenAI client built for every attempt, up
to 3 attempts with a 5 s sleep between them. The reference runs 10 such
processes; one process's worth is what is compared, as our client also runs in
one process.

Last line: ``achieved_rps=<x> ideal_rps=<concurrency/latency> efficiency=<x> baseline_rps=<x>``
(figures at the top concurrency level).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import openai  # noqa: E402

from codeio.llm.base import ChatRequest  # noqa: E402
from codeio.llm.openai_client import LLMConfig, OpenAIChatLLM, close_all_clients  # noqa: E402
from llm_server import spawn_server_process  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "codeio-toy" / "unified_with_ios.jsonl"
MODEL = "bench-model"
ANSWER = (
    "Let us follow the computation step by step. " * 12
    + "The loop visits every element once, accumulating the running total, and the final value is returned. " * 4
    + '\n\n```json\n{"output": 42}\n```'
)
BASELINE_THREADS = 10
BASELINE_PACING_S = 0.1
BASELINE_ATTEMPTS = 3
BASELINE_RETRY_SLEEP_S = 5.0


def instance_records(count: int) -> list[dict[str, Any]]:
    """INSTANCE rows (codeio.records) with real prediction prompts where possible."""
    rows = []
    if DATA.exists():
        rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    try:
        from codeio import prompting

        templates = prompting.PromptTemplates.load()
    except (ImportError, ValueError, OSError):
        prompting = None
    records = []
    for i in range(count):
        row = rows[i % len(rows)] if rows else None
        pair = row["ios"][(i // max(1, len(rows))) % len(row["ios"])] if row else {"input": {"n": i}, "output": i}
        task = "output" if i % 2 == 0 else "input"
        given = json.dumps(pair["input"] if task == "output" else pair["output"])
        if row is not None and prompting is not None:
            messages = prompting.build_prediction_messages(task, row["problem_description"], row["io_requirements"],
                                                           given, row["refcode"], "prompt", templates)
        else:
            messages = [{"role": "user", "content": f"Question {i}. " + "Describe the computation. " * 200 + given}]
        # a unique suffix: every request is a distinct instance, as in a real shard
        messages[0]["content"] += f"\n\n(instance {i})"
        records.append({
            "instance_id": f"bench-{i}", "function_id": f"f{i}", "source_id": f"s{i}", "pair_id": f"p{i}",
            "pair_index": 0, "task": task, "messages": json.dumps(messages), "template_version": "v1",
            "variant": "prompt", "main_code": "", "input": json.dumps(pair["input"]),
            "output": json.dumps(pair["output"]), "origin": "{}",
        })
    return records


def run_stage(records: list[dict[str, Any]], llm: OpenAIChatLLM) -> int:
    """Round 1 of the synthesize stage when it is importable, else the same requests directly."""
    try:
        from codeio.stages.synthesize import TeacherConfig, synthesize_shard
    except ImportError:
        requests = [ChatRequest(messages=tuple(json.loads(r["messages"])), model=MODEL) for r in records]
        results, _ = llm.complete(requests)
        return sum(r.ok for r in results)
    out = synthesize_shard(records, TeacherConfig(teacher="openai", model=MODEL), 1, {}, llm=llm)
    return out.stats["answered"]


def measure_ours(base_url: str, concurrency: int, latency: float, seconds: float, backend: str) -> dict[str, float]:
    config = LLMConfig(base_url=base_url, api_key="bench-key", model=MODEL, concurrency=concurrency, timeout=30,
                       http_backend=backend)
    llm = OpenAIChatLLM(config)
    run_stage(instance_records(concurrency * 2), llm)  # warm: connections, imports
    count = max(4 * concurrency, int(seconds * concurrency / latency))
    records = instance_records(count)
    cpu0, t0 = time.process_time(), time.perf_counter()
    answered = run_stage(records, llm)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    close_all_clients()
    if answered != count:
        raise RuntimeError(f"only {answered} of {count} requests answered")
    return {"requests": count, "rps": count / wall, "cpu_ms_per_request": 1000 * cpu / count}


def measure_baseline(base_url: str, count: int) -> dict[str, float]:
    records = instance_records(count)

    def call(record: dict[str, Any]) -> bool:
        for attempt in range(BASELINE_ATTEMPTS):
            try:
                client = openai.OpenAI(base_url=base_url, api_key="bench-key")  # a new client per attempt
                response = client.chat.completions.create(
                    model=MODEL, messages=json.loads(record["messages"]), temperature=0.7, max_tokens=4096
                )
                return bool(response.choices[0].message.content)
            except openai.OpenAIError:
                time.sleep(BASELINE_RETRY_SLEEP_S)
        return False

    cpu0, t0 = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=BASELINE_THREADS) as pool:
        futures = []
        for record in records:
            futures.append(pool.submit(call, record))
            time.sleep(BASELINE_PACING_S)
        answered = sum(f.result() for f in futures)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if answered != count:
        raise RuntimeError(f"baseline: only {answered} of {count} requests answered")
    return {"requests": count, "rps": count / wall, "cpu_ms_per_request": 1000 * cpu / count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.2, help="server latency per request, seconds")
    parser.add_argument("--levels", default="8,16,32,64", help="client concurrency levels, comma separated")
    parser.add_argument("--seconds", type=float, default=4.0, help="target duration of each level")
    parser.add_argument("--baseline-requests", type=int, default=60)
    parser.add_argument("--backend", default="httpx", choices=("httpx", "aiohttp"), help="LLMConfig.http_backend")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    print(f"endpoint latency {args.latency * 1000:.0f} ms; http backend {args.backend}; prompts from {'toy data' if DATA.exists() else 'synthetic'}")
    with spawn_server_process(args.latency, ANSWER) as server:
        baseline = measure_baseline(server.base_url, args.baseline_requests)
        print(f"baseline (10 threads, 0.1 s pacing, client per attempt): {baseline['rps']:.1f} req/s, "
              f"client CPU {baseline['cpu_ms_per_request']:.2f} ms/request")
        print(f"{'concurrency':>11} {'requests':>8} {'ideal rps':>9} {'rps':>8} {'efficiency':>10} {'cpu ms/req':>10}")
        last: dict[str, float] = {}
        for level in levels:
            ours = measure_ours(server.base_url, level, args.latency, args.seconds, args.backend)
            ideal = level / args.latency
            last = {"rps": ours["rps"], "ideal": ideal}
            print(f"{level:>11} {ours['requests']:>8} {ideal:>9.1f} {ours['rps']:>8.1f} {ours['rps'] / ideal:>10.3f} "
                  f"{ours['cpu_ms_per_request']:>10.2f}")
    ratio = last["rps"] / baseline["rps"]
    print(f"top concurrency vs baseline: {ratio:.1f}x")
    print(f"achieved_rps={last['rps']:.2f} ideal_rps={last['ideal']:.2f} efficiency={last['rps'] / last['ideal']:.3f} "
          f"baseline_rps={baseline['rps']:.2f}")


if __name__ == "__main__":
    main()
