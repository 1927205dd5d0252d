"""The end-of-run summary: counts per stage, rejects by reason, pass rate per
revision round, LLM tokens and cost. Printed by the CLI, published as Prefect
artifacts, stored with the run in lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from codeio.sandbox.isolation import merge_reports, warning_lines

LLM_FIELDS = ("requests", "cached", "failed", "prompt_tokens", "completion_tokens", "cost_usd", "retries")


def round_table(stages: list[dict[str, Any]], stage_stats: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rounds = []
    for stage in stages:
        if stage["stage"] != "verify":
            continue
        counts: dict[str, int] = {}
        for shard in stage_stats.get(stage["label"], []):
            for status, n in (shard.get("verdicts") or {}).items():
                counts[status] = counts.get(status, 0) + n
        answered = sum(counts.values())
        success = counts.get("success", 0)
        rounds.append({
            "round": int(stage["label"].rsplit("r", 1)[-1]),
            "answered": answered,
            "success": success,
            "pass_rate": round(success / answered, 4) if answered else None,
            "statuses": {k: v for k, v in sorted(counts.items()) if v},
        })
    return rounds


def build_summary(orchestrator: Any, *, run_id: str, store: Any, samples: Any, exported: dict[str, str],
                  teacher: str, prices: dict[str, Any]) -> dict[str, Any]:
    stages = [s.as_dict() for s in orchestrator.stages]
    stage_stats = {s.label: s.stats for s in orchestrator.stages}
    llm: dict[str, Any] = {name: 0 for name in LLM_FIELDS}
    for stage in stages:
        for name in LLM_FIELDS:
            llm[name] += (stage["llm"] or {}).get(name, 0) or 0
    llm["cost_usd"] = round(float(llm["cost_usd"]), 6)
    final = next(s for s in stages if s["stage"] == "assemble")
    verified = sum(int(shard.get("verified", 0)) for shard in stage_stats[final["label"]])
    return {
        "run_id": run_id,
        "store": store.url,
        "teacher": teacher,
        "stages": stages,
        "rounds": round_table(stages, stage_stats),
        "llm": llm,
        "samples": final["out"],
        "verified_samples": verified,
        "samples_dataset": {"stage": samples.stage, "key": samples.key, "uri": final["uri"]},
        "exported": exported,
        "reconciled": all(stage_reconciles(s) for s in stages),
        # transient LLM failures (429/5xx/timeouts/budget) kept in this run's data:
        # the next run of the same command retries exactly those calls
        "retryable": sum(int(s.get("retryable", 0)) for s in stages),
        "sandbox": sandbox_summary(stages),
    }


def sandbox_summary(stages: list[dict[str, Any]]) -> dict[str, Any]:
    """The isolation of the sandboxes that ran this run's code, over every stage that
    ran code now: modes, shards, each missing guarantee (name, the kernel's reason,
    what is lost, shards without it) and the stages concerned."""
    ran = [stage for stage in stages if stage.get("sandbox")]
    merged = merge_reports([stage["sandbox"] for stage in ran])
    merged["stages"] = [stage["label"] for stage in ran if stage["sandbox"].get("missing")]
    return merged


def sandbox_warning(summary: dict[str, Any]) -> list[str]:
    """The warning block of a run whose sandboxes lacked guarantees (empty: none)."""
    sandbox = summary.get("sandbox") or {}
    lines = warning_lines(sandbox)
    if lines and sandbox.get("stages"):
        lines.insert(1, f"  stages: {', '.join(sandbox['stages'])}")
    return lines


def sandbox_line(summary: dict[str, Any]) -> str:
    """One line for the summary: the mode, and complete or what is missing."""
    sandbox = summary.get("sandbox") or {}
    if not sandbox.get("shards"):
        return "sandbox: no code ran in this run (every code stage reused)"
    modes = ", ".join(sandbox.get("modes") or ["unknown mode"])
    if sandbox.get("complete"):
        return f"sandbox: {modes}, isolation complete ({sandbox['shards']} shard(s) ran code)"
    names = ", ".join(item["guarantee"] for item in sandbox["missing"])
    return f"sandbox: {modes}, ISOLATION INCOMPLETE, missing: {names}"


def stage_reconciles(stage: dict[str, Any]) -> bool:
    """in = out + rejected (the sum over its reasons), in the unit the stage reads:
    sources for normalize, functions for collect_io, pairs for build_prompts (whose
    pairs beyond K are ``not_sampled``); ``written`` is the dataset's own unit."""
    return stage["in"] == stage["out"] + stage["rejected"] == stage["out"] + sum(stage["rejects_by_reason"].values())


