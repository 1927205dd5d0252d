"""Running stages over shards: reuse what is done, map the rest, keep the books.

The flow process owns the lineage database (so SQLite never sees concurrent
writers) and the summary; shard tasks run wherever the task runner puts them.
A dataset whose manifest exists in the store is reused without submitting a
single task. Stages queued with ``add`` run in lanes: each part goes through
them in one task (``tasks.lane``), and a stage that may leave transient LLM
failures closes the lane, because its children's keys depend on its outcome.
"""

from __future__ import annotations

import dataclasses
import getpass
import logging
import os
import socket
import subprocess
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

from prefect.futures import as_completed
from sqlalchemy.exc import SQLAlchemyError

from codeio.records import stable_id
from codeio.sandbox.isolation import merge_reports, warning_lines
from codeio.stages.base import config_dict, dataset_key
from flows.progress import StageProgress
from storage.liveness import pid_namespace
from storage.store import DataStore
from tasks.ingest import ingest_config, ingest_task
from tasks.lane import group_task, lane_task
from tasks.resources import SANDBOX_STAT, RuntimeSpec
from tasks.shard import DatasetRef, ShardJob, ShardOutcome

SCHEMA_VERSION = "1"
CLAIM_LEASE_S = 120.0  # a claim's life without renewal: how long a crashed run blocks a dataset at most
CLAIM_POLL_S = 1.0  # how often a run that waits for another's claim looks again
logger = logging.getLogger(__name__)


def code_version() -> str:
    """The package version plus the git commit when running from a checkout."""
    from codeio import __version__

    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass
class StageSummary:
    stage: str
    label: str
    key: str
    uri: str
    parts: int
    # in = out + rejected, in the unit the stage reads (sources, functions, pairs, ...)
    records_in: int = 0
    records_out: int = 0
    rejected: int = 0
    written: int = 0  # the records of the dataset, in its own unit (collect_io: pairs; build_prompts: instances)
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    reused: bool = False  # the whole dataset existed before this run
    retryable: int = 0  # transient LLM failures left in it: the next run retries them
    shards_computed: int = 0
    seconds: float = 0.0
    stats: list[dict[str, Any]] = field(default_factory=list)  # per-shard stage stats
    llm: dict[str, Any] = field(default_factory=dict)
    # the isolation the sandboxes that ran this stage's code in this run had (isolation.merge_reports);
    # empty when it ran no code now (no code stage, or every shard reused)
    sandbox: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage, "label": self.label, "key": self.key, "uri": self.uri, "parts": self.parts,
            "in": self.records_in, "out": self.records_out, "rejected": self.rejected, "written": self.written,
            "rejects_by_reason": dict(sorted(self.rejects_by_reason.items())), "reused": self.reused,
            "shards_computed": self.shards_computed, "seconds": round(self.seconds, 3), "llm": self.llm,
            "counters": merge_counters(self.stats), "retryable": self.retryable, "sandbox": self.sandbox,
        }


def _when(value: Any) -> datetime:
    """Marker timestamps are ISO strings; markers of older layouts may lack them."""
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value)
    return datetime.now(timezone.utc)


def merge_counters(stats: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the numeric counters (and counter dicts) that shards report, except LLM usage
    and the sandbox's isolation report."""
    total: dict[str, Any] = {}
    for item in stats:
        for name, value in item.items():
            if name in ("llm", SANDBOX_STAT):
                continue
            if isinstance(value, dict):
                bucket = total.setdefault(name, {})
                for k, v in value.items():
                    if isinstance(v, (int, float)):
                        bucket[k] = bucket.get(k, 0) + v
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                total[name] = total.get(name, 0) + value
    return total


class RunStopped(RuntimeError):
    """The run was asked to stop (its Orchestrator's ``stop``) and did, between two stages."""


class StopRequest(threading.Event):
    """An event that says why it was set."""

    reason = "asked to stop"

    def stop(self, reason: str) -> None:
        if not self.is_set():
            self.reason = reason
            self.set()


class DatasetClaims:
    """One lock per (store, dataset key) in this process. Branches of a sweep that run
    at the same time and reach the same dataset take turns: the first computes it,
    the others wait, then find its manifest and reuse it (computed once)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], threading.Lock] = {}

    @contextmanager
    def hold(self, store_url: str, key: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault((store_url, key), threading.Lock())
        with lock:
            yield


def claim_holder() -> str:
    """"host:pid:nonce:pid-namespace" of this process (a new nonce each call)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}:{pid_namespace()}"


