"""Prefect task: verify one shard of answers by execution."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from codeio.stages import verify as stage
from tasks import resources
from tasks.shard import ShardJob, ShardOutcome, execute, read


def _compute(store, job: ShardJob):
    instances = read(store, job.inputs["instances"], job.part)
    responses = read(store, job.inputs["responses"], job.part)
    output = stage.verify_shard(instances, responses, job.config, resources.sandbox(job.runtime),
                                resources.templates(job.runtime), parallelism=resources.parallelism(job.runtime))
    output.stats[resources.SANDBOX_STAT] = resources.sandbox_report(job.runtime)
    return output, len(responses)


@task(name="verify-shard", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def verify_task(job: ShardJob) -> ShardOutcome:
    return execute(job, stage.WRITES, _compute)
