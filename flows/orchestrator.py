"""Running stages over shards: reuse what is done, map the rest, keep the books.

The flow process owns the lineage database (so SQLite never sees concurrent
writers) and the summary; shard tasks run wherever the task runner puts them.
A dataset whose manifest exists in the store is reused without submitting a
single task.
"""

from __future__ import annotations

import getpass
import subprocess
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from prefect.futures import as_completed

from codeio.records import stable_id
from codeio.stages.base import config_dict, dataset_key
from flows.progress import StageProgress
from storage.store import DataStore
from tasks.resources import RuntimeSpec
from tasks.shard import DatasetRef, ShardJob, ShardOutcome

SCHEMA_VERSION = "1"


def code_version() -> str:
    """The package version plus the git commit when running from a checkout."""
    from codeio import __version__

    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass
class StageSummary:
    stage: str
    label: str
    key: str
    uri: str
    parts: int
    records_in: int = 0
    records_out: int = 0
    rejected: int = 0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    reused: bool = False  # the whole dataset existed before this run
    retryable: int = 0  # transient LLM failures left in it: the next run retries them
    shards_computed: int = 0
    seconds: float = 0.0
    stats: list[dict[str, Any]] = field(default_factory=list)  # per-shard stage stats
    llm: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage, "label": self.label, "key": self.key, "uri": self.uri, "parts": self.parts,
            "in": self.records_in, "out": self.records_out, "rejected": self.rejected,
            "rejects_by_reason": dict(sorted(self.rejects_by_reason.items())), "reused": self.reused,
            "shards_computed": self.shards_computed, "seconds": round(self.seconds, 3), "llm": self.llm,
            "counters": merge_counters(self.stats), "retryable": self.retryable,
        }


def _when(value: Any) -> datetime:
    """Marker timestamps are ISO strings; markers of older layouts may lack them."""
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value)
    return datetime.now(timezone.utc)


