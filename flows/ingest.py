"""The ingestion flow: sources -> selected, deduplicated, decontaminated source files.

Three stages over the store, on the Dask workers: ``ingest_select`` reads one
unit per shard (a Parquet row-group range, a JSONL file, a batch of files) and
applies the CodeMix filters, the PyEdu-R rules and decontamination;
``ingest_lsh`` (one task, over band keys) finds the near-duplicate components
that span shards; ``ingest_dedup`` walks one shard's candidates' hashes and
MinHash signatures (never their content) in corpus order, with the other
members of their components; ``ingest`` (in the same lane) keeps the first copy
of each and writes the SourceFile dataset the pipeline normalizes. The flow process only lists files;
it never reads a row. ``codeio ingest`` runs it alone; ``codeio run`` runs it as
its first step when a source is ``corpus:``/``git:`` or a selection is asked for
(the older sources without selection keep their in-process reader and keys).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import fsspec
from prefect import flow, get_run_logger

from codeio.ingest import select
from codeio.ingest.decontam import DecontamConfig
from codeio.ingest.dedup import DedupConfig
from codeio.ingest.filters import CodeMixConfig
from codeio.ingest.judge import JudgeConfig
from codeio.ingest.pyedu import PyEduConfig
from codeio.ingest.readers import CorpusUnit, is_remote, lines, plan_units
from codeio.settings import Settings, load_settings
from codeio.sources import SCALE_KINDS, SourceSpec, SourceSpecError, parse_source_specs
from flows.orchestrator import Orchestrator, StageSummary, code_version, current_user
from flows.progress import StageProgress
from storage.lineage import LineageDB
from storage.store import DataStore, StoreSpec, s3_storage_options
from tasks.ingest_shards import (ingest_components_task, ingest_dedup_task, ingest_finalize_task, ingest_select_task,
                                 opener)

OPTION_SECTIONS = {"codemix": CodeMixConfig, "pyedu": PyEduConfig, "dedup": DedupConfig}


@dataclasses.dataclass(frozen=True)
class IngestOptions:
    """What ingestion selects. From a mapping (a flow parameter, a YAML/JSON file):
    ``codemix``/``pyedu``/``dedup``: true, false or a mapping of thresholds;
    ``decontam``: a list of evaluation set files (``name=PATH`` or ``PATH``) or a
    mapping with ``files`` and thresholds; ``max_bytes``; ``shard_rows``;
    ``pyedu_judge``: true, false or a mapping of JudgeConfig settings (needs pyedu)."""

    codemix: CodeMixConfig | None = None
    pyedu: PyEduConfig | None = None
    dedup: DedupConfig | None = DedupConfig()
    decontam_files: tuple[tuple[str, str], ...] = ()
    decontam: DecontamConfig = DecontamConfig()
    max_bytes: int | None = None
    shard_rows: int | None = None  # rows (or files) per shard; default: CODEIO_SHARD_SIZE
    judge: JudgeConfig | None = None  # PyEdu-R's LLM judge, after the int_score and reasoning rules

    @property
    def selects(self) -> bool:
        return any((self.codemix, self.pyedu, self.decontam_files)) or self.dedup != DedupConfig()


def _section(cls, value: Any, name: str):
    if value in (None, False):
        return None
    if value is True:
        return cls()
    if not isinstance(value, dict):
        raise ValueError(f"ingest option {name!r} must be true, false or a mapping, got {value!r}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(value) - fields
    if unknown:
        raise ValueError(f"ingest option {name!r}: unknown setting(s) {sorted(unknown)}; known: {sorted(fields)}")
    if "weights" in value:
        value = dict(value, weights=tuple((k, float(v)) for k, v in dict(value["weights"]).items()))
    return cls(**value)


def _eval_file(entry: str) -> tuple[str, str]:
    name, sep, path = entry.partition("=")
    if sep and "/" not in name and "://" not in name:
        return name, path
    return Path(entry.split("://")[-1]).name.split(".")[0], entry


def ingest_options(mapping: dict[str, Any] | None) -> IngestOptions:
    mapping = dict(mapping or {})
    known = {"codemix", "pyedu", "dedup", "decontam", "max_bytes", "shard_rows", "pyedu_judge"}
    unknown = set(mapping) - known
    if unknown:
        raise ValueError(f"unknown ingest option(s) {sorted(unknown)}; known: {sorted(known)}")
    decontam = mapping.get("decontam") or []
    settings: dict[str, Any] = {}
    if isinstance(decontam, dict):
        settings = {k: v for k, v in decontam.items() if k != "files"}
        decontam = decontam.get("files") or []
    if isinstance(decontam, str):
        decontam = [decontam]
    files = tuple(_eval_file(str(entry)) for entry in decontam)
    pyedu = _section(PyEduConfig, mapping.get("pyedu"), "pyedu")
    judge = _section(JudgeConfig, mapping.get("pyedu_judge"), "pyedu_judge")
    if judge is not None and pyedu is None:
        raise ValueError("ingest option 'pyedu_judge' judges the files the PyEdu-R rules kept: set pyedu too")
    return IngestOptions(
        codemix=_section(CodeMixConfig, mapping.get("codemix"), "codemix"),
        pyedu=pyedu, judge=judge,
        dedup=_section(DedupConfig, mapping.get("dedup", True), "dedup"),
        decontam_files=files,
        decontam=_section(DecontamConfig, settings or True, "decontam"),
        max_bytes=mapping.get("max_bytes"), shard_rows=mapping.get("shard_rows"))


def uses_ingest_flow(specs: list[SourceSpec], options: IngestOptions) -> bool:
    return options.selects or any(spec.kind in SCALE_KINDS for spec in specs)


def source_storage_options(settings: Settings) -> dict[str, Any]:
    """fsspec options for s3:// sources and evaluation sets (the store's S3 settings)."""
    return {**s3_storage_options(
        settings.s3_endpoint_url, settings.s3_region,
        settings.s3_key.get_secret_value() if settings.s3_key else None,
        settings.s3_secret.get_secret_value() if settings.s3_secret else None,
    ), **dict(settings.storage_options)}