def holder_is_gone(holder: str) -> bool:
    """Whether a claim's holder ("host:pid:nonce:pid-namespace") was a process of this
    host that no longer exists. Holders on other hosts, or in another PID namespace
    under the same host name, count as alive: their claims end with their lease.
    (A holder without the namespace field comes from a version that did not record it.)"""
    fields = holder.split(":")
    host, pid_text = fields[0], fields[1] if len(fields) > 1 else ""
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    if len(fields) > 3 and fields[3] != pid_namespace():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


class LineageClaims:
    """Claims across processes that share the lineage database (two runs, a nightly
    and a sweep, on one store): the first to claim a dataset computes it, the others
    wait for the claim to go and reuse the dataset. The holder renews its claims
    every third of the lease; a crashed holder's claims expire after the lease, or
    at once when it was a process of this host that is gone (a killed run)."""

    def __init__(self, lineage: Any, run_id: str | None, lease_s: float = CLAIM_LEASE_S,
                 poll_s: float = CLAIM_POLL_S, on_wait: Callable[[str, str], None] | None = None):
        self.lineage = lineage
        self.run_id = run_id
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.on_wait = on_wait or (lambda label, owner: None)
        self.holder = claim_holder()
        self._guard = threading.Lock()
        self._held = 0
        self._stop: threading.Event | None = None

    @contextmanager
    def hold(self, store_url: str, key: str, label: str) -> Iterator[None]:
        owner, told = self.lineage.try_claim(store_url, key, self.holder, self.run_id, self.lease_s), False
        while owner is not None:
            if holder_is_gone(owner):  # killed on this host: no need to wait for its lease to end
                self.lineage.drop_claims(owner)
            else:
                if not told:
                    self.on_wait(label, owner)
                    told = True
                time.sleep(self.poll_s)
            owner = self.lineage.try_claim(store_url, key, self.holder, self.run_id, self.lease_s)
        self._count(+1)
        try:
            yield
        finally:
            self._count(-1)
            self.lineage.release_claim(store_url, key, self.holder)

    def _count(self, step: int) -> None:
        with self._guard:
            self._held += step
            if self._held == 1 and step > 0:
                self._stop = threading.Event()
                threading.Thread(target=self._renew, args=(self._stop,), name="claim-renewer", daemon=True).start()
            elif self._held == 0 and self._stop is not None:
                self._stop.set()
                self._stop = None

    def _renew(self, stop: threading.Event) -> None:
        while not stop.wait(self.lease_s / 3):
            try:
                self.lineage.renew_claims(self.holder, self.lease_s)
            except SQLAlchemyError as error:  # the database may come back before the lease ends
                logger.warning("could not renew dataset claims of %s: %s", self.holder, error)


@lru_cache(maxsize=1)
def dataset_claims() -> DatasetClaims:
    """The process's claims (a lazily created per-process resource)."""
    return DatasetClaims()


