"""The `codeio` command line: run the pipeline, list runs, trace a sample, export."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape

from flows.cli_sweep import sweep
from flows.console import fail, note, quiet_logs, supervised

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Turn code corpora into CodeI/O and CodeI/O++ reasoning data.")
console = Console()
err = Console(stderr=True)
# run specification fields whose flag is not their name
ISOLATION_EXIT_CODE = 3  # CODEIO_SANDBOX_REQUIRE_ISOLATION=true and part of the isolation is missing
FLAGS = {"sources": "--source", "wrong_answer_policy": "--wrong-answers", "export_formats": "--format"}


def flag_of(field: str) -> str:
    return FLAGS.get(field, "--" + field.replace("_", "-"))


def checked_run(fields: dict[str, Any], overrides: dict[str, Any], database: bool = True) -> tuple[Any, Any]:
    """The run specification and settings of ``codeio run``, every input checked before
    anything starts: the flags, the CODEIO_* settings, the sources, the store, the
    lineage database (unless ``database`` is false) and the output path."""
    from pydantic import ValidationError

    from codeio.settings import Settings, load_settings
    from flows.preflight import check_inputs
    from flows.spec import RunSpec, spec_errors

    problems, spec, settings = [], None, None
    try:
        spec = RunSpec(**fields)
    except ValidationError as error:
        problems += spec_errors(error, {field: flag_of(field) for field in RunSpec.model_fields})
    try:
        settings = load_settings(**overrides, llm_model=fields.get("model"))
    except ValidationError as error:
        problems += spec_errors(error, {field: f"CODEIO_{field.upper()}" for field in Settings.model_fields})
    problems += check_inputs(fields["sources"], fields.get("out"), settings, database=database)
    if problems:
        fail(problems)
    return spec, settings


@app.command()
def run(
    source: list[str] = typer.Option(["sample"], "--source", "-s",
                                     help="jsonl:PATH | dir:PATH | unified:PATH | leetcode:PATH | "
                                          "corpus:PATH|GLOB|s3://... | rows:PATH|GLOB|s3://... | git:PATH | sample "
                                          "(repeatable)"),
    limit: Optional[int] = typer.Option(None, help="take the first N rows of the sources, before filtering"),
    teacher: Optional[str] = typer.Option(None, help="offline | openai (default: openai when an endpoint is set)"),
    llm_base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible endpoint (CODEIO_LLM_BASE_URL)"),
    model: Optional[str] = typer.Option(None, help="model name (CODEIO_LLM_MODEL)"),
    revision_rounds: int = typer.Option(1, help="CodeI/O++ revision rounds R: 0, 1 or 2"),
    pairs_per_function: int = typer.Option(3, help="K: pairs per function used for instances (1-10)"),
    rejection_sampling: bool = typer.Option(False, help="keep only samples whose last turn verified"),
    task_mix: str = typer.Option("both", help="both | input | output"),
    placement: str = typer.Option("prompt", help="reference code placement: prompt | response | none"),
    wrong_answers: str = typer.Option("keep", help="keep | ground_truth (replace wrong answers, no CoT)"),
    instance_fraction: float = typer.Option(1.0, help="training-sample scaling: seeded nested subset, in (0, 1]"),
    out: Optional[str] = typer.Option(None, help="write the final samples to this JSONL path"),
    fmt: list[str] = typer.Option(["jsonl"], "--format", help="jsonl | parquet | chat (repeatable, with --out)"),
    store: Optional[str] = typer.Option(None, help="store URL (CODEIO_STORE): a folder or s3://bucket/prefix"),
    dry_run: bool = typer.Option(False, help="estimate requests, tokens and cost; call nothing"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
    ingest_config: Optional[str] = typer.Option(None, help="YAML/JSON ingest options: codemix, pyedu, dedup, "
                                                            "decontam (see `codeio ingest`)"),
) -> None:
    """Run the pipeline (reusing every dataset already in the store)."""
    quiet_logs()
    from codeio.prompting import TemplateError
    from codeio.sources import SourceSpecError

    spec, settings = checked_run(
        dict(sources=tuple(source), limit=limit, teacher=teacher, model=model, revision_rounds=revision_rounds,
             pairs_per_function=pairs_per_function, rejection_sampling=rejection_sampling, task_mix=task_mix,
             placement=placement, wrong_answer_policy=wrong_answers, instance_fraction=instance_fraction, out=out,
             export_formats=tuple(fmt), ingest=read_ingest_options(ingest_config)),
        dict(store=store, llm_base_url=llm_base_url), database=not dry_run)
    if dry_run:
        from flows.estimate import estimate_run, render_estimate

        estimate = estimate_run(settings, spec)
        if as_json:
            console.print_json(json.dumps(estimate))
        else:
            render_estimate(estimate, console)
        return
    from flows import process

    # the terminal's signals stay here; the run goes to a process group of its own
    process.start_supervised("run", settings.cancel_grace_s, settings.database_url, say=note,
                             check=lambda: reject_incomplete_isolation(settings))
    from flows.pipeline import codeio_pipeline
    from flows.spec import EndpointURL
    from flows.summary import render_summary

    from codeio.sandbox.pool import IsolationUnavailable

    try:
        with process.exit_when_interrupted(say=note):
            summary = codeio_pipeline(spec=spec, store=store, show_progress=not as_json,
                                      llm_base_url=EndpointURL(llm_base_url) if llm_base_url else None)
    except (SourceSpecError, TemplateError) as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    except IsolationUnavailable as error:  # CODEIO_SANDBOX_REQUIRE_ISOLATION=true, refused where shards ran
        isolation_error(str(error))
    warn_sandbox(summary)
    if as_json:
        console.print_json(json.dumps(summary, default=str))
    else:
        needs_llm = sum(s["rejects_by_reason"].get("needs_llm", 0) for s in summary["stages"])
        render_summary(summary, console)
        if needs_llm:
            from codeio.stages.normalize import NEEDS_LLM_MESSAGE

            err.print(f"[yellow]{needs_llm} raw file(s) skipped:[/yellow] {NEEDS_LLM_MESSAGE}")
    exit_if_nothing(summary["samples"], "samples", summary["stages"])


def reject_incomplete_isolation(settings: Any = None) -> None:
    """CODEIO_SANDBOX_REQUIRE_ISOLATION=true: before anything starts, start one sandbox
    server here and stop with one line when the kernel refuses part of its isolation."""
    from flows.preflight import isolation_problem

    if settings is None:
        from codeio.settings import load_settings

        settings = load_settings()
    problem = isolation_problem(settings)
    if problem:
        isolation_error(problem)


def isolation_error(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(ISOLATION_EXIT_CODE)


def warn_sandbox(summary: dict[str, Any]) -> None:
    """The loud block on stderr when the sandboxes ran code without some guarantee."""
    from flows.summary import sandbox_warning

    lines = sandbox_warning(summary)
    if lines:
        err.print(f"[bold red]{escape(lines[0])}[/bold red]", soft_wrap=True, highlight=False)
        for line in lines[1:]:
            err.print(line, soft_wrap=True, markup=False, highlight=False)


def exit_if_nothing(count: int, what: str, stages: list[dict]) -> None:
    """A run that produced nothing fails (exit 1) and says why and what to change."""
    if count:
        return
    from flows.summary import zero_output_advice

    err.print(f"[red]error:[/red] the run produced 0 {what}. Top reject reasons:", soft_wrap=True)
    for line in zero_output_advice(stages):
        err.print(f"  {line}", soft_wrap=True, markup=False, highlight=False)
    raise typer.Exit(1)


def read_ingest_options(path: Optional[str]) -> Optional[dict]:
    """--ingest-config: a YAML or JSON file of ingest options (see flows/ingest.py)."""
    if path is None:
        return None
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            value = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as error:
        raise typer.BadParameter(f"cannot read {path}: {error}", param_hint="--ingest-config") from error
    if not isinstance(value, dict):
        raise typer.BadParameter(f"{path} must hold a mapping of ingest options", param_hint="--ingest-config")
    from flows.ingest import ingest_options

    try:
        ingest_options(value)
    except (TypeError, ValueError) as error:
        raise typer.BadParameter(f"{path}: {error}", param_hint="--ingest-config") from error
    return value


@app.command()
def ingest(
    source: list[str] = typer.Option(["sample"], "--source", "-s",
                                     help="corpus:PATH|GLOB|s3://... | rows:PATH|GLOB|s3://... | git:PATH | dir:PATH | jsonl:PATH | "
                                          "unified:PATH | leetcode:PATH (repeatable)"),
    codemix: bool = typer.Option(False, help="CodeMix filters (syntax, size, lines, generated, data-only, AST bounds)"),
    keep_python2: bool = typer.Option(False, help="keep Python 2 files (normalization converts them)"),
    pyedu: bool = typer.Option(False, help="PyEdu-R selection: int_score, then reasoning focus"),
    min_int_score: Optional[int] = typer.Option(None, help="PyEdu-R educational score threshold (default 3)"),
    min_reasoning: Optional[float] = typer.Option(None, help="PyEdu-R reasoning-focus threshold (default 2.0)"),
    pyedu_judge: bool = typer.Option(False, help="PyEdu-R: then an LLM judge of reasoning focus (implies --pyedu; "
                                                 "needs CODEIO_LLM_BASE_URL; cached and costed)"),
    judge_min_score: Optional[int] = typer.Option(None, min=0, max=5,
                                                  help="LLM judge: keep files it scores at least this, 0-5 (default 3)"),
    near_dedup: bool = typer.Option(True, help="near-duplicate removal (MinHash LSH over 5-grams)"),
    dedup_threshold: Optional[float] = typer.Option(None, help="near-duplicate Jaccard threshold (default 0.7)"),
    decontam: list[str] = typer.Option([], help="evaluation set file to decontaminate against, NAME=PATH (repeatable)"),
    config: Optional[str] = typer.Option(None, "--config", help="YAML/JSON ingest options (every threshold); "
                                                                "flags override it"),
    limit: Optional[int] = typer.Option(None, min=1, help="take the first N rows of the sources, before filtering"),
    store: Optional[str] = typer.Option(None, help="store URL (CODEIO_STORE): a folder or s3://bucket/prefix"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Read, select, deduplicate and decontaminate sources into the store (the pipeline's first dataset)."""
    quiet_logs()
    from codeio.sources import SourceSpecError
    from flows.ingest import codeio_ingest
    from flows.summary import render_ingest_summary

    options = dict(read_ingest_options(config) or {})
    if codemix or keep_python2:
        section = dict(options.get("codemix") or {}) if isinstance(options.get("codemix"), dict) else {}
        options["codemix"] = {**section, **({"keep_python2": True} if keep_python2 else {})}
    if pyedu_judge or judge_min_score is not None:
        section = dict(options.get("pyedu_judge") or {}) if isinstance(options.get("pyedu_judge"), dict) else {}
        options["pyedu_judge"] = {**section, **({"min_score": judge_min_score} if judge_min_score is not None else {})}
        pyedu = pyedu or not options.get("pyedu")
    if pyedu or min_int_score is not None or min_reasoning is not None:
        section = dict(options.get("pyedu") or {}) if isinstance(options.get("pyedu"), dict) else {}
        section.update({k: v for k, v in (("min_int_score", min_int_score), ("min_reasoning", min_reasoning))
                        if v is not None})
        options["pyedu"] = section
    if not near_dedup or dedup_threshold is not None:
        section = dict(options.get("dedup") or {}) if isinstance(options.get("dedup"), dict) else {}
        section.update({"near": near_dedup, **({"threshold": dedup_threshold} if dedup_threshold is not None else {})})
        options["dedup"] = section
    if decontam:
        options["decontam"] = list(decontam)
    supervised("ingest", store=store)
    from flows.process import exit_when_interrupted

    try:
        with exit_when_interrupted(say=note):
            summary = codeio_ingest(sources=source, options=options, limit=limit, store=store,
                                    show_progress=not as_json)
    except (SourceSpecError, ValueError) as error:
        err.print(f"[red]error:[/red] {error}", soft_wrap=True)
        raise typer.Exit(2) from error
    if as_json:
        console.print_json(json.dumps(summary, default=str))
    else:
        render_ingest_summary(summary, console)
    exit_if_nothing(summary["kept"], "source files", summary["stages"])


