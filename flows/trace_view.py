"""Human-readable rendering of a sample's lineage chain (full values, no truncation)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.text import Text


def _runs(dataset: dict[str, Any] | None) -> str:
    if not dataset:
        return ""
    runs = ", ".join(f"{r.get('run_id') or r.get('id')} ({r.get('role', '')})" for r in dataset.get("runs") or [])
    return f"dataset {dataset['stage']}/{dataset['key']}  runs: {runs or '-'}"


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=1)


def _panel(body: str, title: str) -> Panel:
    """Values are code and data: shown literally, never read as Rich markup."""
    return Panel(Text(body), title=title, expand=True)


def render_chain(chain: dict[str, Any], console: Console) -> None:
    source, function, pair = chain.get("source"), chain.get("function"), chain.get("pair")
    instance, sample = chain.get("instance"), chain["sample"]
    datasets = chain.get("datasets", {})
    if source:
        console.print(_panel(f"source_id: {source['source_id']}\nsource: {source['source_name']}  kind: {source['kind']}\n"
                            f"origin: {_value(source['origin'])}\n{_runs(datasets.get('sources'))}\n\n{source['content']}",
                            title="1. source file"))
    if function:
        console.print(_panel(f"function_id: {function['function_id']}\nnormalized by: {function['teacher']}"
                            f"  llm call: {function.get('llm_call_id') or '-'}\n{_runs(datasets.get('functions'))}\n\n"
                            f"Problem statement:\n{function['problem_statement']}\n\nI/O description:\n"
                            f"{function['io_description']}\n\nMain code:\n{function['main_code']}",
                            title="2. unified function"))
    if pair:
        console.print(_panel(f"pair_id: {pair['pair_id']}  index: {pair['pair_index']}  determinism checked: "
                            f"{pair['determinism_checked']}\ninput: {_value(pair['input'])}\noutput: {_value(pair['output'])}\n"
                            f"{_runs(datasets.get('pairs'))}", title="3. input/output pair"))
    if instance:
        console.print(_panel(f"instance_id: {instance['instance_id']}  task: {instance['task']}  template: "
                            f"{instance['template_version']}  code placement: {instance['variant']}\n"
                            f"{_runs(chain.get('instance_dataset'))}\n\n{_value(instance['messages'])}",
                            title="4. prompt"))
    for turn in chain.get("turns", []):
        response, verdict = turn["response"], turn.get("verdict") or {}
        console.print(_panel(f"teacher: {response['teacher']}  model: {response['model']}  finish: "
                            f"{response['finish_reason']}  ok: {response['ok']}  tokens: {response['prompt_tokens']}+"
                            f"{response['completion_tokens']}\n{_runs(turn['response_dataset'])}\n\n{response['text']}\n\n"
                            f"verdict: {verdict.get('status')}\nfeedback: {verdict.get('feedback')}\n"
                            f"{_runs(turn['verdict_dataset'])}", title=f"5.{turn['round']} answer, round {turn['round']}"))
    console.print(_panel(f"sample_id: {sample['sample_id']}\nvariant: {sample['variant']}\nverified: {sample['verified']}"
                        f"  final status: {sample['final_status']}\n{_runs(chain.get('sample_dataset'))}",
                        title="6. sample"))