def _count_rows(unit: CorpusUnit, options: dict[str, Any]) -> int:
    """Rows of a unit, for --limit (JSONL: counted streaming, only when a limit is set)."""
    if unit.kind == "files":
        return len(unit.files)
    if unit.fmt == "parquet":
        import pyarrow.parquet as pq

        with opener(options)(unit.path) as handle:
            meta = pq.ParquetFile(handle).metadata
        groups = unit.row_groups or tuple(range(meta.num_row_groups))
        return sum(meta.row_group(g).num_rows for g in groups)
    with opener(options)(unit.path) as handle:
        return sum(1 for _ in lines(handle))


def apply_limit(units: list[CorpusUnit], limit: int | None, options: dict[str, Any]) -> list[CorpusUnit]:
    """The first ``limit`` rows in source order (before filtering), as before."""
    if limit is None:
        return units
    out, left = [], limit
    for unit in units:
        if left <= 0:
            break
        rows = _count_rows(unit, options)
        out.append(dataclasses.replace(unit, max_rows=left) if rows > left else unit)
        left -= min(rows, left)
    return out or units[:1]


def _fingerprint_file(path: str, options: dict[str, Any]) -> str:
    with opener(options)(path) as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def plan_ingest(specs: list[SourceSpec], options: IngestOptions, settings: Settings, store: DataStore,
                limit: int | None) -> tuple[select.SelectConfig, int]:
    """List the units (in this process: names and fingerprints only), keep them in the
    store, and return the select stage's config and its number of parts."""
    fs_options = source_storage_options(settings)

    def open_fs(url: str):
        return fsspec.core.url_to_fs(url, **(fs_options if is_remote(url) else {}))

    rows = options.shard_rows or settings.shard_size
    units = apply_limit(plan_units(specs, open_fs, rows_per_unit=rows, files_per_unit=rows), limit, fs_options)
    digest = select.units_digest(units)
    for part, unit in enumerate(units):
        rel = select.units_rel(digest, part)
        if not store.exists(rel):
            store.write_json(rel, select.unit_to_json(unit))
    decontam = None
    if options.decontam_files:
        decontam = dataclasses.replace(
            options.decontam, eval_sets=options.decontam_files,
            fingerprints=tuple(_fingerprint_file(path, fs_options) for _, path in options.decontam_files))
    config = select.SelectConfig(units_digest=digest, codemix=options.codemix, pyedu=options.pyedu,
                                 decontam=decontam, dedup=options.dedup,
                                 max_bytes=options.max_bytes or select.MAX_SOURCE_BYTES_DEFAULT)
    return config, len(units)


