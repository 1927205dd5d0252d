"""How an evaluation report is shown: a console table, Markdown, Prefect
artifacts and a bar plot of pass@1 per group (both runs with --compare)."""

from __future__ import annotations

import io
from typing import Any, Mapping

from rich.console import Console
from rich.table import Table

from codeio.evaluation.scoring import flat_rows

FIG_HEIGHT_IN = 4.8
FIG_WIDTH_PER_BAR_IN = 0.45
MIN_FIG_WIDTH_IN = 6.0
DPI = 120
COLOURS = {"current": "#1565c0", "previous": "#9e9e9e"}


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _delta(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f} pts"


def _title(report: Mapping[str, Any]) -> str:
    return (f"codeio eval {report['run_id']}: {report['model']} ({report['teacher']}) on {report['benchmark_kind']} "
            f"{report['benchmark_sha256'][:12]}, prompts {report['prompt_version']}, n={report['samples_per_question']}")


def eval_markdown(report: Mapping[str, Any]) -> str:
    ks = report["scores"]["ks"]
    lines = [f"# {_title(report)}", "", f"benchmark: `{report['benchmark']}` ({report['rows']} rows, "
             f"{report['questions']} questions, {report['rejected_rows']} rows rejected)", "",
             "| group | task | count | " + " | ".join(f"pass@{k}" for k in ks) + " | unparseable |",
             "|---|---|---|" + "---|" * len(ks) + "---|"]
    for row in report["table"]:
        lines.append(f"| {row['group']} | {row['task']} | {row['count']} {row['unit']} | "
                     + " | ".join(_rate(row[f'pass@{k}']) for k in ks) + f" | {row['unparseable']} |")
    if report.get("comparison"):
        lines += ["", f"## compared with run `{report['compare_run_id']}` (pass@1)", "",
                  "| group | task | previous | current | difference |", "|---|---|---|---|---|"]
        for row in report["comparison"]:
            lines.append(f"| {row['group']} | {row['task']} | {_rate(row['previous'])} | {_rate(row['current'])} | "
                         f"{_delta(row['delta'])} |")
    llm = report["llm"]
    lines += ["", f"LLM: {llm['requests']} requests, {llm['cached']} cached, {llm['failed']} failed; "
              f"{llm['prompt_tokens']} + {llm['completion_tokens']} tokens; ${llm['cost_usd']:.4f}"]
    if report.get("plot"):
        lines += ["", f"plot: `{report['plot']}`"]
    return "\n".join(lines)


def render_eval(report: Mapping[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    ks = report["scores"]["ks"]
    table = Table(title=_title(report))
    for column in ("group", "task", "count", *(f"pass@{k}" for k in ks), "unparseable"):
        table.add_column(column, justify="left" if column in ("group", "task") else "right")
    for row in report["table"]:
        table.add_row(row["group"], row["task"], f"{row['count']} {row['unit']}",
                      *(_rate(row[f"pass@{k}"]) for k in ks), str(row["unparseable"]))
    console.print(table)
    if report.get("comparison"):
        side = Table(title=f"pass@1 compared with run {report['compare_run_id']}")
        for column in ("group", "task", "previous", "current", "difference"):
            side.add_column(column, justify="left" if column in ("group", "task") else "right")
        for row in report["comparison"]:
            side.add_row(row["group"], row["task"], _rate(row["previous"]), _rate(row["current"]),
                         _delta(row["delta"]))
        console.print(side)
    llm = report["llm"]
    console.print(f"{report['rows']} rows, {report['questions']} questions, {report['rejected_rows']} rows rejected "
                  f"{dict(report['rejects_by_reason']) if report['rejects_by_reason'] else ''}; LLM: {llm['requests']} requests ({llm['cached']} from "
                  f"cache, {llm['failed']} failed), ${llm['cost_usd']:.4f}")
    if report.get("retryable"):
        console.print(f"[yellow]{report['retryable']} answer(s) failed transiently and count as wrong: run the same "
                      f"command again to retry only those.[/yellow]")
    if report.get("plot"):
        console.print(f"plot: {report['plot']}")


def scores_png(report: Mapping[str, Any], previous: Mapping[str, Any] | None = None) -> bytes:
    """Bars of pass@1 per (group, task); with ``previous`` (an earlier eval result),
    its bars beside them."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure  # the OO API: no global pyplot state

    rows = [r for r in report["table"] if r["pass@1"] is not None]
    labels = [f"{r['group']} / {r['task']}" for r in rows]
    series = [("current", [r["pass@1"] for r in rows])]
    if previous is not None:
        before = {(r["group"], r["task"]): r["pass@1"] for r in flat_rows(previous["scores"])}
        series.insert(0, ("previous", [before.get((r["group"], r["task"])) or 0.0 for r in rows]))
    width = max(MIN_FIG_WIDTH_IN, FIG_WIDTH_PER_BAR_IN * len(rows) * len(series) + 2.0)
    figure = Figure(figsize=(width, FIG_HEIGHT_IN), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    bar = 0.8 / len(series)
    for index, (name, values) in enumerate(series):
        axes.bar([x + index * bar for x in range(len(rows))], values, bar, label=name, color=COLOURS[name])
    axes.set_xticks([x + bar * (len(series) - 1) / 2 for x in range(len(rows))], labels, fontsize=7, rotation=45,
                    ha="right", rotation_mode="anchor")
    axes.set_ylim(0, 1.0)
    axes.set_ylabel("pass@1")
    axes.set_title(_title(report), fontsize=8)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def publish_eval_artifacts(report: Mapping[str, Any]) -> None:
    """The Markdown report, the scores table and a link to the plot."""
    from pathlib import Path

    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is None:
        return
    create_markdown_artifact(markdown=eval_markdown(report), key="codeio-eval",
                             description="codeio evaluation scores")
    create_table_artifact(table=list(report["table"]), key="codeio-eval-scores", description="pass@k per group")
    if report.get("comparison"):
        create_table_artifact(table=list(report["comparison"]), key="codeio-eval-comparison",
                              description=f"pass@1 against run {report['compare_run_id']}")
    plot = report.get("plot")
    if plot:
        link = plot if "://" in plot else Path(plot).resolve().as_uri()
        create_link_artifact(link=link, link_text="pass@1 plot", key="codeio-eval-plot")
