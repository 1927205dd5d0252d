"""What a run leaves behind in PostgreSQL lineage: its connections closed, and the
stage runs (spend included) of shards that finished before another shard failed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from codeio.records import REJECT
from codeio.stages.base import StageOutput

ROOT = Path(__file__).resolve().parents[1]


def connections(database_url: str) -> int:
    """Sessions open on the test database, other than the one asking."""
    import psycopg

    name = database_url.rsplit("/", 1)[-1]
    with psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                            (name,)).fetchone()[0]


def two_unified_rows(tmp_path: Path) -> str:
    rows = (ROOT / "codeio" / "corpus" / "unified.jsonl").read_text().splitlines()[:2]
    path = tmp_path / "two.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return f"unified:{path}"


@pytest.mark.postgres
def test_run_pipeline_closes_its_lineage_connections(prefect_harness, env, pg_database, tmp_path):
    """Sweep branches and long-lived workers call run_pipeline many times: each call
    must give its connections back, whether the run completes or fails."""
    from codeio.settings import load_settings
    from flows.pipeline import run_pipeline

    settings = load_settings(store=str(tmp_path / "store"), database_url=pg_database)
    source = two_unified_rows(tmp_path)
    summary = run_pipeline(settings, [source], revision_rounds=0, progress=False)
    assert summary["samples"] > 0
    assert connections(pg_database) == 0
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    with pytest.raises(OSError):  # every stage ran, then the export cannot write
        run_pipeline(settings, [source], revision_rounds=0, out=str(blocked / "samples.jsonl"), progress=False)
    assert connections(pg_database) == 0


# -- a stage whose part 1 fails after part 0 has finished and spent ---------------------------
SPEND = {"requests": 3, "prompt_tokens": 30, "completion_tokens": 12, "cost_usd": 0.25}


def _compute(store, job):
    if job.part == 1:
        # the failing shard waits until its sibling has written its completion marker
        import time

        deadline = time.monotonic() + 60
        while store.part_marker(job.stage, job.key, 0) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        raise RuntimeError("shard 1 breaks")
    return StageOutput(records=[], rejects=[], stats={"llm": dict(SPEND)}), 4


@task(name="bookkeeping-test-shard", cache_policy=NO_CACHE)
def failing_shard_task(job):
    from tasks.shard import execute

    return execute(job, REJECT, _compute)


@flow(name="bookkeeping-test")
def one_failing_stage(database_url: str, store_url: str) -> str:
    from flows.orchestrator import Orchestrator
    from storage.lineage import LineageDB
    from storage.store import DataStore
    from tasks.resources import RuntimeSpec
    from tasks.shard import DatasetRef

    store = DataStore(store_url)
    with LineageDB(database_url) as lineage:
        lineage.upgrade()
        run_id = lineage.start_run("test", {}, {}, "test", "tester")
        orchestrator = Orchestrator(store, RuntimeSpec(store=store.spec, sandbox=None, llm=None), lineage, run_id)
        with pytest.raises(RuntimeError, match="shard 1 breaks"):
            orchestrator.add("spend", "1", failing_shard_task, {"n": 1}, {"in": DatasetRef("ingest", "x", 2)}, 2,
                             may_retry=True)
        return run_id


@pytest.mark.postgres
def test_a_failing_shard_keeps_the_books_of_the_shards_that_finished(prefect_harness, pg_database, tmp_path):
    from storage.lineage import LineageDB

    run_id = one_failing_stage(pg_database, str(tmp_path / "store"))
    with LineageDB(pg_database) as lineage:
        rows = lineage.stage_runs(run_id)
        totals = lineage.get_run(run_id)["totals"]
    assert [(row["stage"], row["shard"], row["records_in"]) for row in rows] == [("spend", 0, 4)]
    assert json.loads(json.dumps(rows[0]["llm"]))["cost_usd"] == SPEND["cost_usd"]
    assert totals["cost_usd"] == SPEND["cost_usd"] and totals["llm_requests"] == SPEND["requests"]


def test_collect_io_counts_functions_in_out_and_rejected(prefect_harness, env, tmp_path):
    """Issue 13.9: in = out + rejected in one unit (functions), computed or reused; the
    pairs written are a counter of their own."""
    from flows.pipeline import codeio_pipeline
    from storage.store import DataStore

    rows = [json.loads(line) for line in (ROOT / "codeio" / "corpus" / "unified.jsonl").read_text().splitlines()[:3]]
    rows[2]["ios"] = [{"input": {"nothing": 1}, "output": "never"}]  # cannot reproduce: the function is rejected
    source = tmp_path / "three.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    for attempt in ("computed", "reused"):
        summary = codeio_pipeline(sources=[f"unified:{source}"], revision_rounds=0)
        collect = next(s for s in summary["stages"] if s["stage"] == "collect_io")
        assert collect["reused"] is (attempt == "reused")
        assert (collect["in"], collect["out"], collect["rejected"]) == (3, 2, 1), attempt
        pairs = [row for frame in DataStore(str(env / "store")).iter_frames("collect_io", collect["key"])
                 for row in frame.to_dicts()]
        assert collect["counters"]["pairs"] == len(pairs) > 2 and len({p["function_id"] for p in pairs}) == 2
        assert summary["reconciled"] is True
