"""The evaluation's pieces on their own: benchmark readers (rows that give no
question are rejects with a reason), Python-value judging of CRUXEval answers
(tuples, sets, lists; input prediction run in the sandbox), JSON judging through
the pipeline's verifier, and the unbiased pass@k estimator."""

from __future__ import annotations

import json
from math import comb
from pathlib import Path

import pytest

from codeio import prompting
from codeio.evaluation import judge, scoring
from codeio.evaluation.benchmarks import (BenchmarkSpecError, parse_benchmark_spec, question_origin,
                                          read_benchmark)

DATA = Path(__file__).resolve().parent / "data" / "eval"


@pytest.fixture(scope="module")
def templates():
    return prompting.PromptTemplates.load()


@pytest.fixture(scope="module")
def executor():
    from codeio.sandbox import SandboxConfig, create_executor

    pool = create_executor(SandboxConfig(workers=2))
    yield pool
    pool.close()


def write_rows(path: Path, rows: list) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


# -- readers ---------------------------------------------------------------------------


def test_spec_errors_are_clear(tmp_path):
    with pytest.raises(BenchmarkSpecError, match="KIND:PATH"):
        parse_benchmark_spec("humaneval:x.jsonl")
    with pytest.raises(BenchmarkSpecError, match="does not exist"):
        parse_benchmark_spec(f"cruxeval:{tmp_path / 'missing.jsonl'}")


def test_cruxeval_rows_become_named_argument_questions(templates):
    bench = read_benchmark(parse_benchmark_spec(f"cruxeval:{DATA / 'cruxeval.jsonl'}"), templates)
    assert bench.rows == 12 and len(bench.questions) == 24 and not bench.rejects
    first = [q for q in bench.questions if question_origin(q)["item_id"] == "sample_6"]
    output_q = next(q for q in first if q["task"] == "output")
    assert output_q["input"] == "{'a': 1, 'b': (2, 3)}" and output_q["output"] == "((2, 3), 1)"
    # values JSON can hold exactly are stored as JSON, with a main_solution calling f (for the offline teacher)
    counted = crux_questions_of(bench, "sample_4")["output"]
    assert counted["input"] == '{"n": 10}' and counted["output"] == "18"
    assert counted["main_code"].endswith("def main_solution(**arguments):\n    return f(**arguments)\n")
    assert "main_solution" not in json.loads(counted["messages"])[0]["content"]
    prompt = json.loads(output_q["messages"])[0]["content"]
    assert "def f(a, b):" in prompt and "{'a': 1, 'b': (2, 3)}" in prompt and prompt.endswith('{"output": ...}')
    assert question_origin(output_q) | {"path": None} == {
        "benchmark": "cruxeval", "path": None, "sha256": bench.sha256, "row": 7, "item_id": "sample_6",
        "category": "tuple", "difficulty": "-", "format": "python"}


def test_bad_rows_are_rejected_with_reasons(tmp_path, templates):
    good = {"code": "def f(x):\n    return x\n", "input": "1", "output": "1", "id": "ok"}
    path = write_rows(tmp_path / "crux.jsonl", [
        good, "not json", {"code": "def f(*xs):\n    return xs\n", "input": "1", "output": "(1,)"},
        {"code": "def f(x):\n    return x\n", "input": "__import__('os')", "output": "1"},
        {"code": "def f(x):\n    return x\n", "input": "1", "output": "object()"},
        {"code": "def g(x):\n    return x\n", "input": "1", "output": "1"}, {"input": "1"},
    ])
    bench = read_benchmark(parse_benchmark_spec(f"cruxeval:{path}"), templates)
    assert bench.rows == 7 and len(bench.questions) == 2
    assert sorted(r["reason"] for r in bench.rejects) == [
        "bad_json", "input_not_literal", "missing_field", "no_entry", "output_not_literal", "unsupported_signature"]
    limited = read_benchmark(parse_benchmark_spec(f"cruxeval:{path}"), templates, limit=2)
    assert limited.rows == 2 and len(limited.questions) == 2 and len(limited.rejects) == 1


