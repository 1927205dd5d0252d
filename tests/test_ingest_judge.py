"""PyEdu-R's optional LLM judge: through the real openai client against the scripted
local server (tests/llm_server.py), in the ingestion flow's stages. Each file's verdict
is scripted by its path; counts reconcile; the response cache makes a rerun free."""

from __future__ import annotations

import json

import polars as pl
import pytest
from llm_server import FakeLLMServer, Reply, last_user_message
from test_ingest_flow import python_edu_rows

from codeio.ingest.judge import LOW_SCORE, MALFORMED, VERDICT_PATTERN, judge_messages, parse_verdict
from codeio.prompting import PromptTemplates, TemplateError
from storage.lineage import LineageDB
from storage.store import DataStore

# what the scripted judge says about each file, by its path; attempts 1, 2, ... of a prompt
SCRIPT = {
    "/sim/m0.py": ["SCORE: 5\nREASON: a queue simulation with state"],
    "/sim/m1.py": ["SCORE: 1\nREASON: mostly bookkeeping"],
    "/sim/m2.py": ["I think this file is quite good for reasoning."],  # no score: malformed
    "/sim/m3.py": [Reply("slow down", status=429, headers={"retry-after": "0"}), "SCORE: 4\nREASON: after a 429"],
    "/sim/m4.py": [Reply("boom", status=500), "**Score:** 3/5\nReason: after a 500"],
    "/sim/m6.py": [Reply("bad request", status=400)],  # permanent: never retried
}
DEFAULT = "SCORE: 4\nREASON: models a system step by step"
OPTIONS = {"pyedu": {"min_int_score": 3}, "pyedu_judge": {"min_score": 3}, "shard_rows": 3}


class ScriptedJudge:
    def __init__(self) -> None:
        self.asked: dict[str, int] = {}

    def __call__(self, body, info) -> Reply:
        prompt = last_user_message(body)
        path = next((p for p in SCRIPT if f"({p})" in prompt), None)
        replies = SCRIPT.get(path, [DEFAULT])
        self.asked[path or "other"] = self.asked.get(path or "other", 0) + 1
        reply = replies[min(info.attempt, len(replies)) - 1]
        return reply if isinstance(reply, Reply) else Reply(reply)


@pytest.fixture
def judged_corpus(env, monkeypatch):
    rows = python_edu_rows(9)
    rows[5]["int_score"] = 1  # dropped by the int_score rule: never judged
    path = env / "edu.parquet"  # row groups of 3: three shards
    pl.DataFrame(rows).write_parquet(path, row_group_size=3)
    server = FakeLLMServer(ScriptedJudge()).start()
    monkeypatch.setenv("CODEIO_LLM_BASE_URL", server.base_url)
    monkeypatch.setenv("CODEIO_LLM_API_KEY", "sk-test-judge")
    monkeypatch.setenv("CODEIO_LLM_MODEL", "fake-model")
    monkeypatch.setenv("CODEIO_LLM_PRICES", json.dumps({"fake-model": [1.0, 2.0]}))
    monkeypatch.setenv("CODEIO_LLM_BACKOFF_BASE_S", "0.01")
    yield path, server
    server.stop()


def test_verdict_pattern_reads_scores_and_rejects_replies_without_one():
    assert parse_verdict("SCORE: 4\nREASON: simulates a bank").score == 4
    assert parse_verdict("thinking...\n**Score:** 2/5\nReason: sorting only").reason == "sorting only"
    assert parse_verdict("SCORE: 1\nSCORE: 5\n").score == 5  # the last verdict counts
    assert parse_verdict("I would rate it highly") is None
    assert parse_verdict("SCORE: 9") is None and parse_verdict("my SCORE: 4 maybe") is None
    assert VERDICT_PATTERN.pattern  # a named module constant


def test_the_template_ships_and_is_overridable(tmp_path):
    shipped = PromptTemplates.load()
    record = {"content": "x" * 50, "origin": json.dumps({"path": "/a.py"}), "source_name": "corpus:x", "kind": "raw"}
    from codeio.ingest.judge import JudgeConfig

    text = judge_messages(record, JudgeConfig(max_code_chars=10), shipped.text("pyedu_judge"))[0]["content"]
    assert "(/a.py)" in text and "x" * 10 in text and "x" * 11 not in text and "truncated" in text
    (tmp_path / "pyedu_judge.v1.txt").write_text("Judge $path:\n$code\nSCORE: 0-5")
    custom = PromptTemplates.load(str(tmp_path))
    assert custom.text("pyedu_judge").startswith("Judge $path") and custom.hash_of(["pyedu_judge"]) != \
        shipped.hash_of(["pyedu_judge"])
    (tmp_path / "pyedu_judge.v1.txt").write_text("Judge $file")
    with pytest.raises(TemplateError, match="pyedu_judge"):
        PromptTemplates.load(str(tmp_path))