def merge_counters(stats: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the numeric counters (and counter dicts) that shards report, except LLM usage."""
    total: dict[str, Any] = {}
    for item in stats:
        for name, value in item.items():
            if name == "llm":
                continue
            if isinstance(value, dict):
                bucket = total.setdefault(name, {})
                for k, v in value.items():
                    if isinstance(v, (int, float)):
                        bucket[k] = bucket.get(k, 0) + v
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                total[name] = total.get(name, 0) + value
    return total


class DatasetClaims:
    """One lock per (store, dataset key) in this process. Branches of a sweep that run
    at the same time and reach the same dataset take turns: the first computes it,
    the others wait, then find its manifest and reuse it (computed once)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], threading.Lock] = {}

    @contextmanager
    def hold(self, store_url: str, key: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault((store_url, key), threading.Lock())
        with lock:
            yield


@lru_cache(maxsize=1)
def dataset_claims() -> DatasetClaims:
    """The process's claims (a lazily created per-process resource)."""
    return DatasetClaims()


def merge_llm(stats: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for item in stats:
        for name, value in (item.get("llm") or {}).items():
            if isinstance(value, dict):
                bucket = total.setdefault(name, {})
                for k, v in value.items():
                    bucket[k] = bucket.get(k, 0) + v
            elif isinstance(value, (int, float)):
                total[name] = total.get(name, 0) + value
    return total


class Orchestrator:
    def __init__(self, store: DataStore, runtime: RuntimeSpec, lineage: Any, run_id: str,
                 progress: StageProgress | None = None):
        self.store = store
        self.runtime = runtime
        self.lineage = lineage
        self.run_id = run_id
        self.progress = progress or StageProgress(enabled=False)
        self.stages: list[StageSummary] = []
        self.code_version = code_version()
        # how a shard task is submitted: set by the flow to its Dask or thread-pool runner
        self.submit: Any = lambda task, job: task.submit(job)

    def record_outcomes(self, summary: StageSummary, outcomes: list[ShardOutcome | dict[str, Any]], config: Any,
                        parents: dict[str, str]) -> None:
        computed: list[dict[str, Any]] = []
        for outcome in outcomes:
            data = outcome if isinstance(outcome, dict) else outcome.__dict__
            summary.records_in += int(data.get("records_in", 0))
            summary.records_out += int(data.get("records_out", data.get("records", 0)))
            summary.rejected += int(data.get("rejected", 0))
            for reason, count in (data.get("rejects_by_reason") or {}).items():
                summary.rejects_by_reason[reason] = summary.rejects_by_reason.get(reason, 0) + count
            summary.stats.append(dict(data.get("stats") or {}))
            summary.seconds += float(data.get("seconds", 0.0))
            if not data.get("cached", False):
                summary.shards_computed += 1
            self.lineage.record_stage_run(
                run_id=self.run_id, stage=summary.stage, dataset_key=summary.key, shard=int(data.get("part", 0)),
                started_at=_when(data.get("started_at")), finished_at=_when(data.get("finished_at")),
                records_in=int(data.get("records_in", 0)),
                records_out=int(data.get("records_out", data.get("records", 0))),
                records_rejected=int(data.get("rejected", 0)),
                rejects_by_reason=dict(data.get("rejects_by_reason") or {}),
                cached=bool(data.get("cached", False)),
                llm={} if data.get("cached") else dict((data.get("stats") or {}).get("llm") or {}),
            )
            if not data.get("cached"):
                computed.append(dict(data.get("stats") or {}))
        # LLM usage of this run only: shards found done cost nothing now
        summary.llm = merge_llm(computed)
        self.lineage.record_dataset(
            dataset_key=summary.key, stage=summary.stage, uri=summary.uri, config=config_dict(config),
            parents=list(parents.values()), counts={"in": summary.records_in, "out": summary.records_out,
                                                    "rejected": summary.rejected},
            schema_version=SCHEMA_VERSION, code_version=self.code_version,
        )
        self.lineage.link_run_dataset(self.run_id, summary.key, "reused" if summary.reused else "produced")
        self.stages.append(summary)

    def run_stage(self, stage: str, version: str, task: Any, config: Any, inputs: dict[str, DatasetRef], parts: int,
                  options: dict[str, Any] | None = None, label: str | None = None) -> DatasetRef:
        """Reuse or compute one dataset while holding this process's claim on its key."""
        key = self.key_of(stage, version, config, inputs, options)
        with dataset_claims().hold(self.store.url, key):
            return self._run_stage(stage, version, task, config, inputs, parts, options, label)

    def _run_stage(self, stage: str, version: str, task: Any, config: Any, inputs: dict[str, DatasetRef], parts: int,
                   options: dict[str, Any] | None = None, label: str | None = None) -> DatasetRef:
        options = dict(options or {})
        parents = {name: ref.key for name, ref in inputs.items()}
        key = self.key_of(stage, version, config, inputs, options)
        summary = StageSummary(stage=stage, label=label or stage, key=key,
                               uri=self.store.uri(self.store.dataset_dir(stage, key)), parts=parts)
        manifest = self.store.manifest(stage, key)
        if manifest is not None and not manifest.get("retryable"):
            summary.reused = True
            markers = [dict(self.store.part_marker(stage, key, part) or {}, cached=True) for part in range(parts)]
            self.progress.done(summary.label, parts)
            self.record_outcomes(summary, markers, config, parents)
            return DatasetRef(stage, key, parts)
        jobs = [ShardJob(stage=stage, key=key, part=part, config=config, inputs=inputs, runtime=self.runtime,
                         options=options) for part in range(parts)]
        futures = [self.submit(task, job) for job in jobs]
        outcomes: list[ShardOutcome] = []
        with self.progress.track(summary.label, parts) as advance:
            for future in as_completed(futures):
                outcome = future.result()
                outcomes.append(outcome)
                advance(outcome.records_out)
        outcomes.sort(key=lambda o: o.part)
        self.record_outcomes(summary, outcomes, config, parents)
        retryable = sum(int(o.stats.get("retryable", 0)) for o in outcomes)
        revision = stable_id("revision", [(o.part, o.finished_at, o.records_out, o.rejected) for o in outcomes]) \
            if retryable else ""
        summary.retryable = retryable
        self.store.write_manifest(stage, key, {
            "stage": stage, "key": key, "version": version, "parts": parts, "parents": parents,
            "parent_refs": {name: [ref.stage, ref.key] for name, ref in inputs.items()},
            "config": config_dict(config), "options": options, "schema_version": SCHEMA_VERSION,
            "records": summary.records_out, "rejected": summary.rejected, "code_version": self.code_version,
            "retryable": retryable, "revision": revision,
        })
        return DatasetRef(stage, key, parts, revision)

    @staticmethod
    def key_of(stage: str, version: str, config: Any, inputs: dict[str, DatasetRef],
               options: dict[str, Any] | None) -> str:
        identities = {name: ref.identity for name, ref in inputs.items()}
        return dataset_key(stage, version, {"config": config_dict(config), "options": dict(options or {})}, identities)
