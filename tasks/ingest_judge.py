"""Prefect task of PyEdu-R's optional LLM judge: one shard of ingestion candidates
through codeio.ingest.judge (the worker's LLM client, its response cache)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from codeio.ingest import judge as stage
from codeio.ingest.select import CANDIDATE
from tasks import resources
from tasks.shard import ShardJob, ShardOutcome, execute, read


def _compute(store, job: ShardJob):
    candidates = read(store, job.inputs["candidates"], job.part)
    template = resources.templates(job.runtime).text(stage.TEMPLATE_NAME)
    return stage.judge_shard(candidates, job.config, resources.llm(job.runtime), template), len(candidates)


@task(name="ingest-judge-shard", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def ingest_judge_task(job: ShardJob) -> ShardOutcome:
    return execute(job, CANDIDATE, _compute)
