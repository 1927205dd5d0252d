"""Prefect task: assemble one shard of final samples."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from codeio.stages import assemble as stage
from tasks import resources
from tasks.shard import ShardJob, ShardOutcome, execute, read


def _compute(store, job: ShardJob):
    instances = read(store, job.inputs["instances"], job.part)
    rounds = {
        r: (read(store, job.inputs[f"responses_{r}"], job.part), read(store, job.inputs[f"verdicts_{r}"], job.part))
        for r in range(1, int(job.options["rounds"]) + 1)
    }
    return stage.assemble_shard(instances, rounds, job.config, resources.templates(job.runtime)), len(instances)


@task(name="assemble-shard", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def assemble_task(job: ShardJob) -> ShardOutcome:
    return execute(job, stage.WRITES, _compute)