def run_ingest_stages(orchestrator: Orchestrator, specs: list[SourceSpec], options: IngestOptions,
                      settings: Settings, limit: int | None):
    """Select, dedup, finalize on the orchestrator's runner; returns the ``ingest``
    dataset, its part markers (as the in-process ingest returns them) and its summary."""
    config, parts = plan_ingest(specs, options, settings, orchestrator.store, limit)
    runtime = orchestrator.runtime
    if runtime.sources is None:
        orchestrator.runtime = dataclasses.replace(
            runtime, sources=StoreSpec("sources", json.dumps(source_storage_options(settings), sort_keys=True)))
    # many shards of cheap work: several per task run (group), each with its own key and marker
    candidates = orchestrator.add("ingest_select", select.VERSION, ingest_select_task, config, {}, parts,
                                  label="ingest select", group=True)
    orchestrator.flush()
    if options.judge is not None:  # PyEdu-R's LLM judge (flows/ingest_judge.py)
        from flows.ingest_judge import add_judge_stage

        candidates = add_judge_stage(orchestrator, options.judge, settings, candidates, parts)
    links = orchestrator.add("ingest_lsh", select.VERSION, ingest_components_task, options.dedup,
                             {"candidates": candidates}, 1, label="ingest lsh")
    orchestrator.flush()
    # each shard's duplicates are decided on its own (with the other members of its components), so
    # dedup and finalize run part by part in one lane
    decisions = orchestrator.add("ingest_dedup", select.VERSION, ingest_dedup_task, options.dedup,
                                 {"candidates": candidates, "links": links}, parts, label="ingest dedup", group=True)
    ref = orchestrator.add("ingest", select.VERSION, ingest_finalize_task, None,
                           {"candidates": candidates, "decisions": decisions}, parts, label="ingest", group=True)
    orchestrator.flush()
    summary = orchestrator.stages[-1]
    return ref, [{"stats": stats} for stats in summary.stats], summary


def ingest_report(stages: list[StageSummary]) -> dict[str, Any]:
    """What ingestion kept and why it dropped the rest, over its stages."""
    by_label = {s.label: s.as_dict() for s in stages}
    selected, dedup, final = by_label["ingest select"], by_label["ingest dedup"], by_label["ingest"]
    judged = by_label.get("ingest judge")  # PyEdu-R's LLM judge, when asked for
    filtering = [selected] + ([judged] if judged else [])
    reasons: Counter[str] = Counter()
    for stage in (*filtering, final):
        reasons.update(stage["rejects_by_reason"])
    rules = dict(selected["counters"].get("rules") or {})
    if judged:
        judge_rules = judged["counters"].get("rules") or {}
        rules.update(pyedu_judged=judge_rules.get("judged", 0), pyedu_judge=judge_rules.get("judge", 0))
    rejected = sum(stage["rejected"] for stage in (*filtering, final))
    llm: Counter[str] = Counter()
    for stage in by_label.values():
        llm.update({k: v for k, v in (stage["llm"] or {}).items() if isinstance(v, (int, float))})
    return {
        "rows_read": selected["in"], "candidates": filtering[-1]["out"], "kept": final["out"],
        "rejected": rejected, "rejects_by_reason": dict(reasons.most_common()),
        "kept_by_rule": rules, "contaminated": dict(selected["counters"].get("contaminated") or {}),
        "duplicates": {k: v for k, v in (dedup["counters"].get("decisions") or {}).items() if k != select.KEPT},
        "llm": dict(llm, cost_usd=round(float(llm.get("cost_usd", 0.0)), 6)) if llm else {},
        "reconciled": selected["in"] == final["out"] + rejected
        and all(stage["in"] == stage["out"] + stage["rejected"] for stage in filtering)
        and dedup["in"] == by_label["ingest lsh"]["in"] == filtering[-1]["out"] == final["in"],
    }


