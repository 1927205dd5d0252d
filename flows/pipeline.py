"""The CodeI/O pipeline flow: ingest -> normalize -> collect_io -> build_prompts ->
synthesize -> verify -> (revise -> verify) x R -> assemble -> export.

Only wiring and parameters live here. Settings are loaded once, at the flow
entrypoint; the lineage database is written from this process only.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from codeio import prompting
from codeio.execution import Limits
from codeio.settings import Settings
from codeio.sources import parse_source_specs
from codeio.stages import assemble, build_prompts, collect_io, normalize, synthesize, verify
from flows.orchestrator import Orchestrator, StopRequest, code_version, current_user
from flows.process import end_gone_runs, run_status, task_runner_scope
from flows.progress import StageProgress
from flows.spec import EndpointURL, RunSpec, resolve_teacher, stage_configs, uses_llm
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


def open_store(settings: Settings) -> DataStore:
    options = dict(settings.storage_options)
    if settings.store.startswith("s3://"):
        options = {**s3_storage_options(
            settings.s3_endpoint_url, settings.s3_region,
            settings.s3_key.get_secret_value() if settings.s3_key else None,
            settings.s3_secret.get_secret_value() if settings.s3_secret else None,
        ), **options}
    return DataStore(settings.store, options)


def llm_config(settings: Settings, teacher: str):
    """The endpoint config that travels to workers. It carries no API key: each
    worker process reads the key from its own environment."""
    if not uses_llm(settings, teacher):
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


def orchestrator_options(settings: Settings) -> dict[str, Any]:
    """What an Orchestrator takes from the settings (see its constructor); the LLM
    budget is shared over the processes that may spend it at once."""
    return {"task_tags": settings.task_tags, "fuse": settings.fuse_stages, "claim_lease_s": settings.claim_lease_s,
            "llm_budget_usd": settings.llm_budget_usd, "llm_processes": functools.partial(llm_processes, settings),
            "shards_per_task": functools.partial(shards_per_task, settings)}


def shards_per_task(settings: Settings, parts: int, runner: Any = None) -> int:
    """Parts per task run of a grouped lane: CODEIO_SHARDS_PER_TASK, else about two task
    runs per worker slot (Dask hands a freed worker the next one, so a slow shard does
    not hold the stage back by more than a group), at least one part each."""
    if settings.shards_per_task is not None:
        return settings.shards_per_task
    if settings.dask_address:
        client = getattr(runner, "client", None)  # the scheduler knows its workers' threads
        slots = sum(client.nthreads().values()) if client is not None else parts
    else:
        slots = local_workers(settings) or 2  # 0: the thread-pool runner's two threads
    return max(1, -(-parts // (2 * max(1, slots))))


class TaskRunnerStart:
    """Starts an entered Dask task runner's cluster (or connects to its scheduler) in a
    thread, while the flow opens its books and plans the shards: prefect-dask would
    start it at the first submit, with the whole start-up on the critical path.
    Calling it waits for the start and re-raises its error (before the first submit);
    ``join`` only waits (before the runner exits, so no cluster starts behind it).
    A thread-pool runner has nothing to start."""

    def __init__(self, runner: Any) -> None:
        from prefect_dask import DaskTaskRunner

        self._errors: list[BaseException] = []
        self._thread: threading.Thread | None = None
        if isinstance(runner, DaskTaskRunner):
            self._thread = threading.Thread(target=self._start, args=(runner,), name="dask-cluster-start", daemon=True)
            self._thread.start()

    def _start(self, runner: Any) -> None:
        try:
            runner.client  # noqa: B018 - the property creates the cluster and the client
        except BaseException as error:  # noqa: BLE001 - handed to the thread that waits for it
            self._errors.append(error)

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def __call__(self) -> None:
        self.join()
        if self._errors:
            raise self._errors[0]


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
    local_cluster_config()
    kwargs: dict[str, Any] = {"n_workers": workers, "threads_per_worker": 1, "processes": True,
                              "dashboard_address": "127.0.0.1:0",
                              # a dotted key: the nanny merges this dict shallowly into its own config
                              "config": {"distributed.worker.profile.enabled": False, **QUIET_DASK},
                              # Prefect's task engine and the stages, imported while the cluster starts
                              "preload": [WORKER_PRELOAD]}
    api_url = api_url_for_workers()
    if api_url:
        # without it every worker process starts an ephemeral Prefect API of its own
        # (hundreds of MB and seconds each) and its task runs land where nobody looks
        kwargs["env"] = {"PREFECT_API_URL": api_url}
    return kwargs


WORKER_PRELOAD = "tasks.worker_preload"

# Dask's event loops wake every 20 ms (tick) and poll memory every 100 ms: ~3% of a core per worker
# and as much for the scheduler and nannies in the flow process, idle or not (measured: 0.07 -> 0.02
# CPU-s/s for a cluster of two). Ticks only feed the "event loop unresponsive" warning (after 3 s);
# the memory limits are enforced as before, polled twice a second.
QUIET_DASK = {"distributed.admin.tick.interval": "1s", "distributed.worker.memory.monitor-interval": "500ms"}


def local_cluster_config() -> None:
    """The Dask config that the objects a LocalCluster creates in this process read
    when they are created (the scheduler and the nannies), set here: ``QUIET_DASK``,
    and no MALLOC_TRIM_THRESHOLD_=65536 in the workers' environment (the nanny's
    ``distributed.nanny.pre-spawn-environ``): with it glibc gives freed memory back to
    the OS at every turn, and code that allocates as much as parsing does takes ~60x
    the page faults (+35% CPU in the ingestion benchmark's select shards, against the
    same function in a plain process). A shard's memory is bounded by its size; the
    workers keep glibc's default, like every other process."""
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    dask.config.set({"distributed.nanny.pre-spawn-environ": environ, **QUIET_DASK})


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


