"""Evaluation tasks: the benchmark's questions as a dataset, and the judge shard task.

The questions are written by the flow process (the benchmark file is local to
it), in shards of ``shard_size`` like ingest, under a key made of the file's
hash and everything the prompts depend on; the synthesize stage then answers
them exactly as it answers pipeline instances (same client, response cache).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

from prefect import task
from prefect.cache_policies import NO_CACHE

from codeio.evaluation import judge as stage
from codeio.evaluation.benchmarks import Benchmark
from codeio.records import INSTANCE
from codeio.stages.base import dataset_key
from storage.store import DataStore
from tasks import resources
from tasks.shard import DatasetRef, ShardJob, ShardOutcome, execute, read

QUESTIONS_STAGE = "eval_questions"
QUESTIONS_VERSION = "1"


@dataclass(frozen=True)
class QuestionsConfig:
    benchmark: str  # kind
    sha256: str  # the file's content
    limit: int | None
    placement: str
    template_label: str
    template_hash: str
    shard_size: int


def write_questions(store: DataStore, bench: Benchmark, config: QuestionsConfig) -> tuple[DatasetRef, list[dict]]:
    """The questions dataset (reused when already in the store) and its part markers.
    Rows that gave no question are the first part's rejects."""
    key = dataset_key(QUESTIONS_STAGE, QUESTIONS_VERSION, config)
    manifest = store.manifest(QUESTIONS_STAGE, key)
    if manifest is not None:
        parts = int(manifest["parts"])
        return (DatasetRef(QUESTIONS_STAGE, key, parts),
                [dict(store.part_marker(QUESTIONS_STAGE, key, p) or {}, cached=True) for p in range(parts)])
    size = config.shard_size
    chunks = [bench.questions[i:i + size] for i in range(0, len(bench.questions), size)] or [[]]
    markers = []
    for part, chunk in enumerate(chunks):
        started, start = datetime.now(timezone.utc).isoformat(), time.perf_counter()
        rejects = bench.rejects if part == 0 else []
        by_reason: dict[str, int] = {}
        for item in rejects:
            by_reason[item["reason"]] = by_reason.get(item["reason"], 0) + 1
        # in = out + rejected, in questions: a rejected row counts as one
        stats = {"records_in": len(chunk) + len(rejects), "rejects_by_reason": by_reason,
                 "stats": {"rows": bench.rows if part == 0 else 0}, "started_at": started,
                 "finished_at": datetime.now(timezone.utc).isoformat(),
                 "seconds": round(time.perf_counter() - start, 4)}
        markers.append(dict(store.write_part(QUESTIONS_STAGE, key, part, INSTANCE, chunk, rejects, stats),
                            cached=False))
    store.write_manifest(QUESTIONS_STAGE, key, {
        "stage": QUESTIONS_STAGE, "key": key, "version": QUESTIONS_VERSION, "parts": len(chunks), "parents": {},
        "schema": INSTANCE.columns, "records": len(bench.questions), "rejected": len(bench.rejects),
        "benchmark": bench.spec.text, "sha256": bench.sha256,
    })
    return DatasetRef(QUESTIONS_STAGE, key, len(chunks)), markers


def _compute(store, job: ShardJob):
    questions = read(store, job.inputs["questions"], job.part)
    samples = [read(store, job.inputs[f"responses_{s}"], job.part) for s in range(int(job.options["samples"]))]
    output = stage.judge_shard(questions, samples, job.config, resources.sandbox(job.runtime),
                               resources.templates(job.runtime), parallelism=resources.parallelism(job.runtime))
    output.stats[resources.SANDBOX_STAT] = resources.sandbox_report(job.runtime)
    return output, sum(len(responses) for responses in samples)


@task(name="eval-judge-shard", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def eval_judge_task(job: ShardJob) -> ShardOutcome:
    return execute(job, stage.WRITES, _compute)