def _reasons(reasons: dict[str, int], width: int | None = 6) -> str:
    """The most frequent reasons first; all of them when ``width`` is None."""
    items = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    width = len(items) if width is None else width
    text = ", ".join(f"{k}={v}" for k, v in items[:width])
    return text + (f", +{len(items) - width} more" if len(items) > width else "")


def print_reasons_whole(stages: list[dict[str, Any]], console: Console) -> None:
    """Off a terminal (logs, CI, pipes) every reject reason is printed whole, one
    stage a line, never cut or wrapped by the table."""
    if console.is_terminal:
        return
    for stage in stages:
        if stage["rejects_by_reason"]:
            console.print(f"rejects {stage['label']}: {_reasons(stage['rejects_by_reason'], None)}",
                          soft_wrap=True, markup=False, highlight=False)


# left out by choice, never why a run produced nothing (build_prompts' pairs beyond K)
SELECTION_REASONS = frozenset({"not_sampled"})


def top_reasons(stages: list[dict[str, Any]], count: int = 5) -> list[tuple[str, str, int]]:
    """(stage, reason, count) of the most frequent rejects over every stage."""
    items = [(stage["label"], reason, n) for stage in stages for reason, n in stage["rejects_by_reason"].items()
             if reason not in SELECTION_REASONS]
    return sorted(items, key=lambda item: -item[2])[:count]


# what to change when a reason drops everything (reason prefix -> advice)
ADVICE = {
    "needs_llm": "raw files need an LLM to normalize: set CODEIO_LLM_BASE_URL (and CODEIO_LLM_API_KEY) or "
                 "--llm-base-url, or give unified rows",
    "missing_package": "install the package the code imports in the workers' environment",
    "too_few_pairs": "the functions gave under 2 input/output pairs: check their input generators",
    "python2": "pass codemix: {keep_python2: true} in the ingest options (normalization converts Python 2)",
    "low_edu_score": "lower pyedu.min_int_score in the ingest options",
    "low_reasoning_focus": "lower pyedu.min_reasoning in the ingest options",
    "judge_low_score": "lower pyedu_judge.min_score in the ingest options, or leave the judge off",
    "judge_malformed_verdict": "the judge's replies hold no 'SCORE: n' line: check the pyedu_judge template "
                               "(CODEIO_PROMPT_DIR) and the model",
    "judge_failed": "the judge's LLM calls failed: check the endpoint; transient failures are retried by a rerun",
    "contaminated": "the files overlap the evaluation sets given to decontam: check the sets or min_overlap",
    "exact_duplicate": "every file repeats another one: check the sources for copies",
    "near_duplicate": "raise dedup.threshold, or set dedup: {near: false}",
}
FILTER_ADVICE = "a CodeMix filter dropped them: relax the matching codemix threshold in the ingest options " \
                "(see codeio/ingest/filters.py for each default)"


def zero_output_advice(stages: list[dict[str, Any]]) -> list[str]:
    """Why a run produced nothing, and what to change: one line per top reason."""
    lines = []
    for label, reason, count in top_reasons(stages):
        head = reason.split(":", 1)[0]
        advice = ADVICE.get(head)
        if advice is None and label.startswith("ingest"):
            advice = FILTER_ADVICE
        lines.append(f"{label}: {count} x {reason}" + (f" -- {advice}" if advice else ""))
    return lines or ["no source row was read: check the --source paths"]


COUNTS_NOTE = "in = out + rejected, in the unit each stage reads; written: the records of its dataset"


