"""Ablation sweeps: every branch of a grid, sharing every upstream dataset.

A grid file (YAML) names the sources, the parameters every branch shares
(``base``), a cartesian ``grid`` over ablation axes and/or a list of extra
``branches``::

    name: example
    sources: [sample]
    limit: 10
    max_parallel_branches: 2
    base: {teacher: offline, revision_rounds: 1}
    grid:
      rejection_sampling: [false, true]
      pairs_per_function: [3, 6]
    branches:
      - {wrong_answer_policy: ground_truth}

Sharing needs no bookkeeping of its own: dataset keys are content hashes of
(stage, version, config, parent keys), so branches that differ only downstream
compute the same upstream keys and the orchestrator reuses a dataset whose
manifest exists. Branches run at the same time on threads of the flow process,
stage by stage (no lanes); the orchestrator holds a per-process claim on each
dataset key, so a shared dataset is still computed by one branch only (the
others wait and reuse it). Ingest, which the pipeline runs outside the orchestrator, is done once by
the sweep itself before the branches fan out. Without a configured Dask
scheduler the sweep starts one LocalCluster that all branches share. Claims
also hold across processes that share the lineage database (its
``dataset_claims`` table): two sweeps, or a sweep and a nightly run, on the
same store compute a dataset they both need once.

Output: a comparison table (CSV, Markdown, Prefect table artifact) and a PNG
of verdict outcomes per revision round per branch.
"""

from __future__ import annotations

import contextvars
import csv
import io
import itertools
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import yaml
from prefect import flow, get_run_logger
from pydantic import ValidationError

from codeio.settings import Settings, load_settings
from flows.orchestrator import RunStopped, StopRequest
from flows.pipeline import local_cluster_kwargs, local_workers, open_store, run_pipeline
from flows.spec import EndpointURL, RunSpec, endpoint_value, spec_errors

# The ablation axes: fields of the run specification (which says what each accepts).
AXES = ("revision_rounds", "rejection_sampling", "wrong_answer_policy", "pairs_per_function", "instance_fraction",
        "task_mix", "placement", "teacher")
# Run-specification fields a grid sets once for every branch (top-level grid keys).
SHARED_FIELDS = ("sources", "limit", "subset_seed", "model")
ALIASES = {"K": "pairs_per_function", "rounds": "revision_rounds", "rejection": "rejection_sampling",
           "wrong_answers": "wrong_answer_policy", "fraction": "instance_fraction"}
BASE_DEFAULTS: dict[str, Any] = {"teacher": "offline"}  # a sweep spends on an endpoint only when a branch asks
SHORT_NAMES = {"revision_rounds": "R", "rejection_sampling": "rej", "wrong_answer_policy": "wrong",
               "pairs_per_function": "K", "instance_fraction": "frac", "task_mix": "mix", "placement": "code",
               "teacher": "teacher"}
GRID_KEYS = ("name", *SHARED_FIELDS, "store", "llm_base_url", "max_parallel_branches", "base", "grid", "branches",
             "out_dir")
DEFAULT_PARALLEL = 2
TERMINAL_HIDDEN = ("run_id", "dataset_uri", "prompt_tokens", "completion_tokens")  # the files have them
SWEEP_DIR = ".codeio/sweeps"
NAME_PATTERN = re.compile(r"[^A-Za-z0-9_.=,+-]+")  # characters not kept in file names
STAGE_ORDER = ("ingest", "normalize", "collect_io", "build_prompts", "synthesize", "revise", "verify", "assemble")


class GridError(ValueError):
    pass


@dataclass(frozen=True)
class Branch:
    name: str
    spec: RunSpec  # the branch's whole run: the grid's shared fields, base, its own axes, defaults

    @property
    def params(self) -> dict[str, Any]:
        """Its value on every axis."""
        return {axis: getattr(self.spec, axis) for axis in AXES}


