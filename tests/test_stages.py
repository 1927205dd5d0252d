"""Stage functions called directly on small shards, with the real sandbox."""

from __future__ import annotations

import json

import pytest

from conftest import TOY, needs_toy
from codeio import prompting
from codeio.answers import canonical_json
from codeio.execution import RunRequest
from codeio.records import INSTANCE, IO_PAIR, SAMPLE, UNIFIED_FUNCTION, VERDICT, SchemaError, dumps
from codeio.sources import SourceSpecError, parse_source_specs, read_sources
from codeio.stages.assemble import AssembleConfig, assemble_shard
from codeio.stages.build_prompts import PromptConfig, build_prompts_shard
from codeio.stages.collect_io import CollectConfig, collect_io_shard
from codeio.stages.normalize import NormalizeConfig, normalize_shard
from codeio.stages.verify import VerifyConfig, verify_shard

GOOD_MAIN = """
def main_solution(a, b):
    return {"sum": a + b, "product": a * b}
"""
GOOD_GENERATOR = """
import random
def input_generator():
    return {"a": random.randint(0, 50), "b": random.randint(0, 50)}
"""


@pytest.fixture(scope="module")
def executor():
    from codeio.sandbox import SandboxConfig, create_executor

    pool = create_executor(SandboxConfig(workers=2))
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def templates():
    return prompting.PromptTemplates.load()


def function(main: str, generator: str | None = None, pairs: list | None = None, fid: str = "f1") -> dict:
    return {
        "function_id": fid, "source_id": "s-" + fid, "main_code": main, "io_description": "a, b: ints",
        "generator_code": generator, "problem_statement": "What do a and b give?",
        "given_pairs": dumps(pairs) if pairs is not None else None, "teacher": "source", "llm_call_id": None,
        "origin": dumps({"path": "x.py"}),
    }


# -- sources / ingest ----------------------------------------------------------------------
def test_sources_reject_what_cannot_be_code_and_limit_counts_rows(tmp_path):
    corpus = tmp_path / "rows.jsonl"
    corpus.write_text("\n".join([
        json.dumps({"content": "print(1)\n", "repo_name": "r", "path": "/a.py"}),
        "{not json",
        json.dumps({"content": ""}),
        json.dumps({"content": "x = '\x00'"}),
        json.dumps({"no_content": 1}),
        json.dumps({"content": "def f():\n    return 2\n", "path": "/b.py"}),
    ]) + "\n")
    outcomes = list(read_sources(parse_source_specs([f"jsonl:{corpus}"])))
    reasons = [o.rejected["reason"] if o.rejected else "ok" for o in outcomes]
    assert reasons == ["ok", "malformed_row", "empty", "binary", "malformed_row", "ok"]
    limited = list(read_sources(parse_source_specs([f"jsonl:{corpus}"]), limit=3))
    assert len(limited) == 3  # rows in order, rejected ones included
    first = outcomes[0].record
    assert json.loads(first["origin"])["repo"] == "r" and first["kind"] == "raw"


def test_dir_source_is_recursive_and_rejects_undecodable(tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "a.py").write_text("def a():\n    return 1\n")
    (tmp_path / "pkg" / "sub" / "b.py").write_text("print 'python 2 is fine here'\n")
    (tmp_path / "pkg" / "sub" / "c.py").write_bytes(b"x = '\xff\xfe'\n")
    (tmp_path / "pkg" / "notes.txt").write_text("not python")
    outcomes = list(read_sources(parse_source_specs([f"dir:{tmp_path / 'pkg'}"])))
    assert [o.rejected["reason"] if o.rejected else json.loads(o.record["origin"])["path"].rsplit("/", 1)[-1]
            for o in outcomes] == ["a.py", "b.py", "undecodable"]


def test_bad_source_spec_is_a_clear_error(tmp_path):
    with pytest.raises(SourceSpecError, match="expected one of"):
        parse_source_specs(["csv:foo"])
    with pytest.raises(SourceSpecError, match="does not exist"):
        parse_source_specs([f"jsonl:{tmp_path / 'missing.jsonl'}"])


