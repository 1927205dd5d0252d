"""Prefect tasks of the ingestion flow: select one unit; find the LSH components
that span shards (one task over band keys); decide one shard's duplicates with the
members of its components in other shards; finalize one shard. Each is a few lines
around codeio.ingest.select."""

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

RESOLVER_COLUMNS = stage.RESOLVER_COLUMNS
KEY_COLUMNS = ["row_order", "exact_hash", "minhash"]


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


def _components(store, job: ShardJob):
    """The members of the components that span shards, with what the resolver needs."""
    import numpy as np
    import polars as pl

    ref = job.inputs["candidates"]

    def shards():
        for part in range(ref.parts):
            frame = store.read_frame(ref.stage, ref.key, part, columns=KEY_COLUMNS)
            yield part, frame["row_order"].to_list(), frame["exact_hash"].to_list(), frame["minhash"].to_list()

    parts, rows, labels = stage.dedup_components(shards(), job.config)
    spans = stage.cross_part(parts, labels)
    links = []
    for part in np.unique(parts[spans]).tolist():
        mine = spans & (parts == part)
        wanted = pl.DataFrame({"row_order": rows[mine], "component": labels[mine]})
        frame = store.read_frame(ref.stage, ref.key, part, columns=RESOLVER_COLUMNS)
        linked = frame.join(wanted, on="row_order", how="inner").with_columns(part=pl.lit(part, dtype=pl.Int64))
        links.extend(linked.select(stage.LINK.columns).to_dicts())
    out = stage.StageOutput(records=links, kept=len(labels),
                            stats={"components": int(np.unique(labels).size), "linked": len(links)})
    return out, len(labels)


def _resolve(store, job: ShardJob):
    """One shard's decisions: its candidates, walked with the other shards' members of their components."""
    import polars as pl

    ref, links_ref = job.inputs["candidates"], job.inputs["links"]
    own = store.read_frame(ref.stage, ref.key, job.part, columns=RESOLVER_COLUMNS).to_dicts()
    links = store.read_frame(links_ref.stage, links_ref.key, 0)
    touching = links.filter(pl.col("part") == job.part)["component"].unique()
    others = links.filter(pl.col("component").is_in(touching.implode()) & (pl.col("part") != job.part))
    context = [candidate for row in others.to_dicts() for candidate in stage.candidates_of(int(row["part"]), [row])]
    return stage.dedup_partition(job.part, stage.candidates_of(job.part, own), context, job.config), len(own)


def _finalize(store, job: ShardJob):
    candidates = read(store, job.inputs["candidates"], job.part)
    decisions_ref = job.inputs["decisions"]
    decisions = store.read_frame(decisions_ref.stage, decisions_ref.key, job.part).to_dicts()
    return stage.finalize_shard(candidates, decisions), len(candidates)


@task(name="ingest-select-shard", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def ingest_select_task(job: ShardJob) -> ShardOutcome:
    return execute(job, stage.CANDIDATE, _select)


@task(name="ingest-lsh-components", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def ingest_components_task(job: ShardJob) -> ShardOutcome:
    return execute(job, stage.LINK, _components)


@task(name="ingest-dedup-shard", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def ingest_dedup_task(job: ShardJob) -> ShardOutcome:
    return execute(job, stage.DECISION, _resolve)


@task(name="ingest-finalize-shard", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def ingest_finalize_task(job: ShardJob) -> ShardOutcome:
    return execute(job, stage.SOURCE_FILE, _finalize)