def test_leetcode_o_and_unified_rows(tmp_path, templates):
    bench = read_benchmark(parse_benchmark_spec(f"leetcode-o:{DATA / 'leetcode_o.jsonl'}"), templates)
    assert len(bench.questions) == 26 and {question_origin(q)["difficulty"] for q in bench.questions} == {
        "Easy", "Medium", "Hard"}
    assert len({q["function_id"] for q in bench.questions}) == 5
    row = json.loads((DATA / "leetcode_o.jsonl").read_text().splitlines()[1])
    unified = {"problem_description": row["problem_description"], "io_requirements": row["io_requirements"],
               "refcode": row["refcode"], "funcname": "main_solution", "ios": row["examples"], "category": "toy"}
    path = write_rows(tmp_path / "u.jsonl", [unified, {**unified, "funcname": "solve"}])
    bench = read_benchmark(parse_benchmark_spec(f"unified:{path}"), templates)
    assert len(bench.questions) == 6 and [r["reason"] for r in bench.rejects] == ["unsupported_entry"]
    # the same prompt as the pipeline builds for this pair
    output_q = next(q for q in bench.questions if q["task"] == "output")
    assert json.loads(output_q["messages"]) == prompting.build_prediction_messages(
        "output", row["problem_description"], row["io_requirements"], json.dumps({"s": "Hello"}), row["refcode"],
        "prompt", templates)


# -- judging ---------------------------------------------------------------------------


def response(question, text, ok=True, error=None):
    return {"response_id": f"r-{question['instance_id']}-{hash(text)}", "instance_id": question["instance_id"],
            "round": 1, "messages": question["messages"], "text": text, "ok": ok, "error": error, "teacher": "openai",
            "model": "m", "finish_reason": "stop", "prompt_tokens": 0, "completion_tokens": 0, "llm_call_id": None}


def crux_questions_of(bench, item_id):
    return {q["task"]: q for q in bench.questions if question_origin(q)["item_id"] == item_id}


def crux_questions(templates, item_id):
    return crux_questions_of(read_benchmark(parse_benchmark_spec(f"cruxeval:{DATA / 'cruxeval.jsonl'}"), templates),
                             item_id)


def judged(executor, templates, pairs):
    questions = list({q["instance_id"]: q for q, _ in pairs}.values())
    out = judge.judge_shard(questions, [[response(q, text) for q, text in pairs]], judge.JudgeConfig(), executor,
                            templates)
    return [(row["status"], row["reason"]) for row in out.records]


def test_python_values_compare_by_type_and_value(executor, templates):
    tuple_q = crux_questions(templates, "sample_0")["output"]  # (1, 2, 3)
    set_q = crux_questions(templates, "sample_2")["output"]  # {'a', 'b'}
    statuses = judged(executor, templates, [
        (tuple_q, 'So: {"output": (1, 2, 3)}'),
        (tuple_q, '{"output": [1, 2, 3]}'),  # a list is not the tuple f returns
        (set_q, "The answer is {\"output\": {'b', 'a'}}"),  # sets have no order
        (set_q, "```json\n{\"output\": [\"a\", \"b\"]}\n```"),
        (set_q, "I give up."),
    ])
    assert [s for s, _ in statuses] == ["success", "mismatch", "success", "mismatch", "no_answer"]
    assert statuses[-1][1] == "no_json"


