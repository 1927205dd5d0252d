"""The whole pipeline through the Prefect flow, on the embedded defaults and on
the authors' toy data, with the offline teacher and a scripted OpenAI endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TOY, needs_toy

from storage.lineage import LineageDB
from storage.store import DataStore
from storage.trace import trace_sample

FINAL_KEYS = {"sample_id", "instance_id", "function_id", "source_id", "task", "variant", "prompt", "turn_1",
              "feedback_1", "turn_2", "feedback_2", "origin"}


def run(**params):
    from flows.pipeline import codeio_pipeline

    return codeio_pipeline(**params)


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def stage(summary: dict, label: str) -> dict:
    return next(s for s in summary["stages"] if s["label"] == label)


def test_defaults_produce_samples_and_a_rerun_recomputes_nothing(prefect_harness, env):
    out = env / "samples.jsonl"
    first = run(out=str(out))
    rows = read_rows(out)
    assert first["samples"] == len(rows) > 60
    assert all(FINAL_KEYS <= set(row) for row in rows)
    assert {row["task"] for row in rows} == {"input", "output"}
    assert sum(row["task"] == "input" for row in rows) == sum(row["task"] == "output" for row in rows)
    assert all(row["turn_1"].startswith("[offline teacher]") or "offline" in row["turn_1"].splitlines()[0].lower()
               for row in rows)
    # the shipped raw files need an LLM: skipped with a reason, counted
    assert stage(first, "normalize")["rejects_by_reason"].get("needs_llm", 0) >= 10
    for item in first["stages"]:
        if item["stage"] in ("ingest", "normalize", "verify", "assemble"):
            assert item["in"] == item["out"] + item["rejected"], item
    collect = stage(first, "collect_io")
    assert collect["counters"]["functions_kept"] + collect["rejected"] == collect["in"]

    second = run(out=str(out))
    assert all(item["reused"] for item in second["stages"]), [s["label"] for s in second["stages"] if not s["reused"]]
    assert read_rows(out) == rows

    db = LineageDB(f"sqlite:///{env / 'lineage.db'}")
    runs = db.list_runs()
    assert [r["status"] for r in runs] == ["completed", "completed"]
    chain = trace_sample(DataStore(str(env / "store")), db, rows[0]["sample_id"])
    assert chain["source"]["source_id"] == rows[0]["source_id"]
    assert chain["function"]["function_id"] == rows[0]["function_id"]
    assert chain["turns"][0]["response"]["teacher"] == "offline"
    assert {r["run_id"] for r in chain["sample_dataset"]["runs"]} == {r["id"] for r in runs}


@needs_toy()
def test_unified_toy_pairs_are_revalidated(prefect_harness, env):
    out = env / "toy.jsonl"
    summary = run(sources=[f"unified:{TOY / 'unified_with_ios.jsonl'}"], out=str(out), revision_rounds=0)
    collect = stage(summary, "collect_io")
    reasons = collect["rejects_by_reason"]
    functions_kept = collect["in"] - collect["rejected"]
    assert functions_kept >= 0.7 * collect["in"], reasons
    # refcodes importing packages that are not installed are rejected with that reason
    assert any(reason.startswith("missing_package:") for reason in reasons), reasons
    assert reasons.get("nondeterministic", 0) >= 1, reasons
    rows = read_rows(out)
    verified_functions = {row["function_id"] for row in rows if row["verified"]}
    assert len(verified_functions) >= 0.5 * collect["in"]


@needs_toy()
def test_raw_toy_through_a_scripted_openai_endpoint(prefect_harness, env):
    from llm_server import FakeLLMServer
    from scripted_teacher import ToyTeacher

    teacher = ToyTeacher(TOY, mode="wrong_first")
    with FakeLLMServer(teacher) as server:
        out = env / "raw.jsonl"
        summary = run(sources=[f"jsonl:{TOY / 'raw_code.jsonl'}"], limit=50, teacher="openai",
                      llm_base_url=server.base_url, model="fake-model", out=str(out))
        normalize = stage(summary, "normalize")
        assert normalize["in"] == 50 and normalize["out"] >= 10
        assert any(r.startswith("unparseable:") for r in normalize["rejects_by_reason"]), normalize
        rows = read_rows(out)
        assert rows and all(row["turn_2"] and row["feedback_2"] for row in rows)
        # the script answers from the authors' published pairs; the few that do not
        # reproduce here are answered "right" by the script and found wrong by execution
        assert sum(row["verified"] for row in rows) >= 0.9 * len(rows)
        assert summary["rounds"][0]["success"] == 0 and summary["rounds"][1]["pass_rate"] >= 0.9
        # every sample took two teacher calls (identical prompts share one request)
        assert summary["llm"]["requests"] + summary["llm"]["cached"] >= normalize["in"] + 2 * len(rows)
        assert all(row["origin"]["repo"] for row in rows)
        requests_before = len(server.requests)

        zero = run(sources=[f"jsonl:{TOY / 'raw_code.jsonl'}"], limit=50, teacher="openai",
                   llm_base_url=server.base_url, model="fake-model", revision_rounds=0, out=str(env / "r0.jsonl"))
        assert len(server.requests) == requests_before  # the 0-round branch reuses every first turn
        assert zero["llm"]["requests"] == 0
        assert stage(zero, "synthesize r1")["reused"] and stage(zero, "normalize")["reused"]
        r0 = read_rows(env / "r0.jsonl")
        assert len(r0) == len(rows) and not any(row["turn_2"] for row in r0)
        assert {row["turn_1"] for row in r0} == {row["turn_1"] for row in rows}


@pytest.mark.postgres
def test_lineage_in_postgresql(prefect_harness, env, pg_database, monkeypatch):
    monkeypatch.setenv("CODEIO_DATABASE_URL", pg_database)
    out = env / "pg.jsonl"
    summary = run(limit=6, out=str(out), revision_rounds=0)
    db = LineageDB(pg_database)
    runs = db.list_runs()
    assert runs[0]["id"] == summary["run_id"] and runs[0]["status"] == "completed"
    sample_id = read_rows(out)[0]["sample_id"]
    chain = trace_sample(DataStore(str(env / "store")), db, sample_id)
    assert chain["sample"]["sample_id"] == sample_id
    assert chain["sample_dataset"]["runs"][0]["run_id"] == summary["run_id"]


def task_run_names(flow_run_id) -> list[str]:
    """The names of a flow run's task runs, once the API has recorded them all
    (Prefect records task runs from events, a moment after they happen)."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    names: list[str] = []
    with get_client(sync_client=True) as client:
        for _ in range(60):
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            settled = [r for r in runs if r.state is not None and r.state.is_final()]
            if runs and len(settled) == len(runs) and [r.name for r in runs] == names:
                return sorted(r.name.rsplit("-", 1)[0] for r in runs)  # "shard-lane-0a1" -> "shard-lane"
            names = [r.name for r in runs]
            time.sleep(0.5)
    raise AssertionError(f"task runs did not settle: {names}")