def render_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"codeio run {summary['run_id']}  (teacher: {summary['teacher']})", show_lines=False)
    numbers = ("in", "out", "rejected", "written", "LLM req", "tokens")
    for column in ("stage", "in", "out", "rejected", "rejects by reason", "written", "state", "LLM req", "tokens"):
        table.add_column(column, justify="right" if column in numbers else "left")
    for stage in summary["stages"]:
        llm = stage["llm"] or {}
        tokens = (llm.get("prompt_tokens") or 0) + (llm.get("completion_tokens") or 0)
        state = "reused" if stage["reused"] else f"computed {stage['shards_computed']}/{stage['parts']}"
        table.add_row(stage["label"], str(stage["in"]), str(stage["out"]), str(stage["rejected"]),
                      _reasons(stage["rejects_by_reason"], 6 if console.is_terminal else None),
                      str(stage["written"]), state, str(llm.get("requests", 0) or 0), str(tokens))
    console.print(table)
    console.print(COUNTS_NOTE, style="dim")
    print_reasons_whole(summary["stages"], console)
    rounds = Table(title="pass rate per round")
    for column in ("round", "answered", "verified", "pass rate", "statuses"):
        rounds.add_column(column)
    for item in summary["rounds"]:
        rate = f"{item['pass_rate']:.1%}" if item["pass_rate"] is not None else "-"
        rounds.add_row(str(item["round"]), str(item["answered"]), str(item["success"]), rate, _reasons(item["statuses"]))
    console.print(rounds)
    llm = summary["llm"]
    console.print(f"LLM: {llm['requests']} requests ({llm['cached']} from cache, {llm['failed']} failed, "
                  f"{llm['retries']} retries), {llm['prompt_tokens']} prompt + {llm['completion_tokens']} completion "
                  f"tokens, ${llm['cost_usd']:.4f}")
    console.print(f"samples: {summary['samples']} ({summary['verified_samples']} verified)  "
                  f"dataset: {summary['samples_dataset']['uri']}")
    for fmt, path in summary["exported"].items():
        console.print(f"written {fmt}: {path}")
    line = sandbox_line(summary)
    console.print(f"[bold red]{escape(line)}[/bold red]" if (summary.get("sandbox") or {}).get("missing")
                  else escape(line), soft_wrap=True)
    if summary.get("retryable"):
        console.print(f"[yellow]{summary['retryable']} LLM call(s) failed transiently (rate limits, server errors, "
                      f"timeouts or the budget): run the same command again to retry only those; finished answers "
                      f"come from the cache.[/yellow]")


def summary_markdown(summary: dict[str, Any]) -> str:
    lines = [f"# codeio run `{summary['run_id']}`", "", f"teacher: {summary['teacher']}, store: `{summary['store']}`", "",
             "| stage | in | out | rejected | rejects by reason | written | state | dataset |",
             "|---|---|---|---|---|---|---|---|"]
    for stage in summary["stages"]:
        state = "reused" if stage["reused"] else "computed"
        lines.append(f"| {stage['label']} | {stage['in']} | {stage['out']} | {stage['rejected']} | "
                     f"{_reasons(stage['rejects_by_reason'], 10)} | {stage['written']} | {state} | `{stage['uri']}` |")
    lines += ["", COUNTS_NOTE]
    lines += ["", "| round | answered | verified | pass rate |", "|---|---|---|---|"]
    for item in summary["rounds"]:
        rate = f"{item['pass_rate']:.1%}" if item["pass_rate"] is not None else "-"
        lines.append(f"| {item['round']} | {item['answered']} | {item['success']} | {rate} |")
    llm = summary["llm"]
    lines += ["", f"LLM: {llm['requests']} requests, {llm['cached']} cached, {llm['failed']} failed; "
              f"{llm['prompt_tokens']} + {llm['completion_tokens']} tokens; ${llm['cost_usd']:.4f}",
              "", f"samples: {summary['samples']} ({summary['verified_samples']} verified) at "
              f"`{summary['samples_dataset']['uri']}`", "", sandbox_line(summary)]
    sandbox = summary.get("sandbox") or {}
    if sandbox.get("missing"):
        lines += ["", "## Sandbox isolation incomplete", "",
                  f"Stages: {', '.join(sandbox.get('stages') or [])}. Set `CODEIO_SANDBOX_REQUIRE_ISOLATION=true` to "
                  "make this an error; docs/SANDBOX.md lists what each mode isolates.", "",
                  "| missing guarantee | reason | what is lost | shards |", "|---|---|---|---|"]
        lines += [f"| {item['guarantee']} | {item['reason']} | {item['effect']} | {item['shards']} |"
                  for item in sandbox["missing"]]
    return "\n".join(lines)


