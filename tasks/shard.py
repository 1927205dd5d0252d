"""The one piece every shard task shares: skip what is done, run, write, report.

A shard is idempotent: its output key is fixed by the dataset key and the part
number, its completion marker is written last, and a rerun that finds the
marker returns the recorded outcome without reading any input.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from codeio.records import Schema
from codeio.stages.base import StageOutput, config_dict
from storage.store import DataStore
from tasks.resources import RuntimeSpec


@dataclass(frozen=True)
class DatasetRef:
    stage: str
    key: str
    parts: int
    # "" for a complete dataset; for one holding transient failures, a digest of its
    # shards as written now, so datasets built on it are rebuilt once it is retried
    revision: str = ""

    @property
    def identity(self) -> str:
        """What a child's dataset key depends on."""
        return f"{self.key}@{self.revision}" if self.revision else self.key


@dataclass(frozen=True)
class ShardJob:
    stage: str
    key: str
    part: int
    config: Any  # the stage's frozen config
    inputs: dict[str, DatasetRef]
    runtime: RuntimeSpec
    options: dict[str, Any] = field(default_factory=dict)  # e.g. round number, history refs

    def __repr__(self) -> str:
        return f"ShardJob({self.stage}/{self.key}#{self.part})"


@dataclass(frozen=True)
class ShardOutcome:
    stage: str
    key: str
    part: int
    records_in: int
    records_out: int  # kept, in the unit of records_in (functions for collect_io, which writes pairs)
    rejected: int
    rejects_by_reason: dict[str, int]
    stats: dict[str, Any]
    cached: bool
    started_at: str
    finished_at: str
    seconds: float
    written: int = 0  # the records the shard wrote (its dataset's own unit: pairs for collect_io)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def execute(job: ShardJob, schema: Schema, compute: Callable[[DataStore, ShardJob], tuple[StageOutput, int]]) -> ShardOutcome:
    store = job.runtime.store.open()
    marker = store.part_marker(job.stage, job.key, job.part)
    if marker is not None and not marker.get("retryable"):
        return _outcome(job, marker, cached=True)
    started_at, start = _now(), time.perf_counter()
    output, records_in = compute(store, job)
    marker = store.write_part(
        job.stage, job.key, job.part, schema, output.records, output.rejects,
        {
            "records_in": records_in,
            "rejected": output.rejected(),  # over the store's count of reject records
            "rejects_by_reason": output.rejects_by_reason(),
            "stats": output.stats,
            "started_at": started_at,
            "finished_at": _now(),
            "seconds": round(time.perf_counter() - start, 4),
            "config": config_dict(job.config),
            "retryable": int(output.stats.get("retryable", 0)),  # transient failures: rerun this shard
            "kept": len(output.records) if output.kept is None else output.kept,  # in the unit of records_in
        },
    )
    return _outcome(job, marker, cached=False)


def _outcome(job: ShardJob, marker: dict[str, Any], cached: bool) -> ShardOutcome:
    return ShardOutcome(
        stage=job.stage,
        key=job.key,
        part=job.part,
        records_in=int(marker["records_in"]),
        records_out=int(marker.get("kept", marker["records"])),
        rejected=int(marker["rejected"]),
        rejects_by_reason=dict(marker.get("rejects_by_reason") or {}),
        stats=dict(marker.get("stats") or {}),
        cached=cached,
        started_at=marker.get("started_at", ""),
        finished_at=marker.get("finished_at", ""),
        seconds=float(marker.get("seconds", 0.0)),
        written=int(marker["records"]),
    )


def read(store: DataStore, ref: DatasetRef, part: int) -> list[dict[str, Any]]:
    return store.read_part(ref.stage, ref.key, part)
