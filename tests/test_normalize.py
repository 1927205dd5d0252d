"""The normalization request and the tolerant parser of its answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codeio.normalize import (
    NormalizedParts,
    ParseFailure,
    TemplateError,
    build_normalize_messages,
    load_normalize_template,
    parse_normalization,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TOY_UNIFIED = SHARED / "data" / "codeio-toy" / "unified_with_ios.jsonl"

MAIN = '''import math

def helper(x):
    return math.sqrt(x)

# main function
def main_solution(n, values):
    return round(sum(helper(v) for v in values) * n, 3)'''
GENERATOR = '''import random

def input_generator():
    return {"n": random.randint(1, 5), "values": [random.randint(0, 9) for _ in range(3)]}'''
IO = """Input:
  `n` (int): a multiplier between 1 and 5
  `values` (list of int): three numbers from 0 to 9
Output:
  `return` (float): n times the sum of the square roots, rounded to 3 decimals"""
PROBLEM = "Given a multiplier `n` and a list `values`, what is n times the sum of their square roots?"


def answer(main=MAIN, generator=GENERATOR, io=IO, problem=PROBLEM, fence="python",
           headings=("## Main Function", "## Input Output Description", "## Input Generator", "## Problem Statement")):
    return (
        f"{headings[0]}\n```{fence}\n{main}\n```\n{headings[1]}\n{io}\n"
        f"{headings[2]}\n```{fence}\n{generator}\n```\n{headings[3]}\n{problem}\n"
    )


def run(parts: NormalizedParts) -> object:
    """Execute the parsed code the way collection does: main code, generator, one call."""
    namespace: dict = {}
    exec(compile(parts.main_code + "\n" + parts.generator_code, "<normalized>", "exec"), namespace)
    return namespace["main_solution"](**namespace["input_generator"]())


def test_the_reference_format_parses():
    parts = parse_normalization(answer())
    assert parts == NormalizedParts(MAIN + "\n", IO, GENERATOR + "\n", PROBLEM)
    assert isinstance(run(parts), float)


@pytest.mark.parametrize(
    "text",
    [
        "Sure! Here is the normalized version.\n\n" + answer() + "\nI hope this helps. Let me know!\n",
        answer() + "\n---\n\nThis solution keeps the\ncore logic of the file.\n",
        answer() + "\n## Explanation\nThe main function sums square roots.\n### Why\nBecause.\n",
        answer().replace("\n", "\r\n"),
        answer(fence="py"),
        answer(fence="Python3"),
        answer(headings=("### 1. Main Function Code", "**Input/Output Requirements**", "### Input Generator Function",
                         "**Problem:**")),
        answer(headings=("1. Main Function:", "2. Input and Output Description:", "3. Input Generator:",
                         "4. Problem Statement:")),
        answer(headings=("# Main function", "## I/O Description", "## Generator", "## Question")),
        answer(main="# first try\ndef main_solution(n):\n    pass\n```\nActually, the final version:\n```python\n" + MAIN),
    ],
    ids=["prose", "closing-note", "trailing-section", "crlf", "py-fence", "python3-fence", "renamed", "numbered", "short-names", "several-blocks"],
)
def test_what_real_models_write_parses(text):
    parts = parse_normalization(text)
    assert isinstance(parts, NormalizedParts), parts
    assert parts.main_code == MAIN + "\n" and parts.generator_code == GENERATOR + "\n"
    assert parts.io_description == IO and parts.problem_statement == PROBLEM


def test_code_sections_found_without_their_headings():
    text = (
        "Here is the code:\n```python\n" + MAIN + "\n```\nAnd the generator:\n```python\n" + GENERATOR + "\n```\n"
        "## Input Output Description\n" + IO + "\n## Problem Statement\n" + PROBLEM + "\n"
    )
    parts = parse_normalization(text)
    assert isinstance(parts, NormalizedParts), parts
    assert parts.main_code.startswith("import math") and "def input_generator" in parts.generator_code


def test_one_block_holding_both_functions_is_split():
    text = answer(main=MAIN + "\n\n" + GENERATOR, headings=("## Main Function", "## Input Output Description",
                                                           "## Notes", "## Problem Statement"), generator="x = 1")
    parts = parse_normalization(text)
    assert isinstance(parts, NormalizedParts), parts
    assert "def input_generator" not in parts.main_code and "def main_solution" not in parts.generator_code
    assert isinstance(run(parts), float)


def test_main_solution_inside_a_class_is_hoisted():
    main = '''class Solution:
    def __init__(self, scale=2):
        self.scale = scale

    def main_solution(self, n, values, *, offset=0):
        return n * sum(values) * self.scale + offset'''
    parts = parse_normalization(answer(main=main))
    assert isinstance(parts, NormalizedParts), parts
    assert parts.notes == ("hoisted main_solution from class Solution",)
    assert parts.main_code.rstrip().endswith("return Solution().main_solution(n, values, offset=offset)")
    namespace: dict = {}
    exec(parts.main_code, namespace)
    assert namespace["main_solution"](n=2, values=[1, 2]) == 12

    static = "class Tools:\n    @staticmethod\n    def main_solution(n, values):\n        return n + len(values)"
    parts = parse_normalization(answer(main=static))
    assert isinstance(parts, NormalizedParts) and isinstance(run(parts), int)


def test_a_class_that_needs_arguments_is_rejected():
    main = "class Solver:\n    def __init__(self, grid):\n        self.grid = grid\n\n    def main_solution(self, n):\n        return n"
    assert parse_normalization(answer(main=main)) == ParseFailure(
        "main_solution_in_class", "Solver cannot be built without arguments"
    )


@pytest.mark.parametrize(
    "text, reason",
    [
        ("I cannot help with that.", "no_code_block"),
        ("", "empty_response"),
        (answer(main="def solve(n, values):\n    return n"), "missing_main_solution"),
        (answer(generator="def make_inputs():\n    return {}"), "missing_input_generator"),
        (answer(main="def main_solution(n, values):\n    print 'hello'"), "syntax_error"),
        (answer(problem=""), "missing_problem_statement"),
        (answer(io=""), "missing_io_description"),
        (answer(generator="def input_generator(seed):\n    return {}"), "input_generator_has_parameters"),
    ],
)
def test_unusable_answers_say_why(text, reason):
    parsed = parse_normalization(text)
    assert isinstance(parsed, ParseFailure) and parsed.reason == reason, parsed


def test_json_mode_answers():
    obj = {"main_function": MAIN, "io_description": IO, "input_generator": GENERATOR, "problem_statement": PROBLEM}
    parts = parse_normalization(json.dumps(obj), json_mode=True)
    assert parts == NormalizedParts(MAIN + "\n", IO, GENERATOR + "\n", PROBLEM)
    fenced = dict(obj, main_function=f"```python\n{MAIN}\n```")
    assert parse_normalization("```json\n" + json.dumps(fenced) + "\n```", json_mode=True) == parts
    assert parse_normalization("Here you go: " + json.dumps(obj), json_mode=False) == parts
    assert parse_normalization(answer(), json_mode=True) == parse_normalization(answer())  # the model ignored JSON mode
    assert parse_normalization('{"main_function": "def f(', json_mode=True).reason == "invalid_json"
    missing = dict(obj, input_generator="")
    assert parse_normalization(json.dumps(missing), json_mode=True).reason == "missing_input_generator"


def test_the_request_is_one_user_message_with_the_file_verbatim():
    raw = 'price = "$5"\ntemplate = "{name} ${value}"\r\nprint "python 2"\n'
    (message,) = build_normalize_messages(raw)
    assert message["role"] == "user" and raw in message["content"]
    assert "main_solution" in message["content"] and "input_generator" in message["content"]
    for heading in ("## Main Function", "## Input Output Description", "## Input Generator", "## Problem Statement"):
        assert heading in message["content"]
    (json_message,) = build_normalize_messages(raw, json_mode=True)
    assert raw in json_message["content"] and "JSON" in json_message["content"]
    assert build_normalize_messages("x", template="Code: $raw_code") == [{"role": "user", "content": "Code: x"}]
    with pytest.raises(TemplateError):
        build_normalize_messages("x", template="no placeholder")


def test_a_prompt_folder_overrides_the_template(tmp_path):
    (tmp_path / "normalize.v1.txt").write_text("Mine: $raw_code", encoding="utf-8")
    assert load_normalize_template(tmp_path) == "Mine: $raw_code"
    assert "[Code Start]" in load_normalize_template(tmp_path / "absent")


@pytest.mark.skipif(not TOY_UNIFIED.exists(), reason=f"shared toy data not found at {TOY_UNIFIED}")
def test_the_authors_functions_parse_in_the_reference_format():
    rows = [json.loads(line) for line in TOY_UNIFIED.read_text(encoding="utf-8").splitlines() if line.strip()]
    generator = "import random\n\ndef input_generator():\n    return {}"
    failures = []
    for row in rows:
        text = answer(main=row["refcode"], generator=generator, io=row["io_requirements"],
                      problem=row["problem_description"])
        parsed = parse_normalization(text)
        if not isinstance(parsed, NormalizedParts) or parsed.main_code.strip() != row["refcode"].strip():
            failures.append((row["meta"], parsed if isinstance(parsed, ParseFailure) else "main code differs"))
        elif parsed.problem_statement != row["problem_description"].strip():
            failures.append((row["meta"], "problem statement differs"))
    assert failures == []