def test_judge_needs_pyedu_and_an_endpoint(env, prefect_harness):
    from flows.ingest import codeio_ingest, ingest_options

    with pytest.raises(ValueError, match="set pyedu too"):
        ingest_options({"pyedu_judge": True})
    with pytest.raises(ValueError, match="unknown setting"):
        ingest_options({"pyedu": True, "pyedu_judge": {"threshold": 3}})
    corpus = env / "one.jsonl"
    corpus.write_text(json.dumps(python_edu_rows(1)[0]) + "\n")
    with pytest.raises(ValueError, match="CODEIO_LLM_BASE_URL"):
        codeio_ingest(sources=[f"corpus:{corpus}"], options={"pyedu": True, "pyedu_judge": True})


@pytest.mark.slow
def test_judge_keeps_and_drops_per_verdict_with_named_rejects_costs_and_a_free_rerun(prefect_harness, judged_corpus,
                                                                                     env, monkeypatch):
    path, server = judged_corpus
    from flows.ingest import codeio_ingest

    monkeypatch.setenv("CODEIO_DASK_WORKERS", "2")  # a real LocalCluster: judge shards on two worker processes
    summary = codeio_ingest(sources=[f"corpus:{path}"], options=OPTIONS)
    stages = {s["label"]: s for s in summary["stages"]}
    judge = stages["ingest judge"]
    assert judge["parts"] == 3 and judge["in"] == 8  # 9 rows, one under the int_score threshold
    assert judge["rejects_by_reason"] == {LOW_SCORE: 1, MALFORMED: 1, "judge_failed:http_400": 1}
    assert summary["rejects_by_reason"]["low_edu_score"] == 1
    assert summary["kept"] == 9 - 1 - 3 and summary["reconciled"]
    rules = summary["kept_by_rule"]
    assert (rules["read"], rules["pyedu_int_score"], rules["pyedu_reasoning"]) == (9, 8, 8)
    assert (rules["pyedu_judged"], rules["pyedu_judge"]) == (8, 5)
    # 429 and 500 retried once each; the 400 never again
    assert server.replies_by_status == {200: 7, 429: 1, 500: 1, 400: 1}
    assert judge["retryable"] == 0
    llm = summary["llm"]
    assert llm["requests"] == 10 and llm["retries"] == 2 and llm["failed"] == 1
    assert llm["prompt_tokens"] > 0 and llm["completion_tokens"] > 0 and llm["cost_usd"] > 0
    assert llm["cost_usd"] == pytest.approx((llm["prompt_tokens"] * 1.0 + llm["completion_tokens"] * 2.0) / 1e6,
                                            abs=1e-6)

    store = DataStore(str(env / "store"))
    kept = pl.concat(list(store.iter_frames("ingest", summary["dataset"]["key"]))).to_dicts()
    selection = {json.loads(r["origin"])["path"]: json.loads(r["origin"])["selection"] for r in kept}
    assert sorted(selection) == ["/sim/m0.py", "/sim/m3.py", "/sim/m4.py", "/sim/m7.py", "/sim/m8.py"]
    assert selection["/sim/m0.py"]["judge_score"] == 5 and "queue" in selection["/sim/m0.py"]["judge_reason"]
    assert selection["/sim/m4.py"]["judge_score"] == 3 and selection["/sim/m0.py"]["judge_call_id"]
    rejects = [r for part in range(3) for r in store.read_rejects("ingest_judge", judge["key"], part)]
    malformed = next(r for r in rejects if r["reason"] == MALFORMED)
    assert "/sim/m2.py" in malformed["record_id"] and "quite good for reasoning" in malformed["detail"]
    assert "mostly bookkeeping" in next(r["detail"] for r in rejects if r["reason"] == LOW_SCORE)

    lineage = LineageDB(f"sqlite:///{env / 'lineage.db'}")
    runs = [r for r in lineage.stage_runs(summary["run_id"]) if r["stage"] == "ingest_judge"]
    assert len(runs) == 3 and sum(r["llm"].get("prompt_tokens", 0) for r in runs) == llm["prompt_tokens"]
    assert lineage.get_run(summary["run_id"])["summary"]["llm"]["cost_usd"] == llm["cost_usd"]

    requests = len(server.requests)
    again = codeio_ingest(sources=[f"corpus:{path}"], options=OPTIONS)
    assert len(server.requests) == requests and all(s["reused"] for s in again["stages"])
    assert again["dataset"] == summary["dataset"] and not again["llm"].get("requests")
    # another threshold: a new judge dataset, every verdict from the response cache; only the
    # failed call (failures are not cached) is asked again
    strict = codeio_ingest(sources=[f"corpus:{path}"], options=dict(OPTIONS, pyedu_judge={"min_score": 5}))
    assert len(server.requests) == requests + 1
    assert strict["llm"]["requests"] == 1 and strict["llm"]["cached"] == 8 - 1
    assert strict["kept_by_rule"]["pyedu_judge"] == 1 and strict["reconciled"]


