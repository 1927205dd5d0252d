"""Prefect tasks of the ingestion flow: select one unit, resolve duplicates over all
candidates, finalize one shard. Each is a few lines around codeio.ingest.select."""

from __future__ import annotations

import json
from typing import Any

import fsspec
from prefect import task
from prefect.cache_policies import NO_CACHE

from codeio.ingest import select as stage
from codeio.ingest.decontam import DecontamConfig, EvalIndex
from codeio.ingest.readers import is_remote, read_unit
from tasks import resources
from tasks.shard import ShardJob, ShardOutcome, execute, read

RESOLVER_COLUMNS = ["source_id", "source_name", "origin", "row_order", "exact_hash", "minhash"]


def source_options(job: ShardJob) -> dict[str, Any]:
    spec = job.runtime.sources
    return json.loads(spec.storage_options_json) if spec is not None else {}


def opener(options: dict[str, Any]):
    def open_file(path: str):
        # compression from the file name: .gz (gzip), .zst (zstandard); Parquet stays seekable
        return fsspec.open(path, "rb", compression="infer", **(options if is_remote(path) else {}))
    return open_file


def read_source_bytes(options: dict[str, Any]):
    def read(path: str) -> bytes:
        with opener(options)(path) as handle:
            return handle.read()
    return read


def eval_index(job: ShardJob, config: DecontamConfig | None) -> EvalIndex | None:
    """Built once per worker process and config."""
    if config is None or not config.eval_sets:
        return None
    return resources._get("eval-index", config, lambda: EvalIndex.build(config, read_source_bytes(source_options(job))))


def _select(store, job: ShardJob):
    unit = stage.unit_from_json(store.read_json(stage.units_rel(job.config.units_digest, job.part)))
    outcomes = read_unit(unit, opener(source_options(job)), job.config.max_bytes)
    counted = _Counted(outcomes)
    output = stage.select_shard(counted, job.config, eval_index(job, job.config.decontam))
    return output, counted.count


class _Counted:
    """Counts the rows a reader yields (rows in = candidates + rejects)."""

    def __init__(self, items):
        self.items, self.count = items, 0

    def __iter__(self):
        for item in self.items:
            self.count += 1
            yield item


def _resolve(store, job: ShardJob):
    ref = job.inputs["candidates"]
    candidates = []
    for part in range(ref.parts):
        rows = store.read_frame(ref.stage, ref.key, part, columns=RESOLVER_COLUMNS).to_dicts()
        candidates.extend(stage.candidates_of(part, rows))
    return stage.dedup_decisions(candidates, job.config), len(candidates)


def _finalize(store, job: ShardJob):
    import polars as pl

    candidates = read(store, job.inputs["candidates"], job.part)
    decisions_ref = job.inputs["decisions"]
    frame = store.read_frame(decisions_ref.stage, decisions_ref.key, 0)
    decisions = frame.filter(pl.col("part") == job.part).to_dicts()
    return stage.finalize_shard(candidates, decisions), len(candidates)


@task(name="ingest-select-shard", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def ingest_select_task(job: ShardJob) -> ShardOutcome:
    return execute(job, stage.CANDIDATE, _select)


@task(name="ingest-dedup", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def ingest_dedup_task(job: ShardJob) -> ShardOutcome:
    return execute(job, stage.DECISION, _resolve)


@task(name="ingest-finalize-shard", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def ingest_finalize_task(job: ShardJob) -> ShardOutcome:
    return execute(job, stage.SOURCE_FILE, _finalize)