# -- normalize -------------------------------------------------------------------------------
def test_normalize_without_llm_rejects_raw_with_the_settings_to_set():
    raw = {"source_id": "r1", "source_name": "x", "kind": "raw", "origin": "{}", "content": "print(1)", "unified": None}
    unified = {"source_id": "u1", "source_name": "x", "kind": "unified", "origin": "{}", "content": GOOD_MAIN,
               "unified": dumps({"problem_description": "p", "io_requirements": "io", "ios": [{"input": {"a": 1, "b": 2},
                                                                                             "output": 3}]})}
    out = normalize_shard([raw, unified], NormalizeConfig(teacher="offline", model=""), llm=None)
    assert [r["source_id"] for r in out.records] == ["u1"]
    assert out.rejects[0]["reason"] == "needs_llm" and "CODEIO_LLM_BASE_URL" in out.rejects[0]["detail"]
    UNIFIED_FUNCTION.check(out.records)


def test_schema_check_names_the_missing_column():
    with pytest.raises(SchemaError, match="main_code"):
        collect_io_shard([{"function_id": "x"}], CollectConfig(), executor=None)


# -- collect_io --------------------------------------------------------------------------------
def test_collect_samples_distinct_pairs_and_rechecks(executor):
    out = collect_io_shard([function(GOOD_MAIN, GOOD_GENERATOR)], CollectConfig(), executor)
    assert not out.rejects
    IO_PAIR.check(out.records)
    inputs = [r["input"] for r in out.records]
    assert 2 <= len(inputs) <= 10 and len(set(inputs)) == len(inputs)
    for pair in out.records:
        args = json.loads(pair["input"])
        assert json.loads(pair["output"]) == {"sum": args["a"] + args["b"], "product": args["a"] * args["b"]}
        assert pair["determinism_checked"] is True
    assert [p["pair_index"] for p in out.records] == list(range(len(inputs)))


