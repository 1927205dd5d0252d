"""The sample corpus shipped in the package: schema, limits, and pairs that
really reproduce when re-run in the sandbox."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest

from codeio.answers import canonical_json, values_match
from codeio.execution import ExecStatus, Limits, RunRequest, SampleRequest

sandbox = pytest.importorskip("codeio.sandbox", reason="the sandbox package is not importable")
from codeio.sandbox.sizecheck import size_violation  # noqa: E402  (after the skip guard)

CORPUS_DIR = Path(__file__).resolve().parents[1] / "codeio" / "corpus"
UNIFIED = CORPUS_DIR / "unified.jsonl"
RAW = CORPUS_DIR / "raw"
FIELDS = {"problem_description", "io_requirements", "refcode", "funcname", "ios", "category", "meta", "input_generator"}
CATEGORIES = {"strings", "lists", "dicts", "math", "graph search", "simulation", "dynamic programming", "parsing"}
LIMITS = Limits(timeout_s=10.0)


def _rows() -> list[dict]:
    return [json.loads(line) for line in UNIFIED.read_text(encoding="utf-8").splitlines() if line.strip()]


ROWS = _rows()
IDS = [row["meta"]["name"] for row in ROWS]


@pytest.fixture(scope="module")
def executor():
    ex = sandbox.create_executor(sandbox.SandboxConfig(workers=2))
    try:
        yield ex
    finally:
        ex.close()


def test_size_and_coverage():
    assert len(ROWS) >= 30
    assert {row["category"] for row in ROWS} == CATEGORIES
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_row_schema(row):
    assert set(row) == FIELDS
    assert row["funcname"] == "main_solution"
    assert row["meta"]["license"] == "Apache-2.0" and row["meta"]["author"] == "codeio project"
    for field in ("problem_description", "io_requirements", "refcode", "input_generator"):
        assert isinstance(row[field], str) and row[field].strip()
    assert row["io_requirements"].startswith("Input:") and "\nOutput:" in row["io_requirements"]
    assert "?" in row["problem_description"]  # a question, not "write a function"
    assert "write a function" not in row["problem_description"].lower()
    assert 4 <= len(row["ios"]) <= 6
    inputs = [canonical_json(pair["input"]) for pair in row["ios"]]
    assert len(set(inputs)) == len(inputs), "inputs must be distinct"


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_refcode_defines_main_solution_last(row):
    tree = ast.parse(row["refcode"])
    defs = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    assert defs and defs[-1].name == "main_solution" and isinstance(defs[-1], ast.FunctionDef)
    assert tree.body[-1] is defs[-1], "nothing may follow main_solution"
    params = [a.arg for a in defs[-1].args.args]
    for pair in row["ios"]:
        assert list(pair["input"]) == params, "inputs are keyword arguments in signature order"
    generator = ast.parse(row["input_generator"])
    names = [n.name for n in generator.body if isinstance(n, ast.FunctionDef)]
    assert "input_generator" in names
    assert "main_solution" not in row["input_generator"]


def _finite(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_pairs_respect_the_method_limits(row):
    for pair in row["ios"]:
        assert isinstance(pair["input"], dict)
        assert size_violation(pair["input"]) is None, pair["input"]
        assert pair["output"] is not None
        assert size_violation(pair["output"]) is None, pair["output"]
        assert _finite(pair["output"])
        assert len(json.dumps(pair["output"])) < 1024


def test_every_pair_reproduces_in_the_sandbox(executor):
    """Each row's pairs re-run to their outputs, with the size check on, both in
    a normal server and in the determinism re-check server (other hash seed)."""
    for row in ROWS:
        inputs = tuple(json.dumps(pair["input"]) for pair in row["ios"])
        for recheck in (False, True):
            results = executor.run(RunRequest(code=row["refcode"], inputs_json=inputs, limits=LIMITS, recheck=recheck))
            assert len(results) == len(inputs)
            for pair, result in zip(row["ios"], results):
                name = row["meta"]["name"]
                assert result.status is ExecStatus.OK, (name, recheck, result.describe())
                actual = json.loads(result.value_json)
                assert canonical_json(actual) == canonical_json(pair["output"]), (name, pair)
                assert values_match(actual, pair["output"])


def test_generators_sample_valid_pairs_in_the_sandbox(executor):
    for row in ROWS:
        code = row["refcode"] + "\n\n" + row["input_generator"]
        result = executor.sample(SampleRequest(code=code, max_attempts=50, max_pairs=4, limits=Limits(timeout_s=20.0)))
        assert result.status is ExecStatus.OK, (row["meta"]["name"], result.error_type, result.error_message)
        assert len(result.pairs) >= 2, (row["meta"]["name"], result.rejected)


def test_unified_file_is_what_the_builder_writes():
    from codeio.corpus import build_corpus

    assert build_corpus.render() == UNIFIED.read_text(encoding="utf-8")


def test_raw_files():
    files = sorted(RAW.glob("*.py"))
    assert len(files) >= 10
    texts = {path.name: path.read_text(encoding="utf-8") for path in files}
    for name, text in texts.items():
        assert text.strip(), name
        assert "\x00" not in text
        assert len(text.encode("utf-8")) < 256 * 1024
    python2 = []
    for name, text in texts.items():
        try:
            ast.parse(text)
        except SyntaxError:
            python2.append(name)
    assert python2, "at least one raw file must be Python 2 style (the normalizer converts it)"
    assert len(python2) < len(texts) / 2
    assert sum('if __name__ == "__main__"' in t or "if __name__ == '__main__'" in t for t in texts.values()) >= 3
    assert sum("\nclass " in "\n" + t for t in texts.values()) >= 3


def test_readme_says_it_is_ours():
    text = (CORPUS_DIR / "README.md").read_text(encoding="utf-8")
    assert "written for the codeio project" in text and "Apache-2.0" in text
    assert "build_corpus" in text
