"""The evaluation flow: score a model (or the offline teacher) on a benchmark file
with the pipeline's own prompts, client, response cache and verification.

questions (from the file, sharded) -> synthesize (one stage per sample, the
pipeline's synthesize task) -> eval_judge -> scores. Results go to lineage
(``eval_results``), to Prefect artifacts (Markdown table, table, plot) and back
to the caller as plain data.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger

from codeio import prompting
from codeio.evaluation import scoring
from codeio.evaluation.benchmarks import parse_benchmark_spec, read_benchmark
from codeio.evaluation.judge import VERSION as JUDGE_VERSION
from codeio.evaluation.judge import JudgeConfig
from codeio.settings import Settings, load_settings
from codeio.stages import synthesize
from flows.eval_report import publish_eval_artifacts, scores_png
from flows.orchestrator import Orchestrator, StageSummary, code_version, current_user
from flows.pipeline import llm_config, make_task_runner, open_store, orchestrator_options, sandbox_config
from flows.process import run_status, task_runner_scope
from flows.progress import StageProgress
from flows.spec import EndpointURL, Teacher, endpoint_value, resolve_teacher
from flows.summary import LLM_FIELDS, sandbox_summary
from storage.lineage import LineageDB
from tasks.eval import QUESTIONS_STAGE, QUESTIONS_VERSION, QuestionsConfig, eval_judge_task, write_questions
from tasks.resources import RuntimeSpec
from tasks.synthesize import synthesize_task

Placement = Literal["prompt", "none"]  # the code in the question, or not (JSON benchmarks)
JUDGE_STAGE = "eval_judge"
PLOT_NAME = "scores.png"


class EvalError(ValueError):
    """An evaluation that cannot start: bad parameters or an unknown run to compare with."""


def run_eval(settings: Settings, benchmark: str, *, teacher: str | None = None, samples: int = 1,
             ks: tuple[int, ...] | None = None, limit: int | None = None, placement: str = "prompt",
             compare: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Evaluate and return the report (scores, comparison, stages, LLM usage)."""
    if samples < 1:
        raise EvalError("samples must be >= 1")
    ks = tuple(ks or scoring.default_ks(samples))
    if any(k < 1 or k > samples for k in ks):
        raise EvalError(f"every k of pass@k must be between 1 and the samples ({samples}); got {list(ks)}")
    spec = parse_benchmark_spec(benchmark)
    teacher = resolve_teacher(settings, teacher)
    templates = prompting.PromptTemplates.load(settings.prompt_dir)
    bench = read_benchmark(spec, templates, limit=limit, placement=placement)
    lineage = LineageDB(settings.database_url)
    lineage.upgrade()
    previous = None
    if compare:
        previous = lineage.eval_result(compare)
        if previous is None:
            lineage.close()
            raise EvalError(f"no evaluation run {compare!r} in the lineage database")
    model = "offline" if teacher == "offline" else settings.llm_model
    prompt_hash = templates.hash_of(prompting.PROMPT_TEMPLATES)
    parameters = {"benchmark": spec.text, "benchmark_sha256": bench.sha256, "teacher": teacher, "model": model,
                  "samples": samples, "ks": list(ks), "limit": limit, "placement": placement, "compare": compare,
                  "temperature": settings.llm_temperature}
    run_id = lineage.start_run(kind="eval", parameters=parameters, settings=settings.public_dump(),
                               code_version=code_version(), user=current_user())
    try:
        store = open_store(settings)
        runtime = RuntimeSpec(store=store.spec, sandbox=sandbox_config(settings), llm=llm_config(settings, teacher),
                              templates=templates)
        runner = make_task_runner(settings)
        # no lanes: the judge reads every sample's answers, and no stage here is part of the pipeline's lanes
        orchestrator = Orchestrator(store, runtime, lineage, run_id, StageProgress(enabled=progress),
                                    task_runner=runner, **{**orchestrator_options(settings), "fuse": False})
        config = QuestionsConfig(benchmark=spec.kind, sha256=bench.sha256, limit=limit, placement=placement,
                                 template_label=templates.label, template_hash=prompt_hash,
                                 shard_size=settings.shard_size)
        questions, markers = write_questions(store, bench, config)
        summary = StageSummary(QUESTIONS_STAGE, QUESTIONS_STAGE, questions.key,
                               store.uri(store.dataset_dir(QUESTIONS_STAGE, questions.key)), questions.parts,
                               reused=all(m.get("cached") for m in markers))
        orchestrator.record_outcomes(summary, markers, config, {})
        parts = questions.parts
        with task_runner_scope(runner):
            answers = {}
            for sample in range(samples):  # each answering stage gets what the budget has left
                teacher_cfg = synthesize.TeacherConfig(teacher=teacher, model=model,
                                                       temperature=settings.llm_temperature,
                                                       max_tokens=settings.llm_max_tokens, sample_index=sample)
                answers[f"responses_{sample}"] = orchestrator.add(
                    "synthesize", synthesize.VERSION, synthesize_task, teacher_cfg, {"instances": questions}, parts,
                    options={"round": 1, "timeout_s": settings.exec_timeout_s}, label=f"answer s{sample}",
                    may_retry=teacher != "offline")
            judge_cfg = JudgeConfig(timeout_s=settings.exec_timeout_s, memory_mb=settings.exec_memory_mb,
                                    template_hash=templates.hash_of(prompting.FEEDBACK_TEMPLATES))
            judged = orchestrator.add(JUDGE_STAGE, JUDGE_VERSION, eval_judge_task, judge_cfg,
                                      {"questions": questions, **answers}, parts, options={"samples": samples})
            orchestrator.flush()
        judgements = [row for part in range(judged.parts) for row in store.read_part(judged.stage, judged.key, part)]
        scores = scoring.score(judgements, samples, ks)
        stages = [s.as_dict() for s in orchestrator.stages]
        report = {
            "run_id": run_id, "benchmark": spec.text, "benchmark_kind": spec.kind, "benchmark_sha256": bench.sha256,
            "model": model, "teacher": teacher, "prompt_version": templates.label, "prompt_hash": prompt_hash,
            "samples_per_question": samples, "rows": bench.rows, "questions": len(bench.questions),
            "rejected_rows": len(bench.rejects), "rejects_by_reason": summary.rejects_by_reason,
            "scores": scores, "table": scoring.flat_rows(scores),
            "compare_run_id": compare,
            "comparison": scoring.compare(scores, previous["scores"]) if previous else None,
            "stages": stages, "llm": _llm_totals(stages),
            "retryable": sum(int(s.get("retryable", 0)) for s in stages),
            "sandbox": sandbox_summary(stages),
            "judgements_dataset": {"stage": judged.stage, "key": judged.key,
                                   "uri": store.uri(store.dataset_dir(judged.stage, judged.key))},
        }
        plot = f"eval/{run_id}/{PLOT_NAME}"
        store.write_bytes(plot, scores_png(report, previous))
        report["plot"] = store.uri(plot)
        lineage.record_eval_result(run_id, model=model, teacher=teacher, benchmark=spec.kind,
                                   benchmark_path=spec.path, benchmark_sha256=bench.sha256,
                                   prompt_version=templates.label, prompt_hash=prompt_hash, samples=samples,
                                   scores=scores)
    except BaseException as error:  # Ctrl-C: cancelled (the supervisor's grace applies, see flows/process.py)
        lineage.finish_run(run_id, run_status(error), summary={}, error=f"{type(error).__name__}: {error}")
        raise
    else:
        lineage.finish_run(run_id, "completed", summary={k: v for k, v in report.items() if k != "table"})
    finally:  # a worker serving many runs gives the pool back
        lineage.close()
    publish_eval_artifacts(report)
    return report


