"""Prefect tasks: collect input/output pairs for one shard of functions; tell the
flow the environment its workers collect pairs in (part of the dataset key)."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from codeio.stages import collect_io as stage
from tasks import resources
from tasks.shard import ShardJob, ShardOutcome, execute, read


class EnvironmentMismatch(RuntimeError):
    """This worker's environment is not the one the dataset key was made for."""


def _compute(store, job: ShardJob):
    here = resources.environment_fingerprint(job.runtime.sandbox.preload)
    if job.options.get("environment") not in (None, here):
        # its pairs would be stored under a key that promises another environment
        raise EnvironmentMismatch(f"collect_io {job.key}#{job.part}: this worker runs {here}, the dataset key "
                                  f"was made for {job.options['environment']}; run all workers on one image")
    functions = read(store, job.inputs["functions"], job.part)
    executor = resources.sandbox(job.runtime)
    output = stage.collect_io_shard(functions, job.config, executor, parallelism=resources.parallelism(job.runtime))
    output.stats[resources.SANDBOX_STAT] = resources.sandbox_report(job.runtime)
    return output, len(functions)


@task(name="collect-io-shard", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def collect_io_task(job: ShardJob) -> ShardOutcome:
    return execute(job, stage.WRITES, _compute)


@task(name="worker-environment", cache_policy=NO_CACHE)
def worker_environment_task(preload: tuple[str, ...]) -> str:
    """Run where shards run: the fingerprint collect_io's key must carry."""
    return resources.environment_fingerprint(preload)