@app.command()
def runs(limit: int = typer.Option(20, help="how many runs"), as_json: bool = typer.Option(False, "--json")) -> None:
    """List recent runs from the lineage database."""
    from rich.table import Table

    from codeio.settings import load_settings
    from flows.process import end_gone_runs
    from storage.lineage import LineageDB

    db = LineageDB(load_settings().database_url)
    db.upgrade()
    end_gone_runs(db)  # a run whose process was killed is shown crashed, not running forever
    rows = db.list_runs(limit=limit)
    if as_json:
        console.print_json(json.dumps(rows, default=str))
        return
    table = Table(title="codeio runs")
    for column in ("run", "kind", "status", "started", "finished", "samples", "tokens", "cost $"):
        table.add_column(column)
    for row in rows:
        totals = row.get("totals") or {}
        summary = row.get("summary") or (db.get_run(row["id"]) or {}).get("summary") or {}
        tokens = (totals.get("prompt_tokens") or 0) + (totals.get("completion_tokens") or 0)
        table.add_row(str(row["id"]), str(row["kind"]), str(row["status"]), str(row["started_at"])[:19],
                      str(row.get("finished_at") or "")[:19], str(summary.get("samples", "")), str(tokens),
                      f"{float(totals.get('cost_usd') or 0):.4f}")
    console.print(table)


