"""Prefect task: one shard through several stages in a row (a lane).

Every stage but an LLM stage reads only its own part of its parents, so a shard
can go from collect_io to assemble in one task: no barrier between stages and
one task run instead of one per stage (a Prefect task run costs ~0.1 s of a
worker's time). Each stage in the lane still writes its own dataset part and
completion marker, so a retried lane skips the stages it had finished, and the
flow writes each dataset's manifest once all its parts are done.

A group (``group_task``) runs several lanes, one part after the other, in one
task run: the ingestion flow's stages have tens of shards of cheap work each,
and every task run costs its worker two Prefect clients and its API calls.
Each part keeps its own key and marker, so a rerun or a retry of the group
skips the parts it finds done, and memory stays bounded by one part.
"""

from __future__ import annotations

from typing import Any, Callable

from prefect import task
from prefect.cache_policies import NO_CACHE

from codeio.records import Schema
from tasks import assemble, build_prompts, collect_io, ingest_shards, normalize, synthesize, verify
from tasks.shard import ShardJob, ShardOutcome, execute

# what each stage task runs, by the task's name
STEPS: dict[str, tuple[Schema, Callable[..., Any]]] = {
    normalize.normalize_task.name: (normalize.stage.WRITES, normalize._compute),
    collect_io.collect_io_task.name: (collect_io.stage.WRITES, collect_io._compute),
    build_prompts.build_prompts_task.name: (build_prompts.stage.WRITES, build_prompts._compute),
    synthesize.synthesize_task.name: (synthesize.stage.WRITES, synthesize._compute),
    verify.verify_task.name: (verify.stage.WRITES, verify._compute),
    assemble.assemble_task.name: (assemble.stage.WRITES, assemble._compute),
    ingest_shards.ingest_select_task.name: (ingest_shards.stage.CANDIDATE, ingest_shards._select),
    ingest_shards.ingest_dedup_task.name: (ingest_shards.stage.DECISION, ingest_shards._resolve),
    ingest_shards.ingest_finalize_task.name: (ingest_shards.stage.SOURCE_FILE, ingest_shards._finalize),
}


def run_lane(steps: list[tuple[str, ShardJob]]) -> list[ShardOutcome]:
    """Run each (task name, job) in order; all jobs are for the same part."""
    if len({job.part for _, job in steps}) > 1:
        raise ValueError(f"a lane runs one part, got {[job for _, job in steps]}")
    outcomes = []
    for index, (name, job) in enumerate(steps):
        schema, compute = STEPS[name]
        outcome = execute(job, schema, compute)
        if outcome.stats.get("retryable") and index < len(steps) - 1:
            # the next stages would read an incomplete part and mark theirs done: stop here (a retry of
            # the lane redoes only this stage's part); only a lane's last stage may leave such failures
            raise RuntimeError(f"{job!r} left transient failures in the middle of a lane")
        outcomes.append(outcome)
    return outcomes


@task(name="shard-lane", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def lane_task(steps: list[tuple[str, ShardJob]]) -> list[ShardOutcome]:
    return run_lane(steps)


def run_group(lanes: list[list[tuple[str, ShardJob]]]) -> list[list[ShardOutcome]]:
    """Run each lane (one part each) in order; a part's failure stops the group (a
    retry redoes that part and the ones after it: the others are found done)."""
    return [run_lane(steps) for steps in lanes]


@task(name="shard-group", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def group_task(lanes: list[list[tuple[str, ShardJob]]]) -> list[list[ShardOutcome]]:
    return run_group(lanes)