def test_lanes_give_the_same_data_as_stage_by_stage_with_one_task_per_part(prefect_harness, env, monkeypatch):
    """With the offline teacher nothing can leave a transient failure, so each part goes
    through every stage in one task; the data and the books equal a stage-by-stage run."""
    from flows.pipeline import codeio_pipeline

    fused_state = codeio_pipeline(out=str(env / "fused.jsonl"), return_state=True)
    fused = fused_state.result()
    monkeypatch.setenv("CODEIO_FUSE_STAGES", "false")
    monkeypatch.setenv("CODEIO_STORE", str(env / "store-by-stage"))
    staged_state = codeio_pipeline(out=str(env / "staged.jsonl"), return_state=True)
    staged = staged_state.result()

    assert read_rows(env / "fused.jsonl") == read_rows(env / "staged.jsonl")
    assert fused["samples"] == staged["samples"] > 0
    books = lambda summary: [(s["label"], s["key"], s["in"], s["out"], s["rejected"], s["rejects_by_reason"])  # noqa: E731
                             for s in summary["stages"]]
    assert books(fused) == books(staged)

    parts = stage(fused, "collect_io")["parts"]
    computed = [s["label"] for s in staged["stages"] if s["stage"] != "ingest"]
    assert task_run_names(fused_state.state_details.flow_run_id) == sorted(["ingest"] + ["shard-lane"] * parts)
    staged_names = task_run_names(staged_state.state_details.flow_run_id)
    assert "shard-lane" not in staged_names and len(staged_names) == 1 + len(computed) * parts


def test_a_lane_stops_where_a_stage_left_transient_failures(prefect_harness, env):
    """An LLM stage that could not finish (here: nothing listens at the endpoint) stops
    its lane: the stage after it never marks a part done on incomplete input."""
    import socket

    from codeio.llm.openai_client import LLMConfig
    from codeio.settings import load_settings
    from codeio.stages import synthesize, verify
    from flows.pipeline import open_store, sandbox_config
    from tasks.lane import run_lane
    from tasks.resources import RuntimeSpec
    from tasks.shard import DatasetRef, ShardJob
    from tasks.synthesize import synthesize_task
    from tasks.verify import verify_task

    first = run(revision_rounds=0)
    prompts = stage(first, "build_prompts")
    store = open_store(load_settings())
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    runtime = RuntimeSpec(store=store.spec, sandbox=sandbox_config(load_settings()),
                          llm=LLMConfig(base_url=f"http://127.0.0.1:{closed}/v1", api_key="k", model="m",
                                        max_attempts=1, timeout=2.0))
    instances = DatasetRef("build_prompts", prompts["key"], prompts["parts"])
    answers = ShardJob(stage="synthesize", key="lane-test-responses", part=0, runtime=runtime,
                       config=synthesize.TeacherConfig(teacher="openai", model="m"), inputs={"instances": instances},
                       options={"round": 1})
    checks = ShardJob(stage="verify", key="lane-test-verdicts", part=0, runtime=runtime, config=verify.VerifyConfig(),
                      inputs={"instances": instances, "responses": DatasetRef("synthesize", answers.key, 1)},
                      options={"round": 1})
    with pytest.raises(RuntimeError, match="left transient failures in the middle of a lane"):
        run_lane([(synthesize_task.name, answers), (verify_task.name, checks)])
    assert store.part_marker("synthesize", answers.key, 0)["stats"]["retryable"] > 0
    assert store.part_marker("verify", checks.key, 0) is None
    # the same stage at a lane's end is fine: the flow keys its children after it
    (outcome,) = run_lane([(synthesize_task.name, answers)])
    assert outcome.stats["retryable"] > 0
