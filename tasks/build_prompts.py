"""Prefect task: build prediction instances for one shard."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from codeio.stages import build_prompts as stage
from tasks import resources
from tasks.shard import ShardJob, ShardOutcome, execute, read


def _compute(store, job: ShardJob):
    functions = read(store, job.inputs["functions"], job.part)
    pairs = read(store, job.inputs["pairs"], job.part)
    output = stage.build_prompts_shard(functions, pairs, job.config, resources.templates(job.runtime))
    return output, len(pairs)


@task(name="build-prompts-shard", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def build_prompts_task(job: ShardJob) -> ShardOutcome:
    return execute(job, stage.WRITES, _compute)
