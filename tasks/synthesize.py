"""Prefect task: the teacher answers one shard (round 1, or a revision round)."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from codeio.execution import Limits
from codeio.stages import synthesize as stage
from tasks import resources
from tasks.shard import ShardJob, ShardOutcome, execute, read


def _compute(store, job: ShardJob):
    instances = read(store, job.inputs["instances"], job.part)
    round_number = int(job.options["round"])
    history = {
        r: (read(store, job.inputs[f"responses_{r}"], job.part), read(store, job.inputs[f"verdicts_{r}"], job.part))
        for r in range(1, round_number)
    }
    config: stage.TeacherConfig = job.config
    if config.teacher == stage.OFFLINE:
        offline = resources.offline_teacher(job.runtime, Limits(timeout_s=float(job.options.get("timeout_s", 5.0))))
        output = stage.synthesize_shard(instances, config, round_number, history, offline=offline,
                                        parallelism=resources.parallelism(job.runtime))
        output.stats[resources.SANDBOX_STAT] = resources.sandbox_report(job.runtime)
    else:
        output = stage.synthesize_shard(instances, config, round_number, history, llm=resources.llm(job.runtime))
    return output, output.stats["eligible"]


@task(name="synthesize-shard", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def synthesize_task(job: ShardJob) -> ShardOutcome:
    return execute(job, stage.WRITES, _compute)