@app.command()
def lineage(sample_id: str, as_json: bool = typer.Option(False, "--json", help="print the chain as JSON"),
            store: Optional[str] = typer.Option(None)) -> None:
    """Print the chain from source file to sample, with the runs behind each step."""
    from codeio.settings import load_settings
    from flows.pipeline import open_store
    from storage.lineage import LineageDB
    from storage.trace import SampleNotFound, trace_sample

    settings = load_settings(store=store)
    db = LineageDB(settings.database_url)
    db.upgrade()
    try:
        chain = trace_sample(open_store(settings), db, sample_id)
    except SampleNotFound as error:
        err.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error
    if as_json:
        sys.stdout.write(json.dumps(chain, indent=2, default=str, ensure_ascii=False) + "\n")
        return
    from flows.trace_view import render_chain

    render_chain(chain, console)


@app.command()
def export(
    out: str = typer.Option(..., help="output path (or URL)"),
    fmt: list[str] = typer.Option(["jsonl"], "--format", help="jsonl | parquet | chat (repeatable)"),
    run_id: Optional[str] = typer.Option(None, "--run", help="export the samples of this run (default: latest)"),
    store: Optional[str] = typer.Option(None),
) -> None:
    """Write the final samples of a run as JSONL, Parquet or chat-messages JSONL."""
    from codeio.settings import load_settings
    from flows.pipeline import open_store
    from storage.export import export_samples
    from storage.lineage import LineageDB
    from tasks.shard import DatasetRef

    settings = load_settings(store=store)
    db = LineageDB(settings.database_url)
    db.upgrade()
    ids = [run_id] if run_id else [r["id"] for r in db.list_runs(limit=50) if r["status"] == "completed"]
    runs_ = (db.get_run(i) for i in ids)
    chosen = next((r for r in runs_ if r and r["status"] == "completed" and (r.get("summary") or {}).get("samples_dataset")),
                  None)
    if chosen is None:
        err.print("[red]no completed run with samples found[/red]")
        raise typer.Exit(1)
    ref = chosen["summary"]["samples_dataset"]
    written = export_samples(open_store(settings), DatasetRef(ref["stage"], ref["key"], 0), out, tuple(fmt))
    for kind, path in written.items():
        console.print(f"written {kind}: {path}")


