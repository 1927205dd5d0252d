"""`codeio run --dry-run`: what a run would ask of the LLM, before spending anything.

Counts come from reading the sources (nothing is executed or requested);
token counts are estimates (about 4 characters a token), completions use the
assumed lengths below, and revision rounds are bounded above by assuming
every first answer is wrong unless a pass rate is given.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from codeio.settings import Settings
from codeio.sources import parse_source_specs, read_sources

CHARS_PER_TOKEN = 4
NORMALIZE_PROMPT_OVERHEAD_CHARS = 2500
PREDICTION_PROMPT_OVERHEAD_CHARS = 900
ASSUMED_NORMALIZE_COMPLETION_TOKENS = 900
ASSUMED_ANSWER_COMPLETION_TOKENS = 600
TASK_COUNTS = {"both": 2, "input": 1, "output": 1}


def estimate_run(settings: Settings, sources: list[str], *, limit: int | None, teacher: str | None,
                 revision_rounds: int, pairs_per_function: int, task_mix: str,
                 first_round_pass_rate: float = 0.0) -> dict[str, Any]:
    from flows.pipeline import resolve_teacher

    teacher = resolve_teacher(settings, teacher)
    endpoint = teacher == "openai" or bool(settings.llm_base_url)
    tasks = TASK_COUNTS[task_mix]
    raw_files = unified_rows = rejected = instances = 0
    normalize_chars = prompt_chars = 0
    for outcome in read_sources(parse_source_specs(sources), limit):
        record = outcome.record
        if record is None:
            rejected += 1
            continue
        if record["kind"] == "raw":
            raw_files += 1
            normalize_chars += len(record["content"]) + NORMALIZE_PROMPT_OVERHEAD_CHARS
            if endpoint:
                count = pairs_per_function * tasks
                instances += count
                prompt_chars += count * (len(record["content"]) + PREDICTION_PROMPT_OVERHEAD_CHARS)
        else:
            unified_rows += 1
            unified = json.loads(record["unified"])
            count = min(pairs_per_function, len(unified.get("ios") or [])) * tasks
            instances += count
            text = len(record["content"]) + len(unified.get("problem_description") or "") + len(unified.get("io_requirements") or "")
            prompt_chars += count * (text + PREDICTION_PROMPT_OVERHEAD_CHARS)
    normalize_requests = raw_files if endpoint else 0
    synth_requests = instances if teacher == "openai" else 0
    revise_requests = 0
    revise_prompt_tokens = 0
    wrong = synth_requests * (1.0 - first_round_pass_rate)
    per_prompt = (prompt_chars / CHARS_PER_TOKEN / instances) if instances else 0
    for round_number in range(1, revision_rounds + 1):
        revise_requests += int(round(wrong))
        revise_prompt_tokens += int(wrong * (per_prompt + round_number * ASSUMED_ANSWER_COMPLETION_TOKENS * 1.2))
    prompt_tokens = int(normalize_requests and normalize_chars / CHARS_PER_TOKEN) \
        + int(synth_requests and prompt_chars / CHARS_PER_TOKEN) + revise_prompt_tokens
    completion_tokens = normalize_requests * ASSUMED_NORMALIZE_COMPLETION_TOKENS \
        + (synth_requests + revise_requests) * ASSUMED_ANSWER_COMPLETION_TOKENS
    price = settings.llm_prices.get(settings.llm_model)
    cost = None if price is None else (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000
    return {
        "teacher": teacher, "model": settings.llm_model if teacher == "openai" else "offline",
        "raw_files": raw_files, "unified_functions": unified_rows, "rejected_at_ingest": rejected,
        "instances_estimate": instances,
        "requests": {"normalize": normalize_requests, "synthesize": synth_requests,
                     "revise_upper_bound": revise_requests,
                     "total": normalize_requests + synth_requests + revise_requests},
        "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
        "cost_usd": None if cost is None else round(cost, 4),
        "note": "estimate before execution: pairs and functions rejected later reduce it; "
                "cached responses are not requested again",
    }


def render_estimate(estimate: dict[str, Any], console: Console) -> None:
    table = Table(title=f"dry run: teacher {estimate['teacher']} ({estimate['model']})")
    table.add_column("item")
    table.add_column("estimate", justify="right")
    for name in ("raw_files", "unified_functions", "rejected_at_ingest", "instances_estimate"):
        table.add_row(name, str(estimate[name]))
    for name, value in estimate["requests"].items():
        table.add_row(f"requests: {name}", str(value))
    table.add_row("prompt tokens", str(estimate["prompt_tokens"]))
    table.add_row("completion tokens", str(estimate["completion_tokens"]))
    cost = estimate["cost_usd"]
    table.add_row("cost (USD)", "no price set (CODEIO_LLM_PRICES)" if cost is None else f"{cost:.4f}")
    console.print(table)
    console.print(estimate["note"])