@dataclass(frozen=True)
class SweepGrid:
    name: str
    base: RunSpec  # what every branch shares before its own axes
    branches: tuple[Branch, ...]
    store: str | None = None
    llm_base_url: str | None = None
    max_parallel_branches: int = DEFAULT_PARALLEL
    out_dir: str | None = None
    varied: tuple[str, ...] = field(default=())  # axes whose value differs between branches

    def public(self) -> dict[str, Any]:
        return {"name": self.name, **{name: getattr(self.base, name) for name in SHARED_FIELDS},
                "max_parallel_branches": self.max_parallel_branches,
                "branches": [{"name": b.name, **b.params} for b in self.branches]}


def _spec(values: dict[str, Any], where: str) -> RunSpec:
    try:
        return RunSpec.model_validate(values)
    except ValidationError as error:
        raise GridError(f"{where}: " + "; ".join(spec_errors(error))) from error


def _axes(mapping: Any, where: str) -> dict[str, Any]:
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise GridError(f"{where} must be a mapping of axis -> value")
    out: dict[str, Any] = {}
    for raw_name, value in mapping.items():
        name = ALIASES.get(str(raw_name), str(raw_name))
        if name not in AXES:
            raise GridError(f"{where}: unknown axis {raw_name!r}; axes: {sorted(AXES)} (aliases {sorted(ALIASES)})")
        out[name] = value
    return out


def _branch_name(overrides: dict[str, Any]) -> str:
    """``K=6,rej=on``: the axes this branch sets itself (grid axes, or a listed branch's own)."""
    if not overrides:
        return "baseline"
    parts = []
    for axis in (a for a in AXES if a in overrides):
        value = overrides[axis]
        text = ("on" if value else "off") if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) else str(value)
        parts.append(f"{SHORT_NAMES[axis]}={text}")
    return ",".join(parts)


def parse_grid(data: dict[str, Any]) -> SweepGrid:
    """Validate a grid mapping and expand it into branches (deduplicated, in file order)."""
    if not isinstance(data, dict):
        raise GridError("a sweep grid is a YAML mapping")
    unknown = sorted(set(data) - set(GRID_KEYS))
    if unknown:
        raise GridError(f"unknown grid key(s) {unknown}; expected some of {list(GRID_KEYS)}")
    shared = {name: data[name] for name in SHARED_FIELDS if data.get(name) is not None}
    if isinstance(shared.get("sources"), str):
        shared["sources"] = [shared["sources"]]
    base = _spec({**shared, **BASE_DEFAULTS, **_axes(data.get("base"), "base")}, "base")
    grid = _axes(data.get("grid"), "grid")
    for axis, values in grid.items():
        if not isinstance(values, list) or not values:
            raise GridError(f"grid.{axis} must be a non-empty list of values")
    extra = data.get("branches") or []
    if not isinstance(extra, list) or not all(isinstance(item, dict) for item in extra):
        raise GridError("branches must be a list of axis mappings (optionally with a name)")
    # (overrides, explicit name, where) per branch: the grid's product, then the listed branches
    combos: list[tuple[dict[str, Any], str | None, str]] = [
        (dict(zip(grid, values)), None, "grid") for values in itertools.product(*grid.values())] if grid else []
    combos += [(_axes({k: v for k, v in item.items() if k != "name"}, f"branches[{i}]"), item.get("name"),
                f"branches[{i}]") for i, item in enumerate(extra)]
    if not combos:
        combos = [({}, None, "base")]
    branches: list[Branch] = []
    seen: set[str] = set()
    for overrides, name, where in combos:
        spec = _spec({**base.model_dump(), **overrides}, where)
        if spec.model_dump_json() in seen:
            continue
        seen.add(spec.model_dump_json())
        branches.append(Branch(str(name) if name else _branch_name(overrides), spec))
    if len({b.name for b in branches}) != len(branches):
        raise GridError(f"branch names must be unique: {[b.name for b in branches]}")
    varied = tuple(axis for axis in AXES if len({repr(b.params[axis]) for b in branches}) > 1)
    parallel = data.get("max_parallel_branches", DEFAULT_PARALLEL)
    if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
        raise GridError(f"max_parallel_branches must be a positive integer, got {parallel!r}")
    return SweepGrid(name=str(data.get("name") or "sweep"), base=base, branches=tuple(branches),
                     store=data.get("store"), llm_base_url=data.get("llm_base_url"),
                     max_parallel_branches=parallel, out_dir=data.get("out_dir"), varied=varied)


