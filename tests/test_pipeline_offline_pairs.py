"""Whole runs on sources that carry their own pairs: doctest folders, LeetCode-style
problem folders and unified rows with one pair and an input generator, with the
offline teacher (no endpoint)."""

from __future__ import annotations

import json
from pathlib import Path

from codeio.records import dumps

DATA = Path(__file__).resolve().parent / "data"


def run(**params):
    from flows.pipeline import codeio_pipeline
    from flows.spec import RunSpec

    return codeio_pipeline(spec=RunSpec(**params))


def stage(summary: dict, label: str) -> dict:
    return next(s for s in summary["stages"] if s["label"] == label)


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_folder_of_doctests_gives_verified_samples_without_an_llm(prefect_harness, env):
    out = env / "doctests.jsonl"
    summary = run(sources=[f"dir:{DATA / 'doctests'}"], out=str(out))
    normalize = stage(summary, "normalize")
    # counted in sources (2 kept, 1 rejected); the two files give 7 functions
    assert normalize["in"] == 3 and normalize["out"] == 2 and normalize["rejects_by_reason"] == {"needs_llm": 1}
    assert normalize["counters"]["functions"] == 7 and summary["reconciled"]
    rows = read_rows(out)
    assert rows and all(row["verified"] for row in rows) and len(rows) == summary["samples"]
    entries = {row["prompt"].split("def main_solution", 1)[1].split("return ", 1)[1].split("(", 1)[0] for row in rows}
    # every function with two true examples made it
    assert {"count_vowels", "rotate_letters", "digit_sum", "reduce_fraction", "running_max"} <= entries
    assert "wrong_doc" not in entries
    assert all("derived without an LLM" in row["prompt"] for row in rows)


def test_unified_rows_with_one_pair_and_a_generator_give_samples(prefect_harness, env, monkeypatch):
    rows = []
    for n, (word, times) in enumerate((("ab", 2), ("xyz", 1))):
        rows.append({
            "refcode": f"def main_solution(word, times):\n    return (word * times)[:{10 + n}]\n",
            "problem_description": "Repeat `word` `times` times: what are the first characters?",
            "io_requirements": "Input: `word` (str), `times` (int). Output: str.",
            "ios": [{"input": {"word": word, "times": times}, "output": (word * times)[:10 + n]}],
            "input_generator": "import random\n\ndef input_generator():\n"
                               "    return {'word': random.choice(['ab', 'cd', 'efg']), 'times': random.randint(1, 4)}\n",
        })
    path = env / "rows.jsonl"
    path.write_text("".join(dumps(row) + "\n" for row in rows))
    out = env / "unified.jsonl"
    summary = run(sources=[f"unified:{path}"], out=str(out), revision_rounds=0)
    collect = stage(summary, "collect_io")
    assert collect["rejected"] == 0 and collect["counters"]["functions_kept"] == 2 and collect["counters"]["pairs"] > 4
    assert summary["verified_samples"] > 0 and summary["reconciled"]
    # the minimum of pairs per function is a setting: 11 is more than any function can keep
    monkeypatch.setenv("CODEIO_COLLECT_MIN_PAIRS", "11")
    strict = stage(run(sources=[f"unified:{path}"], revision_rounds=0), "collect_io")
    assert strict["rejects_by_reason"] == {"too_few_pairs": 2}


NORMALIZED = """## Main Function
```python
def main_solution(nums):
    return sum(x for x in nums if x % 2 == 0)
```

## Input Output Description
Input:
  `nums` (list of int): the numbers
Output:
  `return` (int): the sum of the even numbers

## Input Generator
```python
import random

def input_generator():
    return {"nums": [random.randint(-9, 9) for _ in range(random.randint(1, 6))]}
```

## Problem Statement
Given `nums`, what is the sum of its even elements?
"""


def test_with_an_endpoint_statement_and_solution_reach_normalization(prefect_harness, env):
    from codeio.settings import load_settings
    from flows.pipeline import run_pipeline
    from flows.spec import RunSpec
    from llm_server import FakeLLMServer, Reply, last_user_message

    def handler(body, info):
        text = last_user_message(body)
        return Reply(NORMALIZED if "[Code Start]" in text else 'Reasoning... {"output": 0}')

    with FakeLLMServer(handler) as server:
        settings = load_settings(store=str(env / "store"), database_url=f"sqlite:///{env / 'lineage.db'}",
                                 llm_base_url=server.base_url, llm_model="fake-model", dask_workers=0)
        summary = run_pipeline(settings, RunSpec(sources=(f"leetcode:{DATA / 'leetcode'}",), limit=2, teacher="openai",
                                                 revision_rounds=0), progress=False)
        prompts = [last_user_message(body) for body in server.requests]

    normalize_prompts = [p for p in prompts if "[Code Start]" in p]
    assert len(normalize_prompts) == 2
    evens = next(p for p in normalize_prompts if "Sum of Evens" in p)
    # the statement (HTML unescaped, examples included) and the solution, in one code file
    assert "# Given an integer array nums, return the sum of its even elements." in evens
    assert "# Input: nums = [1,2,3,4]" in evens and "def sumEvens(self, nums: List[int]) -> int:" in evens
    assert "<code>" not in evens and "editorial" not in evens
    normalize = stage(summary, "normalize")
    assert normalize["in"] == 2 and normalize["out"] == 2 and normalize["llm"]["requests"] == 2
    assert stage(summary, "collect_io")["counters"]["functions_kept"] == 2


def test_dataset_rows_give_verified_samples_without_an_llm(prefect_harness, env):
    out = env / "rows.jsonl"
    summary = run(sources=[f"rows:{DATA / 'rows' / 'problems.jsonl'}"], out=str(out))
    select = stage(summary, "ingest select")  # rows: sources are read shard by shard by the ingestion flow
    # five rows: four problems, one row of no known layout rejected by name
    assert select["in"] == 5 and select["out"] == 4 and select["rejects_by_reason"] == {"unrecognised_row_layout": 1}
    assert select["counters"]["candidates"] == {"problem": 4}
    normalize = stage(summary, "normalize")
    assert normalize["out"] == 4 and normalize["counters"]["offline_functions"] == 4
    collect = stage(summary, "collect_io")
    assert collect["counters"]["functions_kept"] == 4 and summary["reconciled"]
    rows = read_rows(out)
    assert rows and all(row["verified"] for row in rows) and len(rows) == summary["samples"]
    layouts = {json.loads(row["origin"])["layout"] if isinstance(row["origin"], str) else row["origin"]["layout"]
               for row in rows}
    assert layouts == {"leetcodedataset", "humaneval", "mbpp"}


def test_design_problems_and_custom_nodes_give_samples_without_an_llm(prefect_harness, env):
    out = env / "design.jsonl"
    summary = run(sources=[f"leetcode:{DATA / 'leetcode_design'}"], out=str(out))
    normalize = stage(summary, "normalize")
    assert normalize["in"] == 6 and normalize["rejects_by_reason"] == {"no_offline_pairs:custom_type:Node": 1}
    assert stage(summary, "collect_io")["counters"]["functions_kept"] == 5 and summary["reconciled"]
    rows = read_rows(out)
    assert rows and all(row["verified"] for row in rows)
    prompts = [row["prompt"] for row in rows]
    assert any("def main_solution(operations, arguments):" in p for p in prompts)
    assert any("_to_graph_node" in p for p in prompts)