def test_python_input_prediction_runs_in_the_sandbox(executor, templates):
    question = crux_questions(templates, "sample_10")["input"]  # f(a, b) = set(a) & set(b) -> {3, 4}
    statuses = judged(executor, templates, [
        (question, '{"input": {"a": [3, 4], "b": (4, 3, 9)}}'),
        (question, '{"input": {"a": [1], "b": [2]}}'),
        (question, '{"input": {"a": [3, 4]}}'),  # f() missing an argument: the call raises
        (question, '{"input": {"a": "__import__(\'os\').system(\'true\')", "b": 1}}'),  # a string, never evaluated
        (question, '{"input": [3, 4]}'),
    ])
    assert [s for s, _ in statuses] == ["success", "mismatch", "exception", "exception", "no_answer"]
    assert "TypeError" in statuses[2][1] and statuses[4][1] == "not_a_dict"


def test_json_questions_use_the_pipeline_verifier(executor, templates):
    bench = read_benchmark(parse_benchmark_spec(f"leetcode-o:{DATA / 'leetcode_o.jsonl'}"), templates)
    mean = {q["task"]: q for q in bench.questions if question_origin(q)["item_id"] == "mean-of-values"
            and q["pair_index"] == 0}
    statuses = judged(executor, templates, [
        (mean["output"], '{"output": 1.6667}'),  # close by the pipeline's float rule
        (mean["output"], '{"output": 2}'),
        (mean["input"], '{"input": {"values": [2, 1, 2]}}'),  # any input giving the output is right
        (mean["input"], '{"input": {"values": []}}'),
    ])
    assert [s for s, _ in statuses] == ["success", "mismatch", "success", "exception"]


# -- scoring ---------------------------------------------------------------------------


@pytest.mark.parametrize("n,c,k", [(1, 0, 1), (1, 1, 1), (5, 2, 1), (5, 2, 3), (10, 3, 5), (10, 0, 10), (10, 9, 2)])
def test_pass_at_k_is_the_unbiased_estimator(n, c, k):
    assert scoring.pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))


def test_pass_at_k_rejects_impossible_arguments():
    with pytest.raises(ValueError):
        scoring.pass_at_k(2, 3, 1)
    with pytest.raises(ValueError):
        scoring.pass_at_k(2, 1, 3)


def judgement(question, item, task, sample, correct, status=None, category="c", difficulty="-"):
    return {"question_id": question, "item_id": item, "task": task, "sample": sample, "correct": correct,
            "status": status or ("success" if correct else "mismatch"), "category": category,
            "difficulty": difficulty}


def test_scores_per_task_group_and_problem():
    rows = [
        judgement("q1", "p1", "output", 0, True), judgement("q1", "p1", "output", 1, False),
        judgement("q2", "p1", "input", 0, True), judgement("q2", "p1", "input", 1, True),
        judgement("q3", "p2", "output", 0, False, "no_answer", category="d"),
        judgement("q3", "p2", "output", 1, True, category="d"),
    ]
    report = scoring.score(rows, samples=2, ks=(1, 2))
    assert report["tasks"]["output"]["pass@1"] == 0.5 and report["tasks"]["output"]["pass@2"] == 1.0
    assert report["tasks"]["input"]["pass@1"] == 1.0 and report["tasks"]["all"]["unparseable"] == 1
    # p1 is solved by sample 0 only (q1 wrong in sample 1); p2 by sample 1 only
    assert report["problems"]["all"] == {"problems": 2, "solved_by_every_sample": 0, "pass@1": 0.5, "pass@2": 1.0}
    assert report["by_category"]["d"]["output"]["questions"] == 1
    with pytest.raises(ValueError, match="judged samples"):
        scoring.score(rows[:-1], samples=2)


def test_compare_lines_up_groups():
    before = scoring.score([judgement("q1", "p1", "output", 0, True)], samples=1)
    after = scoring.score([judgement("q1", "p1", "output", 0, False), judgement("q2", "p2", "input", 0, True)],
                          samples=1)
    rows = {(r["group"], r["task"]): r for r in scoring.compare(after, before)}
    assert rows[("all", "output")]["delta"] == -1.0
    assert rows[("all", "input")] == {"group": "all", "task": "input", "previous": None, "current": 1.0,
                                      "delta": None}
