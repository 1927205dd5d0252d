"""Prefect task: collect input/output pairs for one shard of functions."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from codeio.stages import collect_io as stage
from tasks import resources
from tasks.shard import ShardJob, ShardOutcome, execute, read


def _compute(store, job: ShardJob):
    functions = read(store, job.inputs["functions"], job.part)
    executor = resources.sandbox(job.runtime)
    return stage.collect_io_shard(functions, job.config, executor, parallelism=resources.parallelism(job.runtime)), len(functions)


@task(name="collect-io-shard", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def collect_io_task(job: ShardJob) -> ShardOutcome:
    return execute(job, stage.WRITES, _compute)