def run_ingest(settings: Settings, sources: list[str], options: dict[str, Any] | None = None,
               limit: int | None = None, progress: bool = True) -> dict[str, Any]:
    """An ingestion run on its own: lineage run of kind ``ingest``, stages on the
    configured Dask cluster, the summary (counts per stage and rule, rejects by reason)."""
    from flows.pipeline import TaskRunnerStart, make_task_runner, open_store
    from flows.process import task_runner_scope
    from flows.summary import publish_ingest_artifacts

    specs = parse_source_specs(sources)
    parsed = ingest_options(options)
    store = open_store(settings)
    runner = make_task_runner(settings)
    with task_runner_scope(runner):
        # the cluster starts while the books are opened and the shards planned, not at the first submit
        ready = TaskRunnerStart(runner)
        try:
            lineage, run_id, summary = _run_ingest_books(settings, store, runner, ready, specs, parsed, sources,
                                                         options, limit, progress)
        finally:
            ready.join()  # a cluster still starting is closed with the runner, not left behind
    lineage.finish_run(run_id, "completed", summary=summary)
    publish_ingest_artifacts(summary)
    return summary


def _run_ingest_books(settings: Settings, store: DataStore, runner: Any, ready: Any, specs: list[SourceSpec],
                      parsed: IngestOptions, sources: list[str], options: dict[str, Any] | None, limit: int | None,
                      progress: bool) -> tuple[LineageDB, str, dict[str, Any]]:
    """run_ingest inside its task runner: the lineage run, the stages, the summary."""
    from codeio.prompting import PromptTemplates
    from flows.pipeline import orchestrator_options, sandbox_config
    from flows.process import run_status
    from tasks.resources import RuntimeSpec

    lineage = LineageDB(settings.database_url)
    lineage.upgrade()
    run_id = lineage.start_run(kind="ingest", parameters={"sources": list(sources), "options": options or {},
                                                          "limit": limit},
                               settings=settings.public_dump(), code_version=code_version(), user=current_user())
    bars = StageProgress(enabled=progress)
    try:
        runtime = RuntimeSpec(store=store.spec, sandbox=sandbox_config(settings), llm=None,
                              templates=PromptTemplates.load(settings.prompt_dir) if parsed.judge else None)
        orchestrator = Orchestrator(store, runtime, lineage, run_id, bars, task_runner=runner,
                                    **orchestrator_options(settings), ready=ready)
        ref, _, final = run_ingest_stages(orchestrator, specs, parsed, settings, limit)
        report = ingest_report(orchestrator.stages)
        summary = {"run_id": run_id, "store": store.url, "stages": [s.as_dict() for s in orchestrator.stages],
                   **report, "dataset": {"stage": ref.stage, "key": ref.key, "parts": ref.parts, "uri": final.uri}}
    except BaseException as error:  # Ctrl-C: cancelled (the supervisor's grace applies, see flows/process.py)
        lineage.finish_run(run_id, run_status(error), summary={}, error=f"{type(error).__name__}: {error}")
        raise
    return lineage, run_id, summary


@flow(name="codeio-ingest", log_prints=True)
def codeio_ingest(
    sources: list[str] = ["sample"],  # noqa: B006 - Prefect needs a JSON default for the form
    options: dict[str, Any] | None = None,
    limit: int | None = None,
    store: str | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Read, select, deduplicate and decontaminate sources into an ``ingest`` dataset
    (the pipeline's first dataset). ``options``: see flows.ingest.IngestOptions."""
    settings = load_settings(store=store)
    summary = run_ingest(settings, sources, options, limit=limit, progress=show_progress)
    get_run_logger().info("codeio ingest %s: %s of %s rows kept", summary["run_id"], summary["kept"],
                          summary["rows_read"])
    return summary


__all__ = ["IngestOptions", "SourceSpecError", "codeio_ingest", "ingest_options", "run_ingest", "run_ingest_stages",
           "uses_ingest_flow"]
