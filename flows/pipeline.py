"""The CodeI/O pipeline flow: ingest -> normalize -> collect_io -> build_prompts ->
synthesize -> verify -> (revise -> verify) x R -> assemble -> export.

Only wiring and parameters live here. Settings are loaded once, at the flow
entrypoint; the lineage database is written from this process only.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from codeio import prompting
from codeio.execution import Limits
from codeio.settings import Settings, load_settings
from codeio.sources import parse_source_specs
from codeio.stages import assemble, build_prompts, collect_io, normalize, synthesize, verify
from flows.orchestrator import Orchestrator, code_version, current_user
from flows.process import end_gone_runs, run_status, task_runner_scope
from flows.progress import StageProgress
from flows.summary import build_summary, publish_artifacts
from storage.export import export_samples
from storage.lineage import LineageDB
from storage.store import DataStore, s3_storage_options
from tasks.assemble import assemble_task
from tasks.build_prompts import build_prompts_task
from tasks.collect_io import collect_io_task, worker_environment_task
from tasks.normalize import normalize_task
from tasks.resources import RuntimeSpec, usable_cores
from tasks.synthesize import synthesize_task
from tasks.verify import verify_task

Teacher = Literal["offline", "openai"]
Placement = Literal["prompt", "response", "none"]
TaskMix = Literal["both", "input", "output"]
WrongAnswerPolicy = Literal["keep", "ground_truth"]
TASK_MIXES = {"both": ("output", "input"), "input": ("input",), "output": ("output",)}


def open_store(settings: Settings) -> DataStore:
    options = dict(settings.storage_options)
    if settings.store.startswith("s3://"):
        options = {**s3_storage_options(
            settings.s3_endpoint_url, settings.s3_region,
            settings.s3_key.get_secret_value() if settings.s3_key else None,
            settings.s3_secret.get_secret_value() if settings.s3_secret else None,
        ), **options}
    return DataStore(settings.store, options)


def resolve_teacher(settings: Settings, teacher: str | None) -> str:
    """openai only when asked for, or when an endpoint is configured; a key alone never selects it."""
    if teacher:
        if teacher not in ("offline", "openai"):
            raise ValueError(f"teacher must be 'offline' or 'openai', got {teacher!r}")
        return teacher
    return "openai" if settings.llm_base_url else "offline"


def llm_config(settings: Settings, teacher: str):
    """The endpoint config that travels to workers. It carries no API key: each
    worker process reads the key from its own environment."""
    if teacher != "openai" and not settings.llm_base_url:
        return None
    from codeio.llm.openai_client import LLMConfig

    return LLMConfig.from_settings(settings, api_key="", backoff_base_s=settings.llm_backoff_base_s)


def local_workers(settings: Settings) -> int:
    """Worker processes of the embedded LocalCluster: CODEIO_DASK_WORKERS, else one
    single-threaded process per core this process may use (0: threads, no cluster)."""
    if settings.dask_workers is not None:
        return settings.dask_workers
    return usable_cores()


def llm_processes(settings: Settings, parts: int) -> int:
    """How many processes may call the endpoint at once in a stage of ``parts``
    shards (each keeps its own spend): the flow process for the thread-pool
    runner, the local cluster's workers, or at most one per shard on an
    existing scheduler."""
    if settings.dask_address:
        return max(1, parts)
    workers = local_workers(settings)
    return 1 if workers == 0 else max(1, min(workers, parts))


def apply_remaining_budget(orchestrator: Orchestrator, settings: Settings, parts: int) -> None:
    """CODEIO_LLM_BUDGET_USD caps the whole run: before each LLM stage the flow
    hands the stage what the earlier stages left (their spend is in lineage;
    shards reused from the store cost nothing), split over the processes that
    may spend it at once, each stage of the run with clients of its own (a worker
    that serves many runs never charges one run's spend to another). The budget
    lives in the RuntimeSpec, not in dataset keys."""
    llm = orchestrator.runtime.llm
    if llm is None or settings.llm_budget_usd is None:
        return
    spent = sum(float((row.get("llm") or {}).get("cost_usd") or 0.0)
                for row in orchestrator.lineage.stage_runs(orchestrator.run_id) if not row["cached"])
    share = max(0.0, settings.llm_budget_usd - spent) / llm_processes(settings, parts)
    orchestrator.runtime = dataclasses.replace(orchestrator.runtime, llm=dataclasses.replace(llm, budget_usd=share),
                                               llm_scope=f"{orchestrator.run_id}/{len(orchestrator.stages)}")


def sandbox_config(settings: Settings):
    """Pool size is decided where the pool runs (tasks.resources.parallelism)."""
    from codeio.sandbox import SandboxConfig

    return SandboxConfig(preload=tuple(settings.sandbox_preload), require_isolation=settings.sandbox_require_isolation,
                         memory_mb=max(settings.exec_memory_mb, 1024),
                         limits=Limits(timeout_s=settings.exec_timeout_s, memory_mb=settings.exec_memory_mb))


def make_task_runner(settings: Settings):
    """An existing Dask scheduler when configured; else a LocalCluster sized to the
    machine; ``CODEIO_DASK_WORKERS=0`` runs shards on threads of this process."""
    if settings.dask_address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=settings.dask_address)
    workers = local_workers(settings)
    if workers == 0:
        return ThreadPoolTaskRunner(max_workers=2)
    from prefect_dask import DaskTaskRunner

    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=local_cluster_kwargs(workers))


def local_cluster_kwargs(workers: int) -> dict[str, Any]:
    """The embedded LocalCluster: single-threaded worker processes (each runs its own
    sandbox pool), the dashboard on loopback, the flow's Prefect API, and no
    statistical profiler in the workers (it samples every thread every 10 ms: about
    a tenth of a worker's CPU in the scale benchmark, taken from the sandbox)."""
    kwargs: dict[str, Any] = {"n_workers": workers, "threads_per_worker": 1, "processes": True,
                              "dashboard_address": "127.0.0.1:0",
                              # a dotted key: the nanny merges this dict shallowly into its own config
                              "config": {"distributed.worker.profile.enabled": False}}
    api_url = api_url_for_workers()
    if api_url:
        # without it every worker process starts an ephemeral Prefect API of its own
        # (hundreds of MB and seconds each) and its task runs land where nobody looks
        kwargs["env"] = {"PREFECT_API_URL": api_url}
    return kwargs


def api_url_for_workers() -> str | None:
    """The Prefect API this process talks to: the configured one, or the ephemeral
    server that a flow run without PREFECT_API_URL starts on loopback."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return str(PREFECT_API_URL.value())
    try:
        from prefect.server.api.server import SubprocessASGIServer

        server = SubprocessASGIServer()
        return server.api_url if server.running else None
    except (ImportError, AttributeError, RuntimeError, OSError):
        return None


def run_pipeline(
    settings: Settings,
    sources: list[str],
    limit: int | None = None,
    teacher: str | None = None,
    revision_rounds: int = 1,
    pairs_per_function: int = 3,
    rejection_sampling: bool = False,
    task_mix: str = "both",
    placement: str = "prompt",
    wrong_answer_policy: str = "keep",
    instance_fraction: float = 1.0,
    subset_seed: int = 0,
    out: str | None = None,
    export_formats: tuple[str, ...] = ("jsonl",),
    progress: bool = True,
    kind: str = "pipeline",
    ingest: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run (or reuse) every stage and return the summary. Callable from any flow."""
    teacher = resolve_teacher(settings, teacher)
    specs = parse_source_specs(sources)
    store = open_store(settings)
    lineage = LineageDB(settings.database_url)
    lineage.upgrade()
    end_gone_runs(lineage)  # runs left "running" by a process that was killed: crashed
    parameters = {
        "sources": list(sources), "limit": limit, "teacher": teacher, "model": settings.llm_model,
        "revision_rounds": revision_rounds, "pairs_per_function": pairs_per_function,
        "rejection_sampling": rejection_sampling, "task_mix": task_mix, "placement": placement,
        "wrong_answer_policy": wrong_answer_policy, "instance_fraction": instance_fraction,
        "subset_seed": subset_seed, "out": out, **({"ingest": ingest} if ingest else {}),
    }
    run_id = lineage.start_run(kind=kind, parameters=parameters, settings=settings.public_dump(),
                               code_version=code_version(), user=current_user())
    bars = StageProgress(enabled=progress)
    try:
        summary = _run_stages(settings, specs, store, lineage, run_id, bars, teacher=teacher, limit=limit,
                              revision_rounds=revision_rounds, pairs_per_function=pairs_per_function,
                              rejection_sampling=rejection_sampling, task_mix=task_mix, placement=placement,
                              wrong_answer_policy=wrong_answer_policy, instance_fraction=instance_fraction,
                              subset_seed=subset_seed, out=out, export_formats=export_formats, ingest=ingest)
    except BaseException as error:
        lineage.finish_run(run_id, run_status(error), summary={}, error=f"{type(error).__name__}: {error}")
        raise
    else:
        lineage.finish_run(run_id, "completed", summary=summary)
    finally:  # sweep branches and long-lived workers call this many times: give the pool back
        lineage.close()
    return summary


def _run_stages(settings: Settings, specs, store: DataStore, lineage: LineageDB, run_id: str, bars: StageProgress, *,
                teacher: str, limit, revision_rounds, pairs_per_function, rejection_sampling, task_mix, placement,
                wrong_answer_policy, instance_fraction, subset_seed, out, export_formats,
                ingest: dict[str, Any] | None = None) -> dict[str, Any]:
    templates = prompting.PromptTemplates.load(settings.prompt_dir)
    llm = llm_config(settings, teacher)
    runner = make_task_runner(settings)
    runtime = RuntimeSpec(store=store.spec, sandbox=sandbox_config(settings), llm=llm,
                          templates=templates)
    orchestrator = Orchestrator(store, runtime, lineage, run_id, bars, task_tags=settings.task_tags,
                                fuse=settings.fuse_stages, claim_lease_s=settings.claim_lease_s)

    from flows.ingest import ingest_options, run_ingest_stages, uses_ingest_flow

    ingest_opts = ingest_options(ingest)
    with task_runner_scope(runner):
        orchestrator.submit = runner.submit
        if uses_ingest_flow(specs, ingest_opts):  # corpus:/git: sources or a selection: shards on the workers
            sources_ref, markers, ingest_summary = run_ingest_stages(orchestrator, specs, ingest_opts, settings, limit)
        else:
            sources_ref, markers, ingest_summary = orchestrator.ingest(specs, limit, settings.shard_size)
        bars.note(f"[bold]ingest[/bold]           {ingest_summary.records_out} source(s), "
                  f"{sum(s.rejected for s in orchestrator.stages)} rejected")
        parts = sources_ref.parts
        raw_sources = sum(int((m.get("stats") or {}).get("raw", 0)) for m in markers)
        if raw_sources == 0:
            # unified rows only pass through: no LLM setting may re-key them (and all of collect_io)
            norm_cfg = normalize.NormalizeConfig(teacher="none", model="")
        else:
            norm_cfg = normalize.NormalizeConfig(
                teacher="openai" if llm is not None else "offline",
                model=(settings.normalize_model or settings.llm_model) if llm is not None else "",
                temperature=settings.llm_temperature, max_tokens=settings.llm_max_tokens,
                template_hash=templates.hash_of(["normalize_json" if settings.llm_json_mode else "normalize"]),
                json_mode=settings.llm_json_mode)
        apply_remaining_budget(orchestrator, settings, parts)
        functions = orchestrator.add("normalize", normalize.VERSION, normalize_task, norm_cfg,
                                     {"sources": sources_ref}, parts, may_retry=norm_cfg.teacher == "openai")
        collect_cfg = collect_io.CollectConfig(sample_timeout_s=settings.collect_timeout_s,
                                               call_timeout_s=settings.exec_timeout_s,
                                               memory_mb=settings.exec_memory_mb,
                                               min_pairs=settings.collect_min_pairs,
                                               type_driven_pairs=settings.collect_type_driven_pairs)
        pairs = orchestrator.add("collect_io", collect_io.VERSION, collect_io_task, collect_cfg,
                                 {"functions": functions}, parts,
                                 options={"environment": orchestrator.submit(
                                     worker_environment_task, {"preload": runtime.sandbox.preload}).result()})
        prompt_cfg = build_prompts.PromptConfig(pairs_per_function=pairs_per_function, tasks=TASK_MIXES[task_mix],
                                                placement=placement, template_version=templates.label,
                                                template_hash=templates.hash_of(prompting.PROMPT_TEMPLATES))
        instances = orchestrator.add("build_prompts", build_prompts.VERSION, build_prompts_task, prompt_cfg,
                                     {"functions": functions, "pairs": pairs}, parts)
        teacher_cfg = synthesize.TeacherConfig(
            teacher=teacher, model="offline" if teacher == "offline" else settings.llm_model,
            temperature=settings.llm_temperature, max_tokens=settings.llm_max_tokens)
        verify_cfg = verify.VerifyConfig(timeout_s=settings.exec_timeout_s, memory_mb=settings.exec_memory_mb,
                                         template_hash=templates.hash_of(prompting.FEEDBACK_TEMPLATES))
        history: dict[str, Any] = {}
        for round_number in range(1, revision_rounds + 2):
            stage_name = "synthesize" if round_number == 1 else "revise"
            apply_remaining_budget(orchestrator, settings, parts)
            responses = orchestrator.add(
                stage_name, synthesize.VERSION, synthesize_task, teacher_cfg, {"instances": instances, **history},
                parts, options={"round": round_number, "timeout_s": settings.exec_timeout_s},
                label=f"{stage_name} r{round_number}", may_retry=teacher != "offline")
            verdicts = orchestrator.add(
                "verify", verify.VERSION, verify_task, verify_cfg, {"instances": instances, "responses": responses},
                parts, options={"round": round_number}, label=f"verify r{round_number}")
            history[f"responses_{round_number}"] = responses
            history[f"verdicts_{round_number}"] = verdicts
        assemble_cfg = assemble.AssembleConfig(revision_rounds=revision_rounds, rejection_sampling=rejection_sampling,
                                               wrong_answer_policy=wrong_answer_policy,
                                               instance_fraction=instance_fraction, subset_seed=subset_seed)
        samples = orchestrator.add("assemble", assemble.VERSION, assemble_task, assemble_cfg,
                                   {"instances": instances, **history}, parts, options={"rounds": revision_rounds + 1})
        orchestrator.flush()
    exported = export_samples(store, samples, out, export_formats) if out else {}
    summary = build_summary(orchestrator, run_id=run_id, store=store, samples=samples, exported=exported,
                            teacher=teacher, prices=settings.llm_prices)
    publish_artifacts(summary)
    return summary


@flow(name="codeio-pipeline", log_prints=True)
def codeio_pipeline(
    sources: list[str] = ["sample"],  # noqa: B006 - Prefect needs a JSON default for the form
    limit: int | None = None,
    teacher: Teacher | None = None,
    model: str | None = None,
    llm_base_url: str | None = None,
    revision_rounds: int = 1,
    pairs_per_function: int = 3,
    rejection_sampling: bool = False,
    task_mix: TaskMix = "both",
    placement: Placement = "prompt",
    wrong_answer_policy: WrongAnswerPolicy = "keep",
    instance_fraction: float = 1.0,
    subset_seed: int = 0,
    out: str | None = None,
    store: str | None = None,
    export_formats: list[str] = ["jsonl"],  # noqa: B006
    show_progress: bool = False,
    ingest: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Turn code sources into CodeI/O(++) samples. Every parameter is an ablation
    axis or an input; credentials come from the worker's CODEIO_* environment."""
    settings = load_settings(store=store, llm_base_url=llm_base_url, llm_model=model)
    summary = run_pipeline(settings, sources, limit=limit, teacher=teacher, revision_rounds=revision_rounds,
                           pairs_per_function=pairs_per_function, rejection_sampling=rejection_sampling,
                           task_mix=task_mix, placement=placement, wrong_answer_policy=wrong_answer_policy,
                           instance_fraction=instance_fraction, subset_seed=subset_seed, out=out,
                           export_formats=tuple(export_formats), progress=show_progress, ingest=ingest)
    get_run_logger().info("codeio run %s: %s samples", summary["run_id"], summary["samples"])
    return summary

