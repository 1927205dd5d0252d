"""A run's stop request belongs to its Orchestrator (as its task runner and budget
do): once set, the run stops before its next stage, books itself ``cancelled``
and computes nothing more; other runs in the same thread are not affected."""

from __future__ import annotations

import pytest

from storage.lineage import LineageDB
from storage.store import DataStore


def test_a_set_stop_request_stops_only_its_own_run_before_its_next_stage(prefect_harness, env):
    from codeio.settings import load_settings
    from flows.orchestrator import RunStopped, StopRequest
    from flows.pipeline import run_pipeline
    from flows.spec import RunSpec

    settings, spec = load_settings(), RunSpec(limit=3, revision_rounds=0)
    stop = StopRequest()
    stop.stop("branch other failed")
    with pytest.raises(RunStopped, match="stopped before normalize: branch other failed"):
        run_pipeline(settings, spec, progress=False, kind="sweep-branch", stop=stop)
    store = DataStore(settings.store)
    assert store.dataset_keys("ingest") and not store.dataset_keys("normalize")  # ingest ran; nothing after it

    summary = run_pipeline(settings, spec, progress=False)  # the same thread, no stop request: runs to the end
    assert summary["samples"] > 0
    with LineageDB(settings.database_url) as lineage:
        statuses = {run["id"]: (run["kind"], run["status"]) for run in lineage.list_runs()}
    assert sorted(statuses.values()) == [("pipeline", "completed"), ("sweep-branch", "cancelled")]