def test_collect_rejects_constant_generator_nondeterminism_and_missing_packages(executor):
    constant = "def input_generator():\n    return {'a': 1, 'b': 2}\n"
    nondeterministic = (
        "def main_solution(words):\n"
        "    return list(set(words))\n"
    )
    words = [{"input": {"words": ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"]}, "output": None}]
    # first pass computes the outputs that this executor gives, to feed them back as "given" pairs
    first = executor.run(RunRequest(
        code=nondeterministic, inputs_json=(dumps(words[0]["input"]),)))[0]
    given = [{"input": words[0]["input"], "output": json.loads(first.value_json)},
             {"input": {"words": ["one", "two", "three", "four", "five", "six"]}, "output": None}]
    second = executor.run(RunRequest(
        code=nondeterministic, inputs_json=(dumps(given[1]["input"]),)))[0]
    given[1]["output"] = json.loads(second.value_json)
    missing = "import surely_not_installed_pkg\n\ndef main_solution(a):\n    return a\n"
    out = collect_io_shard(
        [function(GOOD_MAIN, constant, fid="constant"),
         function(nondeterministic, pairs=given, fid="nondet"),
         function(missing, pairs=[{"input": {"a": 1}, "output": 1}, {"input": {"a": 2}, "output": 2}], fid="missing")],
        CollectConfig(), executor)
    reasons = {r["record_id"]: r["reason"] for r in out.rejects}
    assert reasons["constant"] == "too_few_pairs"
    assert reasons["nondet"] == "nondeterministic"
    assert reasons["missing"] == "missing_package:surely_not_installed_pkg"
    assert out.records == []
    assert out.stats["functions_in"] == 3 and out.stats["functions_kept"] == 0


def test_collect_revalidates_given_pairs_and_drops_bad_ones(executor):
    pairs = [
        {"input": {"a": 1, "b": 2}, "output": {"sum": 3, "product": 2}},
        {"input": {"a": 2, "b": 2}, "output": {"sum": 4, "product": 4}},
        {"input": {"a": 3, "b": 3}, "output": {"sum": 999, "product": 9}},  # does not reproduce
        {"input": {"a": 1, "b": 1}, "output": float("nan")},  # not finite
    ]
    out = collect_io_shard([function(GOOD_MAIN, pairs=pairs)], CollectConfig(type_driven_pairs=False), executor)
    assert not out.rejects
    assert [json.loads(p["input"]) for p in out.records] == [pairs[0]["input"], pairs[1]["input"]]
    assert out.stats["pairs_dropped"] == {"pair_not_reproduced": 1, "pair_non_finite_output": 1}
    # by default inputs drawn after the kept pairs' shapes follow them (tests/test_examples.py)
    topped = collect_io_shard([function(GOOD_MAIN, pairs=pairs)], CollectConfig(), executor)
    assert [json.loads(p["input"]) for p in topped.records][:2] == [pairs[0]["input"], pairs[1]["input"]]
    assert 2 < len(topped.records) <= CollectConfig().max_pairs


def test_collect_accepts_a_given_output_listed_in_another_order(executor):
    """LeetCode statements say "return the answer in any order": the example shows one
    order, the solution returns another (241. Different Ways to Add Parentheses: given
    [0, 2], got [2, 0]). Same elements, nested lists included, reproduce; the kept
    pair holds the order the code returns. Other elements, or other counts, do not."""
    main = ("def main_solution(n):\n"
            "    return [[j for j in range(i, 0, -1)] for i in range(n, 0, -1)]\n")
    pairs = [
        {"input": {"n": 2}, "output": [[1], [1, 2]]},  # [[2, 1], [1]] in another order at both levels
        {"input": {"n": 3}, "output": [[3, 2, 1], [2, 1], [1]]},  # exact
        {"input": {"n": 1}, "output": [[1], [1]]},  # another count: not the same answer
        {"input": {"n": 4}, "output": [[4, 3, 2, 1], [3, 2, 1], [2, 1], [2]]},  # another element
    ]
    out = collect_io_shard([function(main, pairs=pairs)], CollectConfig(type_driven_pairs=False), executor)
    assert out.rejects == []
    assert [json.loads(p["input"]) for p in out.records] == [{"n": 2}, {"n": 3}]
    assert [json.loads(p["output"]) for p in out.records] == [[[2, 1], [1]], [[3, 2, 1], [2, 1], [1]]]
    assert json.loads(out.records[0]["given_output"]) == [[1], [1, 2]]
    assert out.stats["pairs_dropped"] == {"pair_not_reproduced": 2}


def test_collect_keeps_deterministic_float_functions_given_within_tolerance(executor):
    """The authors' rows record floats computed elsewhere (-0.5440211108893691 where
    this Python gives -0.544021110889369): the pair reproduces within tolerance, so
    the re-check must compare this machine's two executions, not the given value,
    and the kept pair holds what the code returns here (the given value as provenance)."""
    main = "import math\n\ndef main_solution(x):\n    return {'sin': math.sin(x), 'scaled': x * 1.1}\n"
    inputs = [{"x": 10.0}, {"x": 14.96}]
    executed = [json.loads(r.value_json) for r in executor.run(RunRequest(
        code=main, inputs_json=tuple(dumps(i) for i in inputs)))]
    # given outputs off by a few ulps, as another platform's libm or summation order gives
    given = [{k: v * (1 + 4e-16) + 1e-15 for k, v in out.items()} for out in executed]
    assert all(g != e for g, e in zip(given, executed))
    pairs = [{"input": i, "output": g} for i, g in zip(inputs, given)]
    out = collect_io_shard([function(main, pairs=pairs)], CollectConfig(type_driven_pairs=False), executor)
    assert out.rejects == []
    assert [json.loads(p["output"]) for p in out.records] == executed
    assert [json.loads(p["given_output"]) for p in out.records] == given
    IO_PAIR.check(out.records)


def _agree_twice(executor, function_record: dict) -> bool:
    """Run the function's valid given inputs twice, as the stage's two executions do
    (another random seed, another hash seed), and say whether every output agrees."""
    given = [p for p in json.loads(function_record["given_pairs"]) if isinstance(p.get("input"), dict)]
    inputs = tuple(dict.fromkeys(dumps(p["input"]) for p in given))
    config = CollectConfig()
    runs = [executor.run(RunRequest(code=function_record["main_code"], inputs_json=inputs, stop_on_fatal=False,
                                    seed=seed, recheck=recheck))
            for seed, recheck in ((config.seed, False), (config.recheck_seed, True))]
    return all(a.ok and b.ok and canonical_json(json.loads(a.value_json)) == canonical_json(json.loads(b.value_json))
               for a, b in zip(*runs))


@needs_toy()
def test_authors_unified_rows_give_no_false_nondeterministic_reject(executor):
    """Done-when of issue 11: on the authors' toy rows, every function rejected as
    nondeterministic really gives two different executions."""
    rows = [o.record for o in read_sources(parse_source_specs([f"unified:{TOY / 'unified_with_ios.jsonl'}"]))
            if o.record is not None]
    functions = normalize_shard(rows, NormalizeConfig(teacher="none", model=""), None).records
    out = collect_io_shard(functions, CollectConfig(), executor, parallelism=2)
    by_id = {f["function_id"]: f for f in functions}
    nondeterministic = [r["record_id"] for r in out.rejects if r["reason"] == "nondeterministic"]
    false_rejects = [fid for fid in nondeterministic if _agree_twice(executor, by_id[fid])]
    assert false_rejects == [], [r["detail"][:300] for r in out.rejects if r["record_id"] in false_rejects]


def test_collect_rejects_name_the_given_pair_they_are_about(executor):
    """A pair dropped before running must not shift the index of the pairs after it."""
    pairs = [
        {"input": [1, 2], "output": 3},  # not a dict: dropped before running
        {"input": {"a": 1, "b": 2}, "output": {"sum": 3, "product": 2}},
        {"input": {"a": 3, "b": 3}, "output": {"sum": 999, "product": 9}},  # does not reproduce
    ]
    out = collect_io_shard([function(GOOD_MAIN, pairs=pairs)], CollectConfig(min_pairs=2, type_driven_pairs=False),
                           executor)
    (rejected,) = out.rejects
    assert rejected["reason"] == "too_few_pairs"
    assert "f1#pair0 pair_input_not_a_dict" in rejected["detail"]
    assert "f1#pair2 pair_not_reproduced: given {\"sum\": 999" in rejected["detail"]
    assert "f1#pair1" not in rejected["detail"]


# -- build_prompts, verify, assemble ---------------------------------------------------------------
def _instances(executor, templates, k=2, tasks=("output", "input")):
    fn = function(GOOD_MAIN, GOOD_GENERATOR)
    pairs = collect_io_shard([fn], CollectConfig(), executor).records
    return fn, pairs, build_prompts_shard([fn], pairs, PromptConfig(pairs_per_function=k, tasks=tasks), templates)


def test_build_prompts_takes_first_k_pairs_half_input_half_output(executor, templates):
    fn, pairs, out = _instances(executor, templates, k=2)
    INSTANCE.check(out.records)
    assert len(out.records) == 4
    assert sorted(r["task"] for r in out.records) == ["input", "input", "output", "output"]
    assert {r["pair_index"] for r in out.records} == {0, 1}
    prompt = json.loads(out.records[0]["messages"])[0]["content"]
    assert prompt.rstrip().endswith('{"output": ...}') and fn["main_code"].strip() in prompt
    only_input = build_prompts_shard([fn], pairs, PromptConfig(pairs_per_function=3, tasks=("input",)), templates)
    assert {r["task"] for r in only_input.records} == {"input"} and len(only_input.records) == 3


def _response(instance, text, ok=True, round_number=1):
    return {"response_id": f"r-{instance['instance_id']}-{round_number}-{hash(text)}", "instance_id": instance["instance_id"],
            "round": round_number, "messages": instance["messages"], "text": text, "ok": ok,
            "error": None if ok else "http_500", "teacher": "openai", "model": "m", "finish_reason": "stop",
            "prompt_tokens": 1, "completion_tokens": 1, "llm_call_id": "c"}


def test_verify_output_and_input_predictions_by_execution(executor, templates):
    _, _, built = _instances(executor, templates, k=1)
    by_task = {i["task"]: i for i in built.records}
    out_i, in_i = by_task["output"], by_task["input"]
    true_in, true_out = json.loads(out_i["input"]), json.loads(out_i["output"])
    # an input different from the true one that gives the same output is also right
    swapped = {"a": true_in["b"], "b": true_in["a"]}
    responses = [
        _response(out_i, f"Reasoning...\n{json.dumps({'output': true_out})}"),
        _response(in_i, f"So: {json.dumps({'input': swapped})}"),
    ]
    verdicts = verify_shard(built.records, responses, VerifyConfig(), executor, templates).records
    VERDICT.check(verdicts)
    assert [v["status"] for v in verdicts] == ["success", "success"]

    wrong = [
        _response(out_i, json.dumps({"output": {"sum": -1, "product": true_out["product"]}})),
        _response(in_i, json.dumps({"input": {"a": "x", "b": [1]}})),
        _response(in_i, "I think it is five."),
        _response(in_i, "partial", ok=False),
    ]
    verdicts = verify_shard(built.records, wrong, VerifyConfig(), executor, templates).records
    assert [v["status"] for v in verdicts] == ["mismatch", "exception", "no_answer", "llm_failed"]
    assert "TypeError" in verdicts[1]["feedback"]


def test_verify_times_out_a_hanging_prediction(executor, templates):
    slow = "def main_solution(n):\n    while n > 0:\n        pass\n    return n\n"
    fn = function(slow, pairs=None)
    instance = {"instance_id": "i1", "function_id": "f1", "source_id": "s", "pair_id": "p", "pair_index": 0,
                "task": "input", "messages": dumps([{"role": "user", "content": "q"}]), "template_version": "v1",
                "variant": "prompt", "main_code": fn["main_code"], "input": dumps({"n": 0}), "output": dumps(0),
                "origin": "{}"}
    verdict = verify_shard([instance], [_response(instance, '{"input": {"n": 1}}')], VerifyConfig(timeout_s=1.0),
                           executor, templates).records[0]
    assert verdict["status"] == "timeout"


def test_assemble_rounds_rejection_sampling_and_ground_truth(executor, templates):
    _, _, built = _instances(executor, templates, k=1, tasks=("output",))
    instance = built.records[0]
    truth = json.loads(instance["output"])
    r1 = _response(instance, json.dumps({"output": "wrong"}))
    r2 = _response(instance, json.dumps({"output": truth}), round_number=2)
    v1 = verify_shard([instance], [r1], VerifyConfig(), executor, templates).records
    v2 = verify_shard([instance], [r2], VerifyConfig(), executor, templates).records
    rounds = {1: ([r1], v1), 2: ([r2], v2)}

    two = assemble_shard([instance], rounds, AssembleConfig(revision_rounds=1), templates).records[0]
    SAMPLE.check([two])
    assert two["turn_1"] == r1["text"] and two["turn_2"] == r2["text"] and two["verified"] is True
    assert two["feedback_1"] == v1[0]["feedback"] and two["prompt"].startswith("Here is a question")

    zero = assemble_shard([instance], rounds, AssembleConfig(revision_rounds=0), templates).records[0]
    assert zero["turn_2"] == "" and zero["verified"] is False and zero["sample_id"] != two["sample_id"]

    rejected = assemble_shard([instance], rounds, AssembleConfig(revision_rounds=0, rejection_sampling=True), templates)
    assert rejected.records == [] and rejected.rejects[0]["reason"] == "rejection_sampling:mismatch"

    truth_only = assemble_shard([instance], rounds, AssembleConfig(revision_rounds=0, wrong_answer_policy="ground_truth"),
                                templates).records[0]
    assert json.loads(truth_only["turn_1"]) == {"output": truth} and truth_only["feedback_1"] == ""


def test_instance_fraction_subsets_are_nested():
    ids = [f"instance-{i}" for i in range(2000)]
    quarter = {i for i in ids if AssembleConfig(instance_fraction=0.25, subset_seed=7).keeps(i)}
    half = {i for i in ids if AssembleConfig(instance_fraction=0.5, subset_seed=7).keeps(i)}
    assert quarter < half
    assert 400 < len(quarter) < 600 and 900 < len(half) < 1100