def run_pipeline(settings: Settings, spec: RunSpec, progress: bool = True, kind: str = "pipeline",
                 stop: StopRequest | None = None) -> dict[str, Any]:
    """Run (or reuse) every stage of ``spec`` and return the summary; once ``stop`` is set,
    the run stops before its next stage (``RunStopped``). Callable from any flow."""
    teacher = resolve_teacher(settings, spec.teacher)
    specs = parse_source_specs(list(spec.sources))
    store = open_store(settings)
    lineage = LineageDB(settings.database_url)
    lineage.upgrade()
    end_gone_runs(lineage)  # runs left "running" by a process that was killed: crashed
    parameters = {**spec.model_dump(mode="json"), "teacher": teacher, "model": settings.llm_model}
    run_id = lineage.start_run(kind=kind, parameters=parameters, settings=settings.public_dump(),
                               code_version=code_version(), user=current_user())
    bars = StageProgress(enabled=progress)
    try:
        summary = _run_stages(settings, spec, specs, store, lineage, run_id, bars, stop)
    except BaseException as error:
        lineage.finish_run(run_id, run_status(error), summary={}, error=f"{type(error).__name__}: {error}")
        raise
    else:
        lineage.finish_run(run_id, "completed", summary=summary)
    finally:  # sweep branches and long-lived workers call this many times: give the pool back
        lineage.close()
    return summary


def _run_stages(settings: Settings, spec: RunSpec, specs, store: DataStore, lineage: LineageDB, run_id: str,
                bars: StageProgress, stop: StopRequest | None) -> dict[str, Any]:
    teacher = resolve_teacher(settings, spec.teacher)
    templates = prompting.PromptTemplates.load(settings.prompt_dir)
    runner = make_task_runner(settings)
    runtime = RuntimeSpec(store=store.spec, sandbox=sandbox_config(settings), llm=llm_config(settings, teacher),
                          templates=templates)
    orchestrator = Orchestrator(store, runtime, lineage, run_id, bars, task_runner=runner,
                                **orchestrator_options(settings), stop=stop)

    from flows.ingest import ingest_options, run_ingest_stages, uses_ingest_flow

    ingest_opts = ingest_options(spec.ingest)
    with task_runner_scope(runner):
        if uses_ingest_flow(specs, ingest_opts):  # corpus:/git: sources or a selection: shards on the workers
            sources_ref, markers, ingest_summary = run_ingest_stages(orchestrator, specs, ingest_opts, settings,
                                                                     spec.limit)
        else:
            sources_ref, markers, ingest_summary = orchestrator.ingest(specs, spec.limit, settings.shard_size)
        bars.note(f"[bold]ingest[/bold]           {ingest_summary.records_out} source(s), "
                  f"{sum(s.rejected for s in orchestrator.stages)} rejected")
        parts = sources_ref.parts
        raw_sources = sum(int((m.get("stats") or {}).get("raw", 0)) for m in markers)
        configs = stage_configs(spec, settings, templates, raw_sources=raw_sources > 0)
        functions = orchestrator.add("normalize", normalize.VERSION, normalize_task, configs.normalize,
                                     {"sources": sources_ref}, parts, may_retry=configs.normalize.teacher == "openai")
        pairs = orchestrator.add("collect_io", collect_io.VERSION, collect_io_task, configs.collect_io,
                                 {"functions": functions}, parts,
                                 options={"environment": orchestrator.submit(
                                     worker_environment_task, {"preload": runtime.sandbox.preload}).result()})
        instances = orchestrator.add("build_prompts", build_prompts.VERSION, build_prompts_task, configs.build_prompts,
                                     {"functions": functions, "pairs": pairs}, parts)
        history: dict[str, Any] = {}
        for round_number in range(1, spec.revision_rounds + 2):
            stage_name = "synthesize" if round_number == 1 else "revise"
            responses = orchestrator.add(
                stage_name, synthesize.VERSION, synthesize_task, configs.synthesize,
                {"instances": instances, **history}, parts,
                options={"round": round_number, "timeout_s": settings.exec_timeout_s},
                label=f"{stage_name} r{round_number}", may_retry=teacher != "offline")
            verdicts = orchestrator.add(
                "verify", verify.VERSION, verify_task, configs.verify, {"instances": instances, "responses": responses},
                parts, options={"round": round_number}, label=f"verify r{round_number}")
            history[f"responses_{round_number}"] = responses
            history[f"verdicts_{round_number}"] = verdicts
        samples = orchestrator.add("assemble", assemble.VERSION, assemble_task, configs.assemble,
                                   {"instances": instances, **history}, parts,
                                   options={"rounds": spec.revision_rounds + 1})
        orchestrator.flush()
    exported = export_samples(store, samples, spec.out, spec.export_formats) if spec.out else {}
    summary = build_summary(orchestrator, run_id=run_id, store=store, samples=samples, exported=exported,
                            teacher=teacher, prices=settings.llm_prices)
    publish_artifacts(summary)
    return summary


@flow(name="codeio-pipeline", log_prints=True)
def codeio_pipeline(
    spec: RunSpec = RunSpec(),  # noqa: B008 - frozen; Prefect renders it as one form section
    store: str | None = None,
    llm_base_url: EndpointURL | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Turn code sources into CodeI/O(++) samples. ``spec`` holds every ablation axis
    and input; credentials come from the worker's CODEIO_* environment."""
    settings = spec.load_settings(store=store, llm_base_url=llm_base_url)
    summary = run_pipeline(settings, spec, progress=show_progress)
    get_run_logger().info("codeio run %s: %s samples", summary["run_id"], summary["samples"])
    return summary