def _llm_totals(stages: list[dict[str, Any]]) -> dict[str, Any]:
    totals = {name: sum((s["llm"] or {}).get(name, 0) or 0 for s in stages) for name in LLM_FIELDS}
    totals["cost_usd"] = round(float(totals["cost_usd"]), 6)
    return totals


@flow(name="codeio-eval", log_prints=True)
def codeio_eval(
    benchmark: str,
    model: str | None = None,
    llm_base_url: EndpointURL | None = None,
    teacher: Teacher | None = None,
    samples: int = 1,
    ks: list[int] | None = None,
    temperature: float | None = None,
    limit: int | None = None,
    placement: Placement = "prompt",
    compare: str | None = None,
    store: str | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Score a model on a benchmark file (``cruxeval:PATH``, ``leetcode-o:PATH``,
    ``unified:PATH``); credentials come from the worker's CODEIO_* environment."""
    settings = load_settings(store=store, llm_base_url=endpoint_value(llm_base_url), llm_model=model,
                             llm_temperature=temperature)
    report = run_eval(settings, benchmark, teacher=teacher, samples=samples, ks=tuple(ks) if ks else None,
                      limit=limit, placement=placement, compare=compare, progress=show_progress)
    tasks = report["scores"]["tasks"]
    get_run_logger().info("codeio eval %s on %s: %s", report["run_id"], report["benchmark"],
                          ", ".join(f"{t} pass@1={v['pass@1']}" for t, v in tasks.items()))
    return report