@pytest.mark.slow
def test_cli_flag_and_the_pipeline_run_the_judge(prefect_harness, judged_corpus, env):
    """``codeio ingest --pyedu-judge`` (with its threshold flag) and ``codeio run`` with
    ``pyedu_judge`` in its ingest options: the judge's counts, tokens and cost in both."""
    from typer.testing import CliRunner

    from codeio.settings import load_settings
    from flows.cli import app
    from flows.pipeline import run_pipeline
    from flows.spec import RunSpec
    from flows.summary import ingest_markdown

    path, server = judged_corpus
    done = CliRunner().invoke(app, ["ingest", "--source", f"corpus:{path}", "--pyedu-judge", "--judge-min-score", "5",
                                    "--json"])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.output)
    assert summary["kept_by_rule"]["pyedu_judged"] == 8 and summary["kept_by_rule"]["pyedu_judge"] == 1
    assert summary["rejects_by_reason"][LOW_SCORE] == 5 and summary["reconciled"]
    assert summary["llm"]["requests"] == 10 and summary["llm"]["cost_usd"] > 0
    markdown = ingest_markdown(summary)
    assert "| pyedu_judge | 1 |" in markdown and "LLM: 10 requests" in markdown

    sent = len(server.requests)
    spec = RunSpec(sources=(f"corpus:{path}",), teacher="offline",
                   ingest={"pyedu": {"min_int_score": 3}, "pyedu_judge": {"min_score": 5}})
    run = run_pipeline(load_settings(), spec, progress=False)
    judge = next(s for s in run["stages"] if s["label"] == "ingest judge")
    assert judge["reused"] and judge["out"] == 1  # the CLI's judge dataset: same files, same settings
    normalize = next(s for s in run["stages"] if s["stage"] == "normalize")
    assert normalize["in"] == 1  # only the file the judge kept goes on
    assert len(server.requests) == sent + normalize["llm"]["requests"]  # the endpoint normalizes; no judge call


@pytest.mark.slow
def test_transient_failures_left_after_the_retries_are_retried_by_the_next_run_alone(prefect_harness, judged_corpus,
                                                                                     env, monkeypatch):
    from flows.ingest import codeio_ingest

    path, server = judged_corpus
    monkeypatch.setenv("CODEIO_LLM_MAX_ATTEMPTS", "2")
    scripted = ScriptedJudge()

    def overloaded(body, info) -> Reply:  # m7 is rate limited on every attempt of this run
        if "(/sim/m7.py)" in last_user_message(body):
            return Reply("slow down", status=429, headers={"retry-after": "0"})
        return scripted(body, info)

    server.set_handler(overloaded)
    first = codeio_ingest(sources=[f"corpus:{path}"], options=OPTIONS)
    judge = next(s for s in first["stages"] if s["label"] == "ingest judge")
    assert judge["rejects_by_reason"]["judge_failed:http_429"] == 1 and judge["retryable"] == 1
    assert first["reconciled"] and first["kept"] == 4
    sent = len(server.requests)

    server.set_handler(scripted)
    second = codeio_ingest(sources=[f"corpus:{path}"], options=OPTIONS)
    judge = next(s for s in second["stages"] if s["label"] == "ingest judge")
    assert "judge_failed:http_429" not in judge["rejects_by_reason"] and judge["retryable"] == 0
    # only the shard holding the failure (m6, m7, m8) runs again: m7 is judged now, m8 comes from the
    # cache, m6's 400 (a failure, never cached) is asked again; the other shards are not touched
    assert judge["shards_computed"] == 1
    assert (second["llm"]["requests"], second["llm"]["cached"]) == (2, 1) and len(server.requests) - sent == 2
    assert second["kept"] == 5 and second["reconciled"] and second["dataset"] != first["dataset"]