def publish_artifacts(summary: dict[str, Any]) -> None:
    """Prefect artifacts for the UI: the summary (markdown), the stage table, dataset links."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is None:
        return
    create_markdown_artifact(markdown=summary_markdown(summary), key="codeio-summary",
                             description="codeio run summary")
    create_table_artifact(
        table=[{k: v for k, v in s.items() if k not in ("llm", "rejects_by_reason")} |
               {"rejects_by_reason": _reasons(s["rejects_by_reason"], 10)} for s in summary["stages"]],
        key="codeio-stages", description="records per stage")
    uri = summary["samples_dataset"]["uri"]
    link = uri if "://" in uri else Path(uri).resolve().as_uri()
    create_link_artifact(link=link, link_text="final samples", key="codeio-samples")
    for fmt, path in summary.get("exported", {}).items():
        target = path if "://" in path else Path(path).resolve().as_uri()
        create_link_artifact(link=target, link_text=f"exported samples ({fmt})", key=f"codeio-export-{fmt}")


def render_ingest_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"codeio ingest {summary['run_id']}")
    for column in ("stage", "in", "out", "rejected", "rejects by reason", "state"):
        table.add_column(column, justify="right" if column in ("in", "out", "rejected") else "left")
    for stage in summary["stages"]:
        state = "reused" if stage["reused"] else f"computed {stage['shards_computed']}/{stage['parts']}"
        table.add_row(stage["label"], str(stage["in"]), str(stage["out"]), str(stage["rejected"]),
                      _reasons(stage["rejects_by_reason"], 6 if console.is_terminal else None), state)
    console.print(table)
    print_reasons_whole(summary["stages"], console)
    rules = summary["kept_by_rule"]
    console.print("kept after each rule: " + ", ".join(f"{k}={v}" for k, v in rules.items())
                  + (" (raw: the files CodeMix and PyEdu-R judge; problems and unified rows pass them)"
                     if "raw" in rules and rules["raw"] < rules.get("read", 0) else ""), soft_wrap=True)
    if summary["contaminated"]:
        console.print("contaminated (source / eval set): " + _reasons(summary["contaminated"], None), soft_wrap=True)
    llm = summary.get("llm") or {}
    if llm:
        console.print(f"LLM: {llm.get('requests', 0)} requests ({llm.get('cached', 0)} from cache, "
                      f"{llm.get('failed', 0)} failed, {llm.get('retries', 0)} retries), {llm.get('prompt_tokens', 0)} "
                      f"prompt + {llm.get('completion_tokens', 0)} completion tokens, ${llm.get('cost_usd', 0):.4f}",
                      soft_wrap=True)
    console.print(f"rows read: {summary['rows_read']}, kept: {summary['kept']}, rejected: {summary['rejected']} "
                  f"(reconciled: {summary['reconciled']})  dataset: {summary['dataset']['uri']}", soft_wrap=True)


def ingest_markdown(summary: dict[str, Any]) -> str:
    lines = [f"# codeio ingest `{summary['run_id']}`", "", f"rows read {summary['rows_read']}, kept "
             f"{summary['kept']}, rejected {summary['rejected']}, reconciled: {summary['reconciled']}", "",
             "| stage | in | out | rejected | rejects by reason |", "|---|---|---|---|---|"]
    for stage in summary["stages"]:
        lines.append(f"| {stage['label']} | {stage['in']} | {stage['out']} | {stage['rejected']} | "
                     f"{_reasons(stage['rejects_by_reason'], None)} |")
    lines += ["", "| rule | files kept |", "|---|---|"]
    lines += [f"| {rule} | {count} |" for rule, count in summary["kept_by_rule"].items()]
    llm = summary.get("llm") or {}
    if llm:
        lines += ["", f"LLM: {llm.get('requests', 0)} requests, {llm.get('cached', 0)} cached, {llm.get('failed', 0)} "
                      f"failed; {llm.get('prompt_tokens', 0)} + {llm.get('completion_tokens', 0)} tokens; "
                      f"${llm.get('cost_usd', 0):.4f}"]
    if summary["contaminated"]:
        lines += ["", "| source / eval set | contaminated files |", "|---|---|"]
        lines += [f"| {name} | {count} |" for name, count in summary["contaminated"].items()]
    return "\n".join(lines)


def publish_ingest_artifacts(summary: dict[str, Any]) -> None:
    from prefect.artifacts import create_markdown_artifact
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is None:
        return
    create_markdown_artifact(markdown=ingest_markdown(summary), key="codeio-ingest",
                             description="codeio ingest summary")
