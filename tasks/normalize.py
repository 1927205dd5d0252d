"""Prefect task: normalize one shard of source files."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from codeio.stages import normalize as stage
from tasks import resources
from tasks.shard import ShardJob, ShardOutcome, execute, read


def _compute(store, job: ShardJob):
    sources = read(store, job.inputs["sources"], job.part)
    templates = resources.templates(job.runtime)
    template = templates.texts.get("normalize_json" if job.config.json_mode else "normalize")
    return stage.normalize_shard(sources, job.config, resources.llm(job.runtime), template=template), len(sources)


@task(name="normalize-shard", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def normalize_task(job: ShardJob) -> ShardOutcome:
    return execute(job, stage.WRITES, _compute)