def check_endpoint(grid: SweepGrid, settings: Settings) -> None:
    """Fail before any work when a branch needs an LLM endpoint that is not configured."""
    if any(b.spec.teacher == "openai" for b in grid.branches) and not settings.llm_base_url:
        raise GridError("a branch uses teacher=openai but no LLM endpoint is set "
                        "(grid key llm_base_url, the flow parameter or CODEIO_LLM_BASE_URL)")


def load_grid(path: str | Path) -> SweepGrid:
    with fsspec.open(str(path), "r", encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    return parse_grid(data or {})


# ----------------------------------------------------------------------------- running


def _ingest_once(settings: Settings, grid: SweepGrid, lineage: Any, run_id: str) -> dict[str, Any]:
    """Every branch reads the same sources: ingest them here, once, in the sweep's own
    run, so that branches starting together all find the ingest manifest."""
    from codeio.sources import parse_source_specs
    from flows.orchestrator import Orchestrator

    orchestrator = Orchestrator(open_store(settings), None, lineage, run_id)
    _, _, summary = orchestrator.ingest(parse_source_specs(list(grid.base.sources)), grid.base.limit,
                                        settings.shard_size)
    return summary.as_dict()


@contextmanager
def shared_cluster(settings: Settings) -> Iterator[Settings]:
    """One local Dask cluster for all branches (not one per branch): when no scheduler
    is configured and shards do not run on threads, start it here and hand its address
    to every branch."""
    if settings.dask_address or settings.dask_workers == 0:
        yield settings
        return
    from distributed import LocalCluster

    with LocalCluster(**local_cluster_kwargs(local_workers(settings))) as cluster:
        yield settings.model_copy(update={"dask_address": cluster.scheduler_address})


class BranchFailed(RuntimeError):
    """A branch failed; the branches not started yet were not, the running ones stopped."""


def _run_branch(settings: Settings, branch: Branch, stop: StopRequest) -> dict[str, Any] | None:
    """One branch, unless another has failed (then None: not started). A failure sets
    ``stop``, which running branches see before their next stage (their Orchestrator's)."""
    if stop.is_set():
        return None
    try:
        return run_pipeline(settings, branch.spec, progress=False, kind="sweep-branch", stop=stop)
    except BaseException as error:
        stop.stop(f"branch {branch.name} failed ({type(error).__name__})")
        raise


def _run_branches(settings: Settings, grid: SweepGrid, pool: ThreadPoolExecutor) -> list[dict[str, Any]]:
    """Every branch's summary, or, when one fails, ``BranchFailed`` once the others
    have stopped (those not started yet never start)."""
    stop = StopRequest()
    futures = [pool.submit(contextvars.copy_context().run, _run_branch, settings, branch, stop)
               for branch in grid.branches]
    try:
        wait(futures)
    except BaseException:  # Ctrl-C: no branch starts, the running ones stop before their next stage
        stop.stop("the sweep was interrupted")
        raise
    errors = [(branch, future.exception()) for branch, future in zip(grid.branches, futures) if future.exception()]
    if errors:
        skipped = [branch.name for branch, future in zip(grid.branches, futures)
                   if not future.exception() and future.result() is None]
        stopped = [b.name for b, e in errors if isinstance(e, RunStopped)]
        branch, first = next(((b, e) for b, e in errors if not isinstance(e, RunStopped)), errors[0])
        raise BranchFailed(f"branch {branch.name} failed: {type(first).__name__}: {first}; stopped: "
                           f"{', '.join(stopped) or '-'}; not started: {', '.join(skipped) or '-'}") from first
    return [future.result() for future in futures]


def run_sweep(settings: Settings, grid: SweepGrid, out_dir: str | None = None) -> dict[str, Any]:
    """Run every branch (up to ``max_parallel_branches`` at once), then write the
    comparison table and the plot. Returns the sweep summary."""
    from flows.orchestrator import code_version, current_user
    from flows.process import end_gone_runs, run_status
    from storage.lineage import LineageDB

    check_endpoint(grid, settings)
    out_dir = out_dir or grid.out_dir or f"{SWEEP_DIR}/{NAME_PATTERN.sub('_', grid.name)}"
    lineage = LineageDB(settings.database_url)
    lineage.upgrade()
    end_gone_runs(lineage)
    run_id = lineage.start_run(kind="sweep", parameters=grid.public(), settings=settings.public_dump(),
                               code_version=code_version(), user=current_user())
    try:
        ingest = _ingest_once(settings, grid, lineage, run_id)
        # each thread runs in a copy of this context: its tasks and artifacts belong to this flow run
        with shared_cluster(settings) as cluster_settings:
            pool = ThreadPoolExecutor(max_workers=grid.max_parallel_branches, thread_name_prefix="sweep-branch")
            # branches share datasets stage by stage: a lane holds the claims of all its stages, so a
            # branch that shares only the first of them would wait for another branch's whole lane
            branch_settings = cluster_settings.model_copy(update={"fuse_stages": False})
            try:
                summaries = _run_branches(branch_settings, grid, pool)
            finally:  # an interrupted sweep does not wait for a branch blocked on an LLM request
                pool.shutdown(wait=False, cancel_futures=True)
        result = summarize_sweep(grid, summaries, lineage, run_id, ingest)
        result["files"] = write_outputs(result, out_dir)
        publish_sweep_artifacts(result)
        lineage.finish_run(run_id, "completed", summary={k: v for k, v in result.items() if k != "branches"})
    except BaseException as error:
        lineage.finish_run(run_id, run_status(error), summary={}, error=f"{type(error).__name__}: {error}")
        raise
    finally:
        lineage.close()
    return result


def summarize_sweep(grid: SweepGrid, summaries: list[dict[str, Any]], lineage: Any, run_id: str,
                    ingest: dict[str, Any] | None = None) -> dict[str, Any]:
    rounds = max((len(s["rounds"]) for s in summaries), default=0)
    rows = []
    for branch, summary in zip(grid.branches, summaries):
        by_round = {item["round"]: item for item in summary["rounds"]}
        llm = summary["llm"]
        row: dict[str, Any] = {"branch": branch.name}
        row.update({axis: branch.params[axis] for axis in AXES})
        row["samples"] = summary["samples"]
        row["verified"] = summary["verified_samples"]
        for number in range(1, rounds + 1):
            rate = by_round.get(number, {}).get("pass_rate")
            row[f"pass_rate_r{number}"] = rate
        row["prompt_tokens"] = llm["prompt_tokens"]
        row["completion_tokens"] = llm["completion_tokens"]
        row["tokens"] = llm["prompt_tokens"] + llm["completion_tokens"]
        row["cost_usd"] = llm["cost_usd"]
        row["stages_computed"] = sum(1 for s in summary["stages"] if s["shards_computed"] and not s["reused"])
        row["stages_reused"] = sum(1 for s in summary["stages"] if s["reused"])
        row["dataset_uri"] = summary["samples_dataset"]["uri"]
        row["run_id"] = summary["run_id"]
        rows.append(row)
    return {"sweep_run_id": run_id, "name": grid.name, "varied": list(grid.varied), "rows": rows,
            "shared": shared_datasets(grid, summaries, lineage, ingest),
            "branches": [{"name": b.name, "params": b.params, "summary": s} for b, s in zip(grid.branches, summaries)]}


def shared_datasets(grid: SweepGrid, summaries: list[dict[str, Any]], lineage: Any,
                    ingest: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Datasets used by more than one branch, with how often each was computed in this
    sweep (by the summaries: branches plus the sweep's own ingest) and by lineage
    (shards computed across all runs, earlier ones included)."""
    uses: dict[str, dict[str, Any]] = {}
    if ingest:
        uses[ingest["key"]] = {"stage": "ingest", "key": ingest["key"], "parts": ingest["parts"], "branches": [],
                               "shards_computed": ingest["shards_computed"]}
    for branch, summary in zip(grid.branches, summaries):
        for stage in summary["stages"]:
            item = uses.setdefault(stage["key"], {"stage": stage["stage"], "key": stage["key"], "parts": stage["parts"],
                                                  "branches": [], "shards_computed": 0})
            if branch.name not in item["branches"]:
                item["branches"].append(branch.name)
            item["shards_computed"] += stage["shards_computed"]
    shared = [item for item in uses.values() if len(item["branches"]) > 1]
    for item in shared:
        item["lineage_computations"] = lineage.stage_computations(item["key"])
    return sorted(shared, key=lambda i: (STAGE_ORDER.index(i["stage"]) if i["stage"] in STAGE_ORDER else 99, i["key"]))


# ----------------------------------------------------------------------------- outputs


def table_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def format_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def table_markdown(result: dict[str, Any]) -> str:
    rows = result["rows"]
    hidden = {axis for axis in AXES if axis not in result["varied"]} | {"run_id"}
    columns = [c for c in (rows[0] if rows else {}) if c not in hidden]
    lines = [f"# codeio sweep `{result['name']}` (run `{result['sweep_run_id']}`)", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(format_cell(row[c]) for c in columns) + " |")
    fixed = {axis: rows[0][axis] for axis in AXES if axis not in result["varied"]} if rows else {}
    if fixed:
        lines += ["", "fixed: " + ", ".join(f"{k}={format_cell(v)}" for k, v in fixed.items())]
    if result["shared"]:
        lines += ["", "## shared datasets (computed once)", "",
                  "| stage | dataset | branches | shards | computed (summaries) | computed (lineage) |",
                  "|---|---|---|---|---|---|"]
        for item in result["shared"]:
            lines.append(f"| {item['stage']} | `{item['key']}` | {len(item['branches'])} | {item['parts']} | "
                         f"{item['shards_computed']} | {item['lineage_computations']} |")
    return "\n".join(lines) + "\n"


def write_outputs(result: dict[str, Any], out_dir: str) -> dict[str, str]:
    """comparison.csv, comparison.md and outcomes.png under ``out_dir`` (a folder or URL)."""
    from flows.plots import outcomes_png

    base = out_dir.rstrip("/")
    files = {"csv": f"{base}/comparison.csv", "markdown": f"{base}/comparison.md", "plot": f"{base}/outcomes.png"}
    png = outcomes_png([(b["name"], b["summary"]["rounds"]) for b in result["branches"]],
                       title=f"sweep {result['name']}: verdicts per revision round")
    for kind, payload in (("csv", table_csv(result["rows"]).encode()), ("markdown", table_markdown(result).encode()),
                          ("plot", png)):
        with fsspec.open(files[kind], "wb", auto_mkdir=True) as handle:
            handle.write(payload)
    if "://" not in base:
        files = {kind: str(Path(path).resolve()) for kind, path in files.items()}
    return files


def publish_sweep_artifacts(result: dict[str, Any]) -> None:
    from prefect.artifacts import create_markdown_artifact, create_table_artifact
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is None:
        return
    create_table_artifact(table=result["rows"], key="codeio-sweep-table",
                          description=f"sweep {result['name']}: one row per branch")
    files = result.get("files") or {}
    links = "\n".join(f"- {kind}: `{path}`" for kind, path in files.items())
    create_markdown_artifact(markdown=table_markdown(result) + ("\n## files\n\n" + links + "\n" if links else ""),
                             key="codeio-sweep", description=f"sweep {result['name']}")


# ----------------------------------------------------------------------------- entry points


@flow(name="codeio-ablation-sweep", log_prints=True)
def codeio_ablation_sweep(
    grid: str | dict[str, Any] = "examples/sweep.yaml",
    out_dir: str | None = None,
    store: str | None = None,
    llm_base_url: EndpointURL | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Run an ablation grid (a YAML path, relative to the working directory, or the
    grid itself) and publish the comparison table."""
    parsed = load_grid(grid) if isinstance(grid, str) else parse_grid(grid)
    settings = load_settings(store=store or parsed.store,
                             llm_base_url=endpoint_value(llm_base_url) or parsed.llm_base_url,
                             llm_model=model or parsed.base.model)
    result = run_sweep(settings, parsed, out_dir)
    get_run_logger().info("sweep %s: %d branches, %d shared datasets; table %s", parsed.name, len(result["rows"]),
                          len(result["shared"]), result["files"].get("markdown"))
    return {k: v for k, v in result.items() if k != "branches"}