@app.command("eval")
def eval_command(
    benchmark: str = typer.Option(..., help="cruxeval:PATH | leetcode-o:PATH | unified:PATH"),
    model: Optional[str] = typer.Option(None, help="model name (CODEIO_LLM_MODEL)"),
    llm_base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible endpoint (CODEIO_LLM_BASE_URL)"),
    teacher: Optional[str] = typer.Option(None, help="offline | openai (default: openai when an endpoint is set)"),
    samples: int = typer.Option(1, min=1, help="answers per question (n); n > 1 gives pass@k"),
    k: list[int] = typer.Option([], "--k", help="pass@k to report (repeatable; default 1 and 5, 10, 100 up to n)"),
    temperature: Optional[float] = typer.Option(None, help="sampling temperature (CODEIO_LLM_TEMPERATURE)"),
    limit: Optional[int] = typer.Option(None, help="evaluate the first N rows only"),
    placement: str = typer.Option("prompt", help="reference code in the prompt: prompt | none (JSON benchmarks)"),
    compare: Optional[str] = typer.Option(None, help="an earlier eval run id: per-group differences side by side"),
    store: Optional[str] = typer.Option(None, help="store URL (CODEIO_STORE)"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Score a model (or the offline teacher) on a benchmark with the pipeline's prompts and verifier."""
    quiet_logs()
    from codeio.evaluation.benchmarks import BenchmarkSpecError
    from codeio.prompting import TemplateError
    from codeio.sandbox.pool import IsolationUnavailable
    from flows.eval import EvalError, codeio_eval
    from flows.eval_report import render_eval
    from flows.spec import EndpointURL

    if teacher not in (None, "offline", "openai"):
        raise typer.BadParameter(f"{teacher!r} is not one of offline, openai", param_hint="--teacher")
    if placement not in ("prompt", "none"):
        raise typer.BadParameter(f"{placement!r} is not one of prompt, none", param_hint="--placement")
    supervised("eval", check=reject_incomplete_isolation, store=store, llm_base_url=llm_base_url)
    from flows.process import exit_when_interrupted

    try:
        with exit_when_interrupted(say=note):
            report = codeio_eval(benchmark=benchmark, model=model, teacher=teacher,
                                 llm_base_url=EndpointURL(llm_base_url) if llm_base_url else None,
                                 samples=samples, ks=list(k) or None, temperature=temperature, limit=limit,
                                 placement=placement, compare=compare, store=store, show_progress=not as_json)
    except (BenchmarkSpecError, EvalError, TemplateError) as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    except IsolationUnavailable as error:  # CODEIO_SANDBOX_REQUIRE_ISOLATION=true, refused where shards ran
        isolation_error(str(error))
    warn_sandbox(report)
    if as_json:
        sys.stdout.write(json.dumps(report, default=str, ensure_ascii=False) + "\n")
    else:
        render_eval(report, console)


app.command()(sweep)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()

