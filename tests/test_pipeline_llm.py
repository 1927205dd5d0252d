"""The pipeline with an OpenAI-compatible teacher, end to end: the real openai
client over HTTP to the local fake server (tests/llm_server.py) answering as
the scripted teacher over the authors' toy data (tests/scripted_teacher.py).

Covers the LLM issue's "Done when" at the pipeline level: faults of every kind
plus wrong first answers still give a complete, reconciled run within about 2x
the answers in requests; reruns reuse cached responses (0 rounds after 1, a
larger max_tokens); the spend cap holds across stages; the dry run spends
nothing; tokens and cost reach the summary, lineage and ``codeio runs``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import TOY, needs_toy
from llm_server import FAULT_KINDS, FakeLLMServer, fault_injector, wrong_answers
from scripted_teacher import ToyTeacher

pytestmark = [needs_toy()]

MODEL = "fake-model"
RAW = f"jsonl:{TOY / 'raw_code.jsonl'}"
LIMIT = 30
PRICES = {MODEL: (1000.0, 1000.0)}  # USD per 1M tokens: 0.001 per token, so small runs cost dollars
LLM_STAGES = ("normalize", "synthesize", "revise")
MAX_TOKENS_UNDER_BUDGET = 600


@pytest.fixture(autouse=True)
def _fresh_clients():
    yield
    from codeio.llm.openai_client import close_all_clients

    close_all_clients()


def make_settings(tmp: Path, server: FakeLLMServer, **overrides):
    from codeio.settings import load_settings

    values = dict(store=str(tmp / "store"), database_url=f"sqlite:///{tmp / 'lineage.db'}",
                  llm_base_url=server.base_url, llm_model=MODEL, dask_workers=0, llm_backoff_base_s=0.05,
                  llm_prices=PRICES)
    values.update(overrides)
    return load_settings(**values)


def run(settings, **options):
    from flows.pipeline import run_pipeline
    from flows.spec import RunSpec

    values = dict(limit=LIMIT, teacher="openai", revision_rounds=1)
    values.update(options)
    return run_pipeline(settings, RunSpec(sources=(RAW,), **values), progress=False)


def stage(summary, label):
    return next(s for s in summary["stages"] if s["label"] == label)


def rows(settings, summary, label, rejects=False):
    from storage.store import DataStore

    found = stage(summary, label)
    store = DataStore(settings.store)
    read = store.read_rejects if rejects else store.read_part
    return [row for part in range(found["parts"]) for row in read(found["stage"], found["key"], part)]


def llm_stages(summary):
    return [s for s in summary["stages"] if s["stage"] in LLM_STAGES]


def test_faults_and_wrong_first_answers_complete_and_reconcile(tmp_path, prefect_harness):
    """25% of requests fail (429 + Retry-After, 500, hang past the 2 s timeout,
    malformed body, finish_reason=length) and 30% of first answers are wrong."""
    teacher = wrong_answers(ToyTeacher(TOY, mode="right"), ToyTeacher(TOY, mode="wrong_first"), fraction=0.3, seed=1)
    handler = fault_injector(teacher, fraction=0.25, kinds=FAULT_KINDS, seed=2)
    with FakeLLMServer(handler) as server:
        settings = make_settings(tmp_path, server, llm_timeout=2.0)
        summary = run(settings)
        sent = len(server.requests)
        statuses = server.replies_by_status

    # every kind of fault happened, and the run went on
    assert statuses.get(429) and statuses.get(500), statuses
    assert sent > sum(statuses.values())  # the hung requests: given up by the client, never answered
    reasons: dict[str, int] = {}
    for item in llm_stages(summary):
        for reason, n in (item["llm"].get("failures_by_reason") or {}).items():
            reasons[reason] = reasons.get(reason, 0) + n
    assert summary["llm"]["retries"] > 0
    assert reasons.get("finish_reason=length"), reasons  # a cut answer is a failure, not an answer
    # the client's books match the server's
    assert summary["llm"]["requests"] == sent

    # every raw file is a function or a recorded reject; every instance a sample or a recorded reject
    assert summary["reconciled"] is True
    normalize = stage(summary, "normalize")
    assert normalize["in"] == LIMIT == normalize["out"] + normalize["rejected"]
    instances = {row["instance_id"] for row in rows(settings, summary, "build_prompts")}
    samples = {row["instance_id"] for row in rows(settings, summary, "assemble")}
    failures = rows(settings, summary, "assemble", rejects=True)
    assert instances and samples
    assert samples.isdisjoint(r["record_id"] for r in failures)
    assert samples | {r["record_id"] for r in failures} == instances
    assert all(r["reason"] and r["detail"] for r in failures)
    assert len(instances) == len(samples) + len(failures)
    # a failed call is a response row with its reason, never a missing row
    responses = rows(settings, summary, "synthesize r1")
    assert {r["instance_id"] for r in responses} == instances and len(responses) == len(instances)
    assert all(r["ok"] or r["error"] for r in responses)
    # a raw file whose normalization failed is rejected with the call's reason
    assert all(reason.startswith(("unparseable:", "llm_failed:")) for reason in normalize["rejects_by_reason"])

    # wrong first answers were revised into right ones
    first, second = summary["rounds"][0], summary["rounds"][1]
    assert first["pass_rate"] < 0.85 and second["success"] > 0
    assert summary["verified_samples"] > first["success"]

    # requests stay under about 2x the answers that came back
    normalize_answers = normalize["out"] + sum(n for r, n in normalize["rejects_by_reason"].items()
                                               if r.startswith("unparseable"))
    answers = normalize_answers + sum(sum(1 for r in rows(settings, summary, label) if r["ok"])
                                      for label in ("synthesize r1", "revise r2"))
    assert sent <= 2 * answers, (sent, answers)


def test_rerun_with_fewer_rounds_or_more_max_tokens_requests_nothing(tmp_path, prefect_harness):
    from storage.lineage import LineageDB

    with FakeLLMServer(ToyTeacher(TOY, mode="wrong_first")) as server:
        settings = make_settings(tmp_path, server)
        first = run(settings, revision_rounds=1)
        sent = len(server.requests)
        assert sent == first["llm"]["requests"] > 0

        zero = run(settings, revision_rounds=0)
        assert len(server.requests) == sent  # round 1 is reused: no request at all
        assert zero["samples"] == first["samples"]

        larger = run(make_settings(tmp_path, server, llm_max_tokens=8192), revision_rounds=1)
        assert len(server.requests) == sent  # max_tokens is not in the response-cache key
    # the stages with a new max_tokens were computed again, from cached responses only
    for item in llm_stages(larger):
        assert not item["reused"] and item["shards_computed"] > 0
        assert item["llm"]["cached"] > 0
    lineage = LineageDB(settings.database_url)
    computed = [row for row in lineage.stage_runs(larger["run_id"]) if not row["cached"]]
    assert computed and all(int((row["llm"] or {}).get("requests", 0)) == 0 for row in computed)
    # every call of the first run (its requests, and the copies of identical prompts that
    # shared an answer) is served from the cache now
    assert sum(int((row["llm"] or {}).get("cached", 0)) for row in computed) == \
        first["llm"]["requests"] + first["llm"]["cached"]
    samples = {r["sample_id"] for r in rows(settings, first, "assemble")}
    assert {r["sample_id"] for r in rows(settings, larger, "assemble")} == samples


def test_budget_caps_the_whole_run(tmp_path, prefect_harness):
    """Normalization spends most of the budget; synthesis stops when it is gone,
    revision sends nothing; the run completes with failures recorded."""
    from storage.lineage import LineageDB

    budget = 36.0
    concurrency = 2
    with FakeLLMServer(ToyTeacher(TOY, mode="wrong_first")) as server:
        # max_tokens bounds what a call in flight may cost: the cap reserves it per call
        settings = make_settings(tmp_path, server, llm_budget_usd=budget, llm_concurrency=concurrency,
                                 llm_max_tokens=MAX_TOKENS_UNDER_BUDGET)
        summary = run(settings)
        bodies = server.requests
        # a later run in the same process (a long-lived worker) has a budget of its own
        later = run(settings, limit=LIMIT + 20)
    later_normalize = stage(later, "normalize")["llm"]
    assert later_normalize["requests"] == 20 and later_normalize["failed"] == 0

    normalize, synth, revise = (stage(summary, label) for label in ("normalize", "synthesize r1", "revise r2"))
    assert normalize["llm"]["failed"] == 0 and normalize["llm"]["cost_usd"] < budget
    assert synth["llm"]["requests"] > 0
    assert synth["llm"]["failures_by_reason"].get("budget_exhausted", 0) > 0
    # revision gets only what is left: at most the calls whose worst case still fits
    assert revise["llm"]["requests"] == sum(1 for b in bodies if len(b["messages"]) > 1)
    assert revise["llm"]["requests"] < synth["llm"]["failures_by_reason"]["budget_exhausted"]
    # the cap holds for the run: calls in flight reserve their worst case, so the spend
    # never passes it, and stops within one worst-case call of it
    spent = summary["llm"]["cost_usd"]
    assert spent == pytest.approx(sum(s["llm"]["cost_usd"] for s in llm_stages(summary)))
    worst_call = max(1000 * 1e-6 * (r["prompt_tokens"] + MAX_TOKENS_UNDER_BUDGET)
                     for r in rows(settings, summary, "synthesize r1") if r["ok"])
    assert budget - concurrency * worst_call <= spent <= budget
    # completed, every instance accounted for, the failures say why
    lineage = LineageDB(settings.database_url)
    assert lineage.get_run(summary["run_id"])["status"] == "completed"
    responses = rows(settings, summary, "synthesize r1")
    exhausted = [r for r in responses if r["error"] == "budget_exhausted"]
    assert exhausted and all(not r["ok"] and r["prompt_tokens"] == 0 for r in exhausted)
    assemble = stage(summary, "assemble")
    assert assemble["in"] == assemble["out"] + assemble["rejected"]
    assert assemble["rejects_by_reason"].get("llm_failed", 0) >= len(exhausted)
    assert lineage.get_run(summary["run_id"])["totals"]["cost_usd"] == pytest.approx(spent, abs=1e-4)


def test_dry_run_spends_nothing_and_counts_cached_responses_free(tmp_path, prefect_harness):
    from typer.testing import CliRunner

    from flows.cli import app

    with FakeLLMServer(ToyTeacher(TOY, mode="wrong_first")) as server:
        settings = make_settings(tmp_path, server)
        env = {"CODEIO_STORE": settings.store, "CODEIO_DATABASE_URL": settings.database_url,
               "CODEIO_LLM_PRICES": json.dumps(PRICES), "CODEIO_DASK_WORKERS": "0"}
        args = ["run", "--dry-run", "--json", "--source", RAW, "--limit", str(LIMIT), "--teacher", "openai",
                "--llm-base-url", server.base_url, "--model", MODEL]
        before = CliRunner().invoke(app, args, env=env)
        assert before.exit_code == 0, before.output
        assert server.requests == []
        estimate = json.loads(before.output)
        assert estimate["requests"]["normalize"] == LIMIT
        assert estimate["requests"]["total"] >= LIMIT + estimate["requests"]["synthesize"]
        assert estimate["prompt_tokens"] > 0 and estimate["completion_tokens"] > 0
        assert estimate["cost_usd"] > 0

        summary = run(settings)  # fills the response cache
        sent = len(server.requests)
        after = json.loads(CliRunner().invoke(app, args, env=env).output)
        assert len(server.requests) == sent
    # a rerun of the same run would cost nothing: every request it would make is cached
    assert after["cached"]["normalize"] == LIMIT
    assert after["cached"]["synthesize"] == after["instances_estimate"] == stage(summary, "build_prompts")["written"]
    assert after["requests"]["total"] == 0 and after["cost_usd"] == 0


def test_summary_lineage_and_runs_show_tokens_and_cost(tmp_path, prefect_harness):
    from typer.testing import CliRunner

    from flows.cli import app
    from flows.summary import render_summary
    from rich.console import Console
    from storage.lineage import LineageDB

    with FakeLLMServer(ToyTeacher(TOY, mode="wrong_first")) as server:
        settings = make_settings(tmp_path, server)
        summary = run(settings)
        bodies = server.requests
    llm = summary["llm"]
    assert llm["requests"] == len(bodies)
    assert llm["prompt_tokens"] > 0 and llm["completion_tokens"] > 0
    assert llm["cost_usd"] == pytest.approx((llm["prompt_tokens"] + llm["completion_tokens"]) * 1000 / 1e6, rel=1e-6)
    console = Console(record=True, width=200)
    render_summary(summary, console)
    assert f"${llm['cost_usd']:.4f}" in console.export_text()

    lineage = LineageDB(settings.database_url)
    per_stage = {row["stage"]: row["llm"] for row in lineage.stage_totals(summary["run_id"])}
    assert set(LLM_STAGES) <= set(per_stage)
    assert all(per_stage[name]["requests"] > 0 and per_stage[name]["cost_usd"] > 0 for name in LLM_STAGES)
    assert sum(per_stage[name]["requests"] for name in LLM_STAGES) == llm["requests"]
    shard_rows = [row for row in lineage.stage_runs(summary["run_id"]) if row["stage"] in LLM_STAGES]
    assert all(row["llm"]["prompt_tokens"] > 0 for row in shard_rows)

    out = CliRunner().invoke(app, ["runs", "--json"], env={"CODEIO_DATABASE_URL": settings.database_url})
    assert out.exit_code == 0, out.output
    listed = {row["id"]: row for row in json.loads(out.output)}
    totals = listed[summary["run_id"]]["totals"]
    assert totals["tokens"] == llm["prompt_tokens"] + llm["completion_tokens"]
    assert totals["cost_usd"] == pytest.approx(llm["cost_usd"], abs=1e-4)
    table = CliRunner().invoke(app, ["runs"], env={"CODEIO_DATABASE_URL": settings.database_url, "COLUMNS": "200"})
    assert f"{llm['cost_usd']:.4f}" in table.output


def test_a_run_stopped_by_the_budget_resumes_when_it_is_raised(tmp_path, prefect_harness):
    """Transient failures (here: the budget) are not frozen into reused datasets:
    the same command with more budget requests exactly the calls that failed."""
    from llm_server import prompt_key

    with FakeLLMServer(ToyTeacher(TOY, mode="wrong_first")) as server:
        capped = make_settings(tmp_path, server, llm_budget_usd=30.0, llm_concurrency=2,
                               llm_max_tokens=MAX_TOKENS_UNDER_BUDGET)
        first = run(capped)
        assert first["retryable"] > 0
        answered_before = {prompt_key(b) for b in server.requests}
        sent_before = len(server.requests)

        raised = capped.model_copy(update={"llm_budget_usd": None})
        second = run(raised)
        resent = [prompt_key(b) for b in server.requests[sent_before:]]
        again = run(raised)
    assert second["retryable"] == 0
    assert stage(second, "normalize")["reused"]  # nothing failed there
    assert not stage(second, "synthesize r1")["reused"]
    # only what had failed is requested again: no completion is paid twice
    assert resent and not set(resent) & answered_before
    assert len(resent) == len(set(resent))
    assert "llm_failed" not in stage(second, "assemble")["rejects_by_reason"]
    assert second["samples"] > first["samples"]
    # and once complete, the dataset is reused as usual
    assert all(s["reused"] for s in again["stages"])