def merge_llm(stats: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for item in stats:
        for name, value in (item.get("llm") or {}).items():
            if isinstance(value, dict):
                bucket = total.setdefault(name, {})
                for k, v in value.items():
                    bucket[k] = bucket.get(k, 0) + v
            elif isinstance(value, (int, float)):
                total[name] = total.get(name, 0) + value
    return total


@dataclass(frozen=True)
class StagePlan:
    """A stage to run over ``parts`` shards, with its dataset key already known."""

    stage: str
    version: str
    task: Any  # the stage's Prefect task
    config: Any
    inputs: dict[str, DatasetRef]
    parts: int
    options: dict[str, Any]
    label: str
    key: str
    may_retry: bool = False  # may leave transient failures: its children's keys wait for its outcome
    group: bool = False  # several parts per task run (see Orchestrator.shards_per_task)

    @property
    def ref(self) -> DatasetRef:
        return DatasetRef(self.stage, self.key, self.parts)


class Orchestrator:
    """Runs a run's stages: ``task_runner`` (entered by the flow around the stages)
    runs the shard tasks, else they are submitted on Prefect's default runner;
    ``llm_budget_usd`` caps the run's LLM spend, shared over ``llm_processes(parts)``
    processes that may spend at once in a stage of ``parts`` shards; once ``stop`` is
    set the run stops before its next lane (``RunStopped``): a sweep gives its
    branches one, which a failing branch sets, so the others stop spending.

    A lane whose stages all ask for it (``group``: many shards of cheap work, no LLM)
    runs ``shards_per_task(parts, task_runner)`` consecutive parts per task run; each
    part keeps its own key and marker. ``ready``, when given, is called once before
    the first submission (it waits for a task runner started ahead of time)."""

    def __init__(self, store: DataStore, runtime: RuntimeSpec, lineage: Any, run_id: str,
                 progress: StageProgress | None = None, *, task_runner: Any = None, task_tags: tuple[str, ...] = (),
                 fuse: bool = True, claim_lease_s: float = CLAIM_LEASE_S, llm_budget_usd: float | None = None,
                 llm_processes: Callable[[int], int] = lambda parts: 1, stop: StopRequest | None = None,
                 shards_per_task: Callable[[int, Any], int] = lambda parts, runner: 1,
                 ready: Callable[[], None] | None = None):
        self.store = store
        self.runtime = runtime
        self.lineage = lineage
        self.run_id = run_id
        self.progress = progress or StageProgress(enabled=False)
        self.stages: list[StageSummary] = []
        self.code_version = code_version()
        self.task_runner = task_runner
        self.task_tags = tuple(task_tags)  # CODEIO_TASK_TAGS: for Prefect's tag concurrency limits
        self.fuse = fuse  # run stages that cannot leave transient failures in lanes (see ``add``)
        self.claims = LineageClaims(lineage, run_id, claim_lease_s, on_wait=self._waiting)
        self.llm_budget_usd = llm_budget_usd
        self.llm_processes = llm_processes
        self.stop = stop
        self.shards_per_task = shards_per_task
        self._ready = ready
        self._pending: list[StagePlan] = []
        self._sandbox_warned = False

    def _wait_ready(self) -> None:
        if self._ready is not None:
            ready, self._ready = self._ready, None
            ready()

    def submit(self, task: Any, parameters: dict[str, Any]) -> Any:
        self._wait_ready()
        if self.task_runner is not None:
            return self.task_runner.submit(task, parameters)
        return task.submit(**parameters)

    def share_remaining_budget(self, parts: int) -> None:
        """Before an LLM stage: hand it what the earlier stages left of the run's budget
        (their spend is in lineage; shards reused from the store cost nothing), split
        over the processes that may spend it at once, each stage of the run with
        clients of its own (a worker that serves many runs never charges one run's
        spend to another). The budget lives in the RuntimeSpec, not in dataset keys."""
        llm = self.runtime.llm if self.runtime is not None else None
        if llm is None or self.llm_budget_usd is None:
            return
        spent = sum(float((row.get("llm") or {}).get("cost_usd") or 0.0)
                    for row in self.lineage.stage_runs(self.run_id) if not row["cached"])
        share = max(0.0, self.llm_budget_usd - spent) / self.llm_processes(parts)
        self.runtime = dataclasses.replace(self.runtime, llm=dataclasses.replace(llm, budget_usd=share),
                                           llm_scope=f"{self.run_id}/{len(self.stages)}")

    def _waiting(self, label: str, owner: str) -> None:
        message = f"{label}: another run ({owner}) is computing this dataset; waiting to reuse it"
        logger.info(message)
        self.progress.note(message)

    def record_outcomes(self, summary: StageSummary, outcomes: list[ShardOutcome | dict[str, Any]], config: Any,
                        parents: dict[str, str]) -> None:
        computed: list[dict[str, Any]] = []
        for outcome in outcomes:
            data = outcome if isinstance(outcome, dict) else outcome.__dict__
            summary.records_in += int(data.get("records_in", 0))
            summary.records_out += int(data.get("records_out", data.get("kept", data.get("records", 0))))
            summary.rejected += int(data.get("rejected", 0))
            summary.written += int(data.get("written", data.get("records", 0)))
            for reason, count in (data.get("rejects_by_reason") or {}).items():
                summary.rejects_by_reason[reason] = summary.rejects_by_reason.get(reason, 0) + count
            summary.stats.append(dict(data.get("stats") or {}))
            summary.seconds += float(data.get("seconds", 0.0))
            if not data.get("cached", False):
                summary.shards_computed += 1
            self._record_stage_run(summary.stage, summary.key, data)
            if not data.get("cached"):
                computed.append(dict(data.get("stats") or {}))
        # LLM usage of this run only: shards found done cost nothing now
        summary.llm = merge_llm(computed)
        reports = [stats[SANDBOX_STAT] for stats in computed if SANDBOX_STAT in stats]
        summary.sandbox = merge_reports(reports) if reports else {}
        if summary.sandbox.get("missing") and not self._sandbox_warned:
            self._sandbox_warned = True  # once per run, as soon as known: the summary repeats it at the end
            logger.warning("%s: %s", summary.label, "\n".join(warning_lines(summary.sandbox)))
        self.lineage.record_dataset(
            dataset_key=summary.key, stage=summary.stage, uri=summary.uri, config=config_dict(config),
            parents=list(parents.values()), counts={"in": summary.records_in, "out": summary.records_out,
                                                    "rejected": summary.rejected, "written": summary.written},
            schema_version=SCHEMA_VERSION, code_version=self.code_version,
        )
        self.lineage.link_run_dataset(self.run_id, summary.key, "reused" if summary.reused else "produced")
        self.stages.append(summary)

    def _record_stage_run(self, stage: str, key: str, data: dict[str, Any]) -> None:
        self.lineage.record_stage_run(
            run_id=self.run_id, stage=stage, dataset_key=key, shard=int(data.get("part", 0)),
            started_at=_when(data.get("started_at")), finished_at=_when(data.get("finished_at")),
            records_in=int(data.get("records_in", 0)),
            records_out=int(data.get("records_out", data.get("kept", data.get("records", 0)))),
            records_rejected=int(data.get("rejected", 0)),
            rejects_by_reason=dict(data.get("rejects_by_reason") or {}),
            cached=bool(data.get("cached", False)),
            llm={} if data.get("cached") else dict((data.get("stats") or {}).get("llm") or {}),
        )

    def ingest(self, specs: list[Any], limit: int | None,
               shard_size: int) -> tuple[DatasetRef, list[dict[str, Any]], StageSummary]:
        """Ingest in this process (source paths are local to it) and book it like any
        stage; returns the sources dataset, its part markers and its summary."""
        config = ingest_config(specs, limit, shard_size)
        ref, markers = ingest_task(specs, config, self.store)
        summary = StageSummary("ingest", "ingest", ref.key, self.store.uri(self.store.dataset_dir("ingest", ref.key)),
                               ref.parts, reused=all(m.get("cached") for m in markers))
        self.record_outcomes(summary, markers, config, {})
        return ref, markers, summary

    def plan(self, stage: str, version: str, task: Any, config: Any, inputs: dict[str, DatasetRef], parts: int,
             options: dict[str, Any] | None = None, label: str | None = None, may_retry: bool = False,
             group: bool = False) -> StagePlan:
        options = dict(options or {})
        return StagePlan(stage=stage, version=version, task=task, config=config, inputs=dict(inputs), parts=parts,
                         options=options, label=label or stage, key=self.key_of(stage, version, config, inputs, options),
                         may_retry=may_retry, group=group and not may_retry)

    def add(self, stage: str, version: str, task: Any, config: Any, inputs: dict[str, DatasetRef], parts: int,
            options: dict[str, Any] | None = None, label: str | None = None, may_retry: bool = False,
            group: bool = False) -> DatasetRef:
        """Queue a stage on the current lane and return the reference its children use.

        A stage that cannot leave transient failures has a key known in advance, so
        its children can join the same lane; a stage that may (an LLM stage) closes
        the lane: it runs now, with everything queued before it, because its
        children's keys depend on whether it finished. ``flush`` runs the rest.
        Without lanes (``fuse=False``) every stage runs on its own, stage by stage.
        """
        if may_retry:  # an LLM stage: it spends what the budget has left
            self.share_remaining_budget(parts)
        plan = self.plan(stage, version, task, config, inputs, parts, options, label, may_retry, group)
        self._pending.append(plan)
        if may_retry or not self.fuse:
            return self.flush()[-1]
        return plan.ref

    def flush(self) -> list[DatasetRef]:
        """Run the queued stages as one lane; their references, in order."""
        plans, self._pending = self._pending, []
        return self.run_lane(plans) if plans else []

    def run_lane(self, plans: list[StagePlan]) -> list[DatasetRef]:
        """Reuse or compute the datasets of ``plans`` (each a child of earlier ones or
        of finished datasets), holding this process's claim on each key. What is not
        in the store yet runs part by part: one task per part for the whole lane."""
        if len({plan.key for plan in plans}) < len(plans):
            raise ValueError(f"a dataset appears twice in one lane: {[plan.label for plan in plans]}")
        if self.stop is not None and self.stop.is_set():
            raise RunStopped(f"stopped before {plans[0].label}: {self.stop.reason}")
        with ExitStack() as claims:
            for plan in plans:  # always in pipeline order, so two lanes never wait on each other in a cycle
                claims.enter_context(dataset_claims().hold(self.store.url, plan.key))
                claims.enter_context(self.claims.hold(self.store.url, plan.key, plan.label))
            summaries = {plan.key: StageSummary(stage=plan.stage, label=plan.label, key=plan.key, parts=plan.parts,
                                                uri=self.store.uri(self.store.dataset_dir(plan.stage, plan.key)))
                         for plan in plans}
            todo = []
            for plan in plans:
                manifest = self.store.manifest(plan.stage, plan.key)
                if manifest is not None and not manifest.get("retryable"):
                    summaries[plan.key].reused = True
                    self.progress.done(plan.label, plan.parts)
                else:
                    todo.append(plan)
            outcomes = self._compute(todo) if todo else {}
            refs = []
            for plan in plans:
                summary, parents = summaries[plan.key], {name: ref.key for name, ref in plan.inputs.items()}
                if summary.reused:
                    markers = [dict(self.store.part_marker(plan.stage, plan.key, part) or {}, cached=True)
                               for part in range(plan.parts)]
                    self.record_outcomes(summary, markers, plan.config, parents)
                    refs.append(plan.ref)
                else:
                    refs.append(self._finish(plan, summary, outcomes[plan.key], parents, last=plan is todo[-1]))
            return refs

    def _compute(self, todo: list[StagePlan]) -> dict[str, list[ShardOutcome]]:
        parts = todo[0].parts
        if any(plan.parts != parts for plan in todo):
            raise ValueError(f"a lane's stages must have the same parts: {[(p.label, p.parts) for p in todo]}")
        jobs = {plan.key: [ShardJob(stage=plan.stage, key=plan.key, part=part, config=plan.config, inputs=plan.inputs,
                                    runtime=self.runtime, options=plan.options) for part in range(parts)]
                for plan in todo}
        self._wait_ready()  # the task runner, started ahead, before anything touches it
        size = max(1, int(self.shards_per_task(parts, self.task_runner))) if all(p.group for p in todo) else 1
        lanes = [[(plan.task.name, jobs[plan.key][part]) for plan in todo] for part in range(parts)]
        if size > 1:  # one task run per group of consecutive parts; each part keeps its own key and marker
            task, arguments = group_task, [{"lanes": lanes[start:start + size]} for start in range(0, parts, size)]
        elif len(todo) == 1:
            task, arguments = todo[0].task, [{"job": job} for job in jobs[todo[0].key]]
        else:
            task, arguments = lane_task, [{"steps": steps} for steps in lanes]
        if self.task_tags:
            task = task.with_options(tags=set(self.task_tags))
        futures = [self.submit(task, argument) for argument in arguments]
        outcomes: dict[str, list[ShardOutcome]] = {plan.key: [] for plan in todo}
        failure: Exception | None = None
        with self.progress.track_many([plan.label for plan in todo], parts) as advances:
            for future in as_completed(futures):
                try:
                    result = future.result()
                except Exception as error:  # noqa: BLE001 - re-raised below, once the other shards are booked
                    failure = failure or error
                    continue
                # a group: one list per part; a lane: one outcome per stage; else one outcome
                for lane in result if size > 1 else [result if isinstance(result, list) else [result]]:
                    for plan, advance, outcome in zip(todo, advances, lane):
                        outcomes[plan.key].append(outcome)
                        advance(outcome.records_out)
        if failure is not None:
            # the shards that finished did their work and spent money: keep their books
            for plan in todo:
                for outcome in outcomes[plan.key]:
                    self._record_stage_run(plan.stage, plan.key, outcome.__dict__)
            raise failure
        return outcomes

    def _finish(self, plan: StagePlan, summary: StageSummary, outcomes: list[ShardOutcome], parents: dict[str, str],
                last: bool) -> DatasetRef:
        """Book a computed dataset and write its manifest (after all its parts)."""
        outcomes.sort(key=lambda o: o.part)
        self.record_outcomes(summary, outcomes, plan.config, parents)
        retryable = sum(int(o.stats.get("retryable", 0)) for o in outcomes)
        if retryable and not (plan.may_retry and last):
            # its children were keyed as if it had finished: never let that be reused
            raise RuntimeError(f"{plan.label} left {retryable} transient failure(s) but was not declared "
                               "may_retry (a stage that can must close its lane)")
        revision = stable_id("revision", [(o.part, o.finished_at, o.records_out, o.rejected) for o in outcomes]) \
            if retryable else ""
        summary.retryable = retryable
        self.store.write_manifest(plan.stage, plan.key, {
            "stage": plan.stage, "key": plan.key, "version": plan.version, "parts": plan.parts, "parents": parents,
            "parent_refs": {name: [ref.stage, ref.key] for name, ref in plan.inputs.items()},
            "config": config_dict(plan.config), "options": plan.options, "schema_version": SCHEMA_VERSION,
            "records": summary.records_out, "rejected": summary.rejected, "code_version": self.code_version,
            "retryable": retryable, "revision": revision,
        })
        return DatasetRef(plan.stage, plan.key, plan.parts, revision)

    @staticmethod
    def key_of(stage: str, version: str, config: Any, inputs: dict[str, DatasetRef],
               options: dict[str, Any] | None) -> str:
        identities = {name: ref.identity for name, ref in inputs.items()}
        return dataset_key(stage, version, {"config": config_dict(config), "options": dict(options or {})}, identities)
