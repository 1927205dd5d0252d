"""Prefect task: read the sources into shards of SourceFile records.

Runs in the flow process (the source paths are local to it); the dataset key
is a hash of the files' contents, the limit and the shard size, so the same
files give the same key on any machine.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from dataclasses import dataclass

from prefect import task
from prefect.cache_policies import NO_CACHE

from codeio.records import SOURCE_FILE, reject
from codeio.sources import MAX_SOURCE_BYTES_DEFAULT, SourceSpec, fingerprint_sources, read_sources
from codeio.stages.base import dataset_key
from storage.store import DataStore
from tasks.shard import DatasetRef

VERSION = "1"


@dataclass(frozen=True)
class IngestConfig:
    sources: tuple[tuple[str, ...], ...]  # content fingerprints of every file behind the specs
    limit: int | None
    shard_size: int
    max_bytes: int = MAX_SOURCE_BYTES_DEFAULT


def ingest_config(specs: list[SourceSpec], limit: int | None, shard_size: int) -> IngestConfig:
    return IngestConfig(tuple(tuple(p) for p in fingerprint_sources(specs)), limit, shard_size)


@task(name="ingest", cache_policy=NO_CACHE)
def ingest_task(specs: list[SourceSpec], config: IngestConfig, store: DataStore) -> tuple[DatasetRef, list[dict]]:
    """Returns the dataset and one marker per part (counts, rejects by reason)."""
    key = dataset_key("ingest", VERSION, config)
    manifest = store.manifest("ingest", key)
    if manifest is not None:
        parts = int(manifest["parts"])
        markers = [dict(store.part_marker("ingest", key, p) or {}, cached=True) for p in range(parts)]
        return DatasetRef("ingest", key, parts), markers
    markers: list[dict] = []
    seen: set[str] = set()
    records: list[dict] = []
    rejects: list[dict] = []
    rows_in = 0
    start, started_at = time.perf_counter(), datetime.now(timezone.utc).isoformat()

    def flush() -> None:
        nonlocal records, rejects, rows_in, start, started_at
        by_reason: dict[str, int] = {}
        for item in rejects:
            by_reason[item["reason"]] = by_reason.get(item["reason"], 0) + 1
        raw = sum(1 for record in records if record["kind"] != "unified")  # raw files and problems
        stats = {"records_in": rows_in, "rejects_by_reason": by_reason, "stats": {"raw": raw},
                 "seconds": round(time.perf_counter() - start, 4), "started_at": started_at,
                 "finished_at": datetime.now(timezone.utc).isoformat()}
        markers.append(dict(store.write_part("ingest", key, len(markers), SOURCE_FILE, records, rejects, stats), cached=False))
        records, rejects, rows_in = [], [], 0
        start, started_at = time.perf_counter(), datetime.now(timezone.utc).isoformat()

    for outcome in read_sources(specs, config.limit, config.max_bytes):
        rows_in += 1
        if outcome.record is None:
            rejects.append(outcome.rejected)
        elif outcome.record["source_id"] in seen:
            rejects.append(reject(outcome.record["source_id"], "duplicate_content",
                                  f"same content as an earlier row ({outcome.record['origin']})"))
        else:
            seen.add(outcome.record["source_id"])
            records.append(outcome.record)
        if len(records) >= config.shard_size:
            flush()
    if records or rejects or not markers:
        flush()
    store.write_manifest("ingest", key, {
        "stage": "ingest", "key": key, "version": VERSION, "parts": len(markers), "parents": {},
        "schema": SOURCE_FILE.columns, "records": sum(m["records"] for m in markers),
        "rejected": sum(m["rejected"] for m in markers),
    })
    return DatasetRef("ingest", key, len(markers)), markers
