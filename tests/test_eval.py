"""`codeio eval` end to end: the real openai client over HTTP to the scripted
server (tests/llm_server.py + tests/eval_teacher.py) on the CRUXEval-format and
LeetCode-O-format files shipped in tests/data/eval; an always-right model
scores 100%, an always-wrong one 0%, a half-right one exactly what it got
right; scores land in lineage; --compare and --json work from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval_teacher import EvalTeacher
from llm_server import FakeLLMServer

DATA = Path(__file__).resolve().parent / "data" / "eval"
CRUXEVAL = DATA / "cruxeval.jsonl"
LEETCODE_O = DATA / "leetcode_o.jsonl"
MODEL = "fake-model"
CRUX_ROWS, LEET_PROBLEMS, LEET_EXAMPLES = 12, 5, 13


@pytest.fixture(autouse=True)
def _fresh_clients():
    yield
    from codeio.llm.openai_client import close_all_clients

    close_all_clients()


def make_settings(tmp: Path, server: FakeLLMServer | None = None, **overrides):
    from codeio.settings import load_settings

    values = dict(store=str(tmp / "store"), database_url=f"sqlite:///{tmp / 'lineage.db'}", dask_workers=0,
                  llm_backoff_base_s=0.05, llm_model=MODEL, shard_size=7)
    if server is not None:
        values["llm_base_url"] = server.base_url
    values.update(overrides)
    return load_settings(**values)


def evaluate(settings, spec: str, **options):
    from flows.eval import run_eval

    return run_eval(settings, spec, progress=False, **{"teacher": "openai", **options})


def task_scores(report, name="pass@1"):
    return {task: item[name] for task, item in report["scores"]["tasks"].items()}


@pytest.mark.parametrize("kind,path,questions", [("cruxeval", CRUXEVAL, 2 * CRUX_ROWS),
                                                 ("leetcode-o", LEETCODE_O, 2 * LEET_EXAMPLES)])
def test_right_model_scores_all_and_wrong_model_none(tmp_path, prefect_harness, kind, path, questions):
    teacher = EvalTeacher(path, kind, mode="right")
    with FakeLLMServer(teacher) as server:
        settings = make_settings(tmp_path, server)
        right = evaluate(settings, f"{kind}:{path}")
        teacher.mode = "wrong"
        wrong = evaluate(make_settings(tmp_path, server, llm_model="other-model"), f"{kind}:{path}")
    assert teacher.unknown == 0
    assert right["questions"] == questions and right["rejected_rows"] == 0
    assert task_scores(right) == {"output": 1.0, "input": 1.0, "all": 1.0}
    assert task_scores(wrong) == {"output": 0.0, "input": 0.0, "all": 0.0}
    assert right["scores"]["tasks"]["all"]["unparseable"] == 0 == wrong["scores"]["tasks"]["all"]["unparseable"]
    # sharded like the pipeline: questions of 7 per shard
    answer = next(s for s in right["stages"] if s["label"] == "answer s0")
    assert answer["parts"] == -(-questions // 7) and answer["out"] == questions
    assert right["llm"]["requests"] == questions
    # every group is at 100% / 0%
    for row in right["table"]:
        assert row["pass@1"] == 1.0, row
    for row in wrong["table"]:
        assert row["pass@1"] == 0.0, row


def test_half_right_model_scores_what_it_got_right(tmp_path, prefect_harness):
    teacher = EvalTeacher(LEETCODE_O, "leetcode-o", mode="half", seed=3)
    with FakeLLMServer(teacher) as server:
        report = evaluate(make_settings(tmp_path, server), f"leetcode-o:{LEETCODE_O}")
    right, total = len(teacher.right), len(teacher.right) + len(teacher.wrong)
    assert total == 2 * LEET_EXAMPLES
    assert report["scores"]["tasks"]["all"]["pass@1"] == pytest.approx(right / total, abs=1e-6)
    assert 0.25 <= right / total <= 0.75
    # per problem: solved only when every question of it is right
    problems = report["scores"]["problems"]["all"]
    assert problems["problems"] == LEET_PROBLEMS
    assert problems["pass@1"] <= report["scores"]["tasks"]["all"]["pass@1"]
    by_difficulty = report["scores"]["by_difficulty"]
    assert set(by_difficulty) == {"Easy", "Medium", "Hard"}
    assert sum(item["questions"] for tasks in by_difficulty.values() for item in tasks.values()) == total


def test_half_right_on_cruxeval_and_the_response_cache(tmp_path, prefect_harness):
    teacher = EvalTeacher(CRUXEVAL, "cruxeval", mode="half", seed=1)
    with FakeLLMServer(teacher) as server:
        settings = make_settings(tmp_path, server)
        first = evaluate(settings, f"cruxeval:{CRUXEVAL}")
        requests = len(server.requests)
        again = evaluate(settings, f"cruxeval:{CRUXEVAL}")
        assert len(server.requests) == requests  # every answer came from the store / response cache
    assert first["scores"]["tasks"]["all"]["pass@1"] == pytest.approx(len(teacher.right) / (2 * CRUX_ROWS))
    assert again["scores"] == first["scores"]
    assert all(s["reused"] for s in again["stages"])


def test_transient_failures_are_retried_by_the_next_run_only(tmp_path, prefect_harness):
    from llm_server import fault_injector

    teacher = EvalTeacher(LEETCODE_O, "leetcode-o", mode="right")
    with FakeLLMServer(fault_injector(teacher, fraction=0.3, kinds=("500",), seed=2)) as server:
        settings = make_settings(tmp_path, server, llm_max_attempts=1)
        report = evaluate(settings, f"leetcode-o:{LEETCODE_O}")
        assert report["retryable"] > 0 and report["scores"]["tasks"]["all"]["failed"] == report["retryable"]
        assert report["scores"]["tasks"]["all"]["pass@1"] < 1.0
        for _ in range(8):  # each rerun asks again for exactly the answers that failed
            asked, failed = len(server.requests), report["retryable"]
            report = evaluate(settings, f"leetcode-o:{LEETCODE_O}")
            assert len(server.requests) - asked == failed
            if not report["retryable"]:
                break
    assert report["retryable"] == 0 and task_scores(report) == {"output": 1.0, "input": 1.0, "all": 1.0}
    assert len(teacher.right) == 2 * LEET_EXAMPLES  # every question answered once: the rest came from the cache


def test_unparseable_answers_are_counted(tmp_path, prefect_harness):
    with FakeLLMServer(EvalTeacher(CRUXEVAL, "cruxeval", mode="garbage")) as server:
        report = evaluate(make_settings(tmp_path, server), f"cruxeval:{CRUXEVAL}")
    assert report["scores"]["tasks"]["all"]["unparseable"] == 2 * CRUX_ROWS
    assert report["scores"]["tasks"]["all"]["pass@1"] == 0.0


def test_two_samples_give_pass_at_k(tmp_path, prefect_harness):
    with FakeLLMServer(EvalTeacher(LEETCODE_O, "leetcode-o", mode="first_right")) as server:
        report = evaluate(make_settings(tmp_path, server, llm_temperature=0.8), f"leetcode-o:{LEETCODE_O}",
                          samples=2, ks=(1, 2))
    # sample 1 right, sample 2 wrong, for every question: pass@1 = 1/2, pass@2 = 1
    assert task_scores(report) == {"output": 0.5, "input": 0.5, "all": 0.5}
    assert task_scores(report, "pass@2") == {"output": 1.0, "input": 1.0, "all": 1.0}
    assert report["scores"]["problems"]["all"]["pass@2"] == 1.0
    assert [s["label"] for s in report["stages"]] == ["eval_questions", "answer s0", "answer s1", "eval_judge"]


def test_offline_teacher_scores_all_output_questions_it_can_trace(tmp_path, prefect_harness):
    report = evaluate(make_settings(tmp_path), f"leetcode-o:{LEETCODE_O}", teacher="offline")
    assert report["model"] == "offline"
    assert report["scores"]["tasks"]["output"]["pass@1"] == 1.0
    # its input answers are the true inputs, re-run in the sandbox: right as well
    assert report["scores"]["tasks"]["input"]["pass@1"] == 1.0


def test_offline_teacher_on_cruxeval_is_right_wherever_json_holds_the_values(tmp_path, prefect_harness):
    from codeio import prompting
    from codeio.evaluation.benchmarks import parse_benchmark_spec, read_benchmark
    from storage.store import DataStore

    report = evaluate(make_settings(tmp_path), f"cruxeval:{CRUXEVAL}", teacher="offline")
    questions = read_benchmark(parse_benchmark_spec(f"cruxeval:{CRUXEVAL}"), prompting.PromptTemplates.load()).questions

    def is_json(text):
        try:
            json.loads(text)
        except ValueError:
            return False
        return True

    traceable = {q["instance_id"] for q in questions if is_json(q["input"]) and is_json(q["output"])}
    judged = report["judgements_dataset"]
    store = DataStore(str(tmp_path / "store"))
    rows = [r for part in range(-(-2 * CRUX_ROWS // 7)) for r in store.read_part(judged["stage"], judged["key"], part)]
    assert len(rows) == 2 * CRUX_ROWS
    # output prediction: right for every function whose values JSON can carry (the tracer reports JSON)
    outputs = [r for r in rows if r["task"] == "output"]
    assert {r["question_id"] for r in outputs if r["correct"]} == {r["question_id"] for r in outputs} & traceable
    assert len(traceable & {r["question_id"] for r in outputs}) == 7
    # input prediction: its answer is the true input, run through f in the sandbox (it needs both values as JSON)
    inputs = [r for r in rows if r["task"] == "input"]
    assert {r["question_id"] for r in inputs if r["correct"]} == {r["question_id"] for r in inputs} & traceable
    assert sum(r["correct"] for r in inputs) == 7
    assert report["scores"]["tasks"]["output"]["failed"] + report["scores"]["tasks"]["output"]["statuses"].get(
        "mismatch", 0) == CRUX_ROWS - 7


def test_scores_in_lineage_and_compare_from_the_cli(tmp_path, prefect_harness, monkeypatch):
    from typer.testing import CliRunner

    from flows.cli import app
    from storage.lineage import LineageDB

    teacher = EvalTeacher(CRUXEVAL, "cruxeval", mode="right")
    with FakeLLMServer(teacher) as server:
        monkeypatch.setenv("CODEIO_STORE", str(tmp_path / "store"))
        monkeypatch.setenv("CODEIO_DATABASE_URL", f"sqlite:///{tmp_path / 'lineage.db'}")
        monkeypatch.setenv("CODEIO_DASK_WORKERS", "0")
        base = ["eval", "--benchmark", f"cruxeval:{CRUXEVAL}", "--llm-base-url", server.base_url, "--json"]
        first = CliRunner().invoke(app, [*base, "--model", "model-a"])
        assert first.exit_code == 0, first.output
        first_report = json.loads(first.stdout)
        teacher.mode = "wrong"
        second = CliRunner().invoke(app, [*base, "--model", "model-b", "--compare", first_report["run_id"]])
        assert second.exit_code == 0, second.output
        report = json.loads(second.stdout)
        shown = CliRunner().invoke(app, ["eval", "--benchmark", f"cruxeval:{CRUXEVAL}", "--llm-base-url",
                                         server.base_url, "--model", "model-b", "--compare", first_report["run_id"]])
        assert shown.exit_code == 0 and "compared with run" in shown.output
        missing = CliRunner().invoke(app, [*base, "--model", "model-b", "--compare", "nope"])
        assert missing.exit_code == 2 and "no evaluation run" in missing.output
    rows = {(r["group"], r["task"]): r for r in report["comparison"]}
    assert rows[("all", "output")] == {"group": "all", "task": "output", "previous": 1.0, "current": 0.0,
                                       "delta": -1.0}
    assert rows[("category:set", "input")]["delta"] == -1.0
    with LineageDB(f"sqlite:///{tmp_path / 'lineage.db'}") as db:
        stored = db.eval_result(first_report["run_id"])
        assert stored["model"] == "model-a" and stored["benchmark"] == "cruxeval"
        assert stored["pass_at_1_output"] == 1.0 and stored["questions"] == 2 * CRUX_ROWS
        assert stored["benchmark_sha256"] == report["benchmark_sha256"]
        assert stored["prompt_version"] == "v1"
        assert [r["model"] for r in db.eval_results(benchmark_sha256=stored["benchmark_sha256"])] == [
            "model-b", "model-b", "model-a"]
        assert db.get_run(report["run_id"])["status"] == "completed"
