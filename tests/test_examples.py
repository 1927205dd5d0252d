"""Pairs a source carries (doctests, LeetCode statements, given pairs + generators),
parsed without running corpus code, then re-validated in the real sandbox."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from codeio.examples.doctests import extract_doctest_functions
from codeio.examples.literals import NotJSON, read_literal
from codeio.records import UNIFIED_FUNCTION, dumps
from codeio.sandbox.sizecheck import size_violation
from codeio.stages.collect_io import CollectConfig, collect_io_shard
from codeio.stages.normalize import NormalizeConfig, normalize_shard

DATA = Path(__file__).resolve().parent / "data"
DOCTESTS = DATA / "doctests"
OFFLINE = NormalizeConfig(teacher="offline", model="")


@pytest.fixture(scope="module")
def executor():
    from codeio.sandbox import SandboxConfig, create_executor

    pool = create_executor(SandboxConfig(workers=2))
    yield pool
    pool.close()


def source_record(path: Path, kind: str = "raw", unified: dict | None = None) -> dict:
    return {"source_id": f"s-{path.name}", "source_name": "dir:test", "kind": kind,
            "origin": dumps({"path": f"data/{path.name}"}), "content": path.read_text(),
            "unified": dumps(unified) if unified is not None else None}


# -- literals ------------------------------------------------------------------------------------
def test_literals_are_json_values_or_refused():
    assert read_literal("(1, (2, 'a'))") == [1, [2, "a"]]
    assert read_literal("[true, null, false]", json_words=True) == [True, None, False]
    assert read_literal('"true"', json_words=True) == "true"  # inside a string: kept
    for text in ("{1, 2}", "b'x'", "1j", "...", "{1: 2}", "1e999", "__import__('os')", "f(1)"):
        with pytest.raises(NotJSON):
            read_literal(text)


# -- doctests ----------------------------------------------------------------------------------
def test_doctest_functions_are_found_by_parsing_only():
    found = extract_doctest_functions((DOCTESTS / "text_tools.py").read_text(), "text_tools.py")
    by_name = {f.name.split(":")[1]: f for f in found.functions}
    assert sorted(by_name) == ["count_vowels", "first_word", "rotate_letters"]
    vowels = by_name["count_vowels"]
    # the module docstring's example counts for the function it calls
    assert [p["input"] for p in vowels.pairs] == [{"text": "Doctests double as data"}, {"text": "banana"}, {"text": ""}]
    assert [p["output"] for p in vowels.pairs] == [7, 3, 0]
    # keyword and positional arguments both land on parameter names
    assert [p["input"] for p in by_name["rotate_letters"].pairs] == [
        {"text": "abc"}, {"text": "xyz", "shift": 3}, {"text": "a-b", "shift": 2}]
    # printed output and raised exceptions are not pairs
    assert found.skipped == {"example_output_not_json": 1, "example_raises": 1}
    # the function is sliced out with what it uses, and called by a main_solution wrapper
    code = vowels.main_code
    assert "VOWELS = frozenset" in code and "def rotate_letters" not in code and "doctest.testmod" not in code
    # the docstring keeps its prose but not the examples: the answers are not in the code shown
    assert '"""Count the vowels of ``text``."""' in code and ">>>" not in code and "banana" not in code
    assert "def main_solution(text):\n    return count_vowels(text)" in code
    wrapper = by_name["rotate_letters"].main_code
    assert "def main_solution(text, shift=1):\n    return rotate_letters(text, shift)" in wrapper
    assert "derived without an LLM" in vowels.io_description and "`text` (str)" in vowels.io_description
    assert vowels.problem_statement.startswith("Count the vowels of ``text``.")
    assert ">>>" not in vowels.problem_statement and "banana" not in vowels.problem_statement


def test_doctest_names_bound_earlier_are_substituted_and_sets_refused():
    found = extract_doctest_functions((DOCTESTS / "number_tools.py").read_text(), "number_tools.py")
    pairs = {f.name.split(":")[1]: f.pairs for f in found.functions}
    assert pairs["digit_sum"][0] == {"input": {"n": 1234}, "output": 10}
    assert pairs["reduce_fraction"][0] == {"input": {"numerator": 6, "denominator": 8}, "output": [3, 4]}
    # "f(x) == <literal>" shown as True is the pair (x, literal)
    assert pairs["running_max"][1] == {"input": {"values": [2, 7]}, "output": [2, 7]}
    assert "unique_count" not in pairs and found.skipped["example_argument_not_json"] == 1
    assert "from math import gcd" in next(f.main_code for f in found.functions if f.name.endswith("reduce_fraction"))


def test_the_slice_keeps_what_fills_a_table_and_not_what_shares_a_local_name():
    source = (
        "TABLE = {}\n"
        "for word in ('a', 'bb'):\n"
        "    TABLE[word] = len(word)\n"
        "word = 'unrelated'\n\n"
        "def size(word):\n"
        '    """>>> size("bb")\n    2\n    >>> size("a")\n    1\n    """\n'
        "    return TABLE[word]\n\n"
        "def word_count(word_count):\n"
        '    """Words.\n\n    >>> word_count("a b")\n    2\n    >>> word_count("c")\n    1\n    """\n'
        "    return len(word_count.split())\n"
    )
    size, count = extract_doctest_functions(source, "x.py").functions
    assert "for word in ('a', 'bb'):" in size.main_code and "word = 'unrelated'" not in size.main_code
    assert '"""' not in size.main_code  # a docstring of examples only goes away
    assert '"""Words."""' in count.main_code and ">>>" not in count.main_code
    # a parameter named like its function: the wrapper calls it through another name
    assert "_entry_word_count = word_count" in count.main_code
    assert "return _entry_word_count(word_count)" in count.main_code


def test_the_slice_keeps_a_global_the_function_only_updates(executor):
    """``count += 1`` under ``global count`` reads the module's count: the slice keeps
    its definition (without it every call raised NameError: name 'count' is not defined)."""
    from codeio.execution import RunRequest

    source = (
        "count = 0\n\n"
        "def splits(text, words):\n"
        '    """>>> splits("ab", ["a", "b", "ab"])\n    True\n    >>> splits("c", ["a"])\n    False\n    """\n'
        "    global count\n"
        "    count += 1\n"
        "    return text in words or any(text[:i] in words and splits(text[i:], words) for i in range(1, len(text)))\n"
    )
    (found,) = extract_doctest_functions(source, "x.py").functions
    assert "count = 0" in found.main_code
    results = executor.run(RunRequest(code=found.main_code, inputs_json=tuple(dumps(p["input"]) for p in found.pairs)))
    assert [json.loads(r.value_json) for r in results] == [True, False]


def test_doctests_that_round_the_result_count_as_calls(executor):
    """``round(area(2.0), 4)`` shows the function's number rounded: the call is the
    pair's input and what it returns is the pair's output, when it matches the shown
    value within the answer tolerance (TheAlgorithms: 34 such examples were passed over
    as example_not_a_call in maths/, graphs/ ...)."""
    from codeio.execution import RunRequest

    source = (
        "import math\n\n"
        "def area(r):\n"
        '    """>>> round(area(2.0), 4)\n    12.5664\n    >>> float(area(1))\n    3.141592653589793\n'
        '    >>> round(area(3.0))\n    28\n    """\n'
        "    return math.pi * r * r\n"
    )
    (found,) = extract_doctest_functions(source, "x.py").functions
    assert [p["input"] for p in found.pairs] == [{"r": 2.0}, {"r": 1}, {"r": 3.0}]
    functions = normalize_shard([{"source_id": "s-area", "source_name": "dir:test", "kind": "raw",
                                  "origin": dumps({"path": "x.py"}), "content": source, "unified": None}],
                                OFFLINE, llm=None).records
    out = collect_io_shard(functions, GIVEN_ONLY, executor)
    # 28 for 28.27... is off by more than the tolerance: that pair is dropped, not kept wrong
    assert [json.loads(p["output"]) for p in out.records] == [math.pi * 4, math.pi]
    assert out.stats["pairs_dropped"] == {"pair_not_reproduced": 1}


def test_doctests_that_wrap_the_result_in_list_tuple_or_sorted_give_that_shape(executor):
    """``list(evens(5))`` shows what a generator yields and ``sorted(letters(w))`` a set in
    order: main_solution returns the same call around the function, so its output is the
    JSON list shown (TheAlgorithms: 54 such examples were passed over as example_not_a_call).
    A function keeps its most common shape; a sorted() with a key, and a file's own function
    named like a wrapper, are not wrappers."""
    from codeio.execution import RunRequest

    source = (
        "def evens(n):\n"
        '    """>>> list(evens(5))\n    [0, 2, 4]\n    >>> list(evens(0))\n    []\n    >>> evens(1)\n    0\n    """\n'
        "    yield from range(0, n, 2)\n\n"
        "def letters(word):\n"
        "    \"\"\">>> sorted(letters('banana'))\n    ['a', 'b', 'n']\n    >>> sorted(letters('ba'))\n    ['a', 'b']\n"
        "    >>> tuple(letters('aa')) == ('a',)\n    True\n"
        "    >>> sorted(letters('abc'), key=str.upper)\n    ['a', 'b', 'c']\n    \"\"\"\n"
        "    return set(word)\n"
    )
    found = extract_doctest_functions(source, "x.py")
    by_name = {f.name.split(":")[-1]: f for f in found.functions}
    evens, letters = by_name["evens"], by_name["letters"]
    assert "return list(evens(n))" in evens.main_code and "what is `list(evens(...))`" in evens.problem_statement
    assert [p["input"] for p in evens.pairs] == [{"n": 5}, {"n": 0}]  # evens(1) shows another shape
    assert "return sorted(letters(word))" in letters.main_code
    assert [p["input"] for p in letters.pairs] == [{"word": "banana"}, {"word": "ba"}]
    assert found.skipped["example_other_wrapper"] == 2  # evens(1); tuple(letters('aa')) beside sorted()
    assert found.skipped["example_not_a_call"] == 1  # sorted(..., key=...)
    results = executor.run(RunRequest(code=evens.main_code, inputs_json=tuple(dumps(p["input"]) for p in evens.pairs)))
    assert [json.loads(r.value_json) for r in results] == [p["output"] for p in evens.pairs] == [[0, 2, 4], []]
    results = executor.run(RunRequest(code=letters.main_code,
                                      inputs_json=tuple(dumps(p["input"]) for p in letters.pairs)))
    assert [json.loads(r.value_json) for r in results] == [["a", "b", "n"], ["a", "b"]]
    # the file's own tuple(): a call of it (with an argument that is not a literal), not a wrapper of evens
    shadowing = source.split("def letters")[0] + (
        "def tuple(items):\n    \"\"\">>> tuple(evens(3))\n    2\n    \"\"\"\n    return len(items)\n")
    found = extract_doctest_functions(shadowing, "y.py")
    assert [f.name for f in found.functions] == ["y.py:evens"]
    assert found.skipped["example_argument_not_json"] == 1


def test_a_file_that_does_not_parse_gives_nothing():
    found = extract_doctest_functions("def broken(:\n    '''>>> broken(1)\n    1'''\n", "x.py")
    assert not found.functions and found.skipped == {"syntax_error": 1}


def test_normalize_without_llm_turns_doctest_functions_into_unified_functions():
    sources = [source_record(DOCTESTS / name) for name in ("text_tools.py", "number_tools.py", "no_doctests.py")]
    out = normalize_shard(sources, OFFLINE, llm=None)
    UNIFIED_FUNCTION.check(out.records)
    assert len(out.records) == 7 and {r["teacher"] for r in out.records} == {"source:doctest"}
    assert all(r["generator_code"] is None and json.loads(r["given_pairs"]) for r in out.records)
    assert len({r["function_id"] for r in out.records}) == 7
    # the file without doctests still needs an LLM, and says so
    assert [r["reason"] for r in out.rejects] == ["needs_llm"] and "CODEIO_LLM_BASE_URL" in out.rejects[0]["detail"]
    assert out.stats["sources_kept"] == 2 and out.stats["offline_functions"] == 7
    assert out.stats["offline_skipped"]["example_raises"] == 1
    # each function's origin names it: a file gives several, and the samples must say which
    # (it held only the file's path)
    named = sorted(json.loads(r["origin"])["function"] for r in out.records if "number_tools" in r["origin"])
    assert named == sorted(f"data/number_tools.py:{name}" for name in ("digit_sum", "reduce_fraction", "running_max",
                                                                       "wrong_doc"))
    assert all(json.loads(r["origin"])["path"].startswith("data/") for r in out.records)


GIVEN_ONLY = CollectConfig(type_driven_pairs=False)


def test_doctest_pairs_are_revalidated_in_the_sandbox(executor):
    sources = [source_record(DOCTESTS / name) for name in ("text_tools.py", "number_tools.py")]
    functions = normalize_shard(sources, OFFLINE, llm=None).records
    out = collect_io_shard(functions, GIVEN_ONLY, executor)
    name_of = {f["function_id"]: f["main_code"].split("return ")[-1].split("(")[0] for f in functions}
    kept: dict[str, list] = {}
    for pair in out.records:
        kept.setdefault(name_of[pair["function_id"]], []).append(json.loads(pair["output"]))
    # functions with two or more true examples are kept; the tuple result compares as a list
    assert kept["count_vowels"] == [3, 0]  # the module example (7) does not reproduce
    assert kept["rotate_letters"] == ["bcd", "abc", "c-d"]
    assert kept["reduce_fraction"] == [[3, 4], [2, 1]]
    assert kept["digit_sum"] == [10, 16]
    assert kept["running_max"] == [[3, 3, 4, 4, 5], [2, 7]]
    rejected = {name_of[r["record_id"]]: r["reason"] for r in out.rejects}
    assert rejected["wrong_doc"] == "not_reproduced"
    assert out.stats["pairs_dropped"]["pair_not_reproduced"] >= 3


# -- unified rows: given pairs + input generator ----------------------------------------------------
UNIFIED_MAIN = "def main_solution(word, times):\n    return (word * times)[:12]\n"
UNIFIED_GENERATOR = (
    "import random\n\n"
    "def input_generator():\n"
    "    return {'word': random.choice(['ab', 'xyz', 'q', 'hello']), 'times': random.randint(0, 5)}\n"
)


def unified_function(pairs: list, generator: str | None = UNIFIED_GENERATOR, main: str = UNIFIED_MAIN) -> dict:
    return {"function_id": "u1", "source_id": "s-u1", "main_code": main, "io_description": "word, times",
            "generator_code": generator, "problem_statement": "What is the repeated word?",
            "given_pairs": dumps(pairs), "teacher": "source", "llm_call_id": None, "origin": dumps({})}


def test_one_given_pair_and_an_input_generator_give_more_pairs(executor):
    given = [{"input": {"word": "ab", "times": 2}, "output": "abab"}]
    out = collect_io_shard([unified_function(given)], CollectConfig(), executor)
    assert not out.rejects
    inputs = [json.loads(p["input"]) for p in out.records]
    assert inputs[0] == given[0]["input"]  # the given pair first
    assert 2 <= len(inputs) <= 10 and len({json.dumps(i, sort_keys=True) for i in inputs}) == len(inputs)
    for pair in out.records:
        value = json.loads(pair["input"])
        assert json.loads(pair["output"]) == (value["word"] * value["times"])[:12]
    # without the generator (and without type-driven inputs) the single pair is too few
    alone = collect_io_shard([unified_function(given, generator=None)], GIVEN_ONLY, executor)
    assert [r["reason"] for r in alone.rejects] == ["too_few_pairs"]


def test_given_pairs_that_all_fail_are_not_topped_up(executor):
    wrong = [{"input": {"word": "ab", "times": 2}, "output": "nope"}]
    out = collect_io_shard([unified_function(wrong)], CollectConfig(), executor)
    assert [r["reason"] for r in out.rejects] == ["not_reproduced"] and not out.records
    # no given pairs at all: the generator alone
    empty = collect_io_shard([unified_function([])], CollectConfig(), executor)
    assert not empty.rejects and len(empty.records) >= 2


# -- LeetCode-style problem folders ----------------------------------------------------------------
LEETCODE = DATA / "leetcode"


def problem_records() -> tuple[list[dict], list[dict]]:
    from codeio.sources import parse_source_specs, read_sources

    outcomes = list(read_sources(parse_source_specs([f"leetcode:{LEETCODE}"])))
    return [o.record for o in outcomes if o.record], [o.rejected for o in outcomes if o.rejected]


def test_leetcode_folders_are_read_as_problems_with_their_statement():
    records, rejects = problem_records()
    assert len(records) == 7 and {r["kind"] for r in records} == {"problem"}
    assert [r["reason"] for r in rejects] == ["no_python_solution"]
    first = records[0]
    payload = json.loads(first["unified"])
    assert payload["title"] == "1. Sum of Evens" and payload["difficulty"] == "Easy"
    assert "editorial" not in payload["statement_html"]  # only the description travels
    assert json.loads(first["origin"])["path"].endswith("0001.Sum of Evens/Solution.py")


def test_a_premium_problem_lock_is_not_part_of_its_title():
    from codeio.examples.leetcode import read_statement

    readme = ("# [244. Shortest Word Distance II \U0001F512](https://leetcode.com/problems/shortest-word-distance-ii)\n\n"
              "## Description\n\n<!-- description:start -->\n<p>Design it.</p>\n<!-- description:end -->\n")
    payload = read_statement(readme)
    assert payload["title"] == "244. Shortest Word Distance II" and payload["premium"] is True
    assert read_statement(readme.replace(" \U0001F512", ""))["premium"] is False


def test_statement_examples_are_unescaped_literals_and_split_outside_strings():
    from codeio.examples.leetcode import split_arguments, statement_examples, statement_text

    records, _ = problem_records()
    vowels = json.loads(next(r for r in records if "Only Vowels" in r["unified"])["unified"])
    examples, skipped = statement_examples(vowels)
    assert examples == [({"s": "aeiou"}, True), ({"s": "a,b"}, False), ({"s": ""}, True)] and not skipped
    assert split_arguments('a = [1, [2, 3]], s = "x, y = 1", k = -2') == {"a": "[1, [2, 3]]", "s": '"x, y = 1"', "k": "-2"}
    text = statement_text(vowels, with_examples=False)
    assert "'a'" in text and "&#39;" not in text and "Example" not in text and "Constraints:" in text


def test_offline_problems_become_unified_functions_with_node_helpers():
    records, _ = problem_records()
    out = normalize_shard(records, OFFLINE, llm=None)
    UNIFIED_FUNCTION.check(out.records)
    by_title = {json.loads(f["origin"])["problem"]: f for f in out.records}
    assert len(out.records) == 6 and {f["teacher"] for f in out.records} == {"source:leetcode"}
    assert [r["reason"] for r in out.rejects] == ["no_offline_pairs:example_output_not_json"]
    chain = by_title["2. Reverse Chain"]
    assert "class ListNode" in chain["main_code"] and "class TreeNode" not in chain["main_code"]
    assert "return _from_list_node(Solution().reverseChain(_to_list_node(head)))" in chain["main_code"]
    assert "linked list" in chain["io_description"] and "derived without an LLM" in chain["io_description"]
    # the examples are the pairs: the statement keeps its constraints but not its examples
    assert "Constraints:" in chain["problem_statement"] and "[3,2,1]" not in chain["problem_statement"]
    assert "from collections import Counter" in by_title["7. Most Common Letter"]["main_code"]
    assert "from typing import List" in by_title["1. Sum of Evens"]["main_code"]
    in_place = by_title["5. Zeros Last"]["main_code"]
    assert "    Solution().zerosLast(nums)\n    return nums" in in_place


def test_problem_pairs_are_revalidated_in_the_sandbox(executor):
    records, _ = problem_records()
    functions = normalize_shard(records, OFFLINE, llm=None).records
    out = collect_io_shard(functions, GIVEN_ONLY, executor)
    title = {f["function_id"]: json.loads(f["origin"])["problem"] for f in functions}
    kept: dict[str, list] = {}
    for pair in out.records:
        kept.setdefault(title[pair["function_id"]], []).append(json.loads(pair["output"]))
    assert kept["2. Reverse Chain"] == [[3, 2, 1], [7], []]
    assert kept["3. Tree Depth"] == [3, 2, 0]
    assert kept["5. Zeros Last"] == [[1, 3, 0, 0], [2, 0]]
    assert kept["4. Only Vowels"] == [True, False, True]
    assert not out.stats["pairs_dropped"]


# -- type-driven inputs --------------------------------------------------------------------------------
def test_shapes_are_read_from_the_example_values():
    from codeio.examples.typegen import infer

    nums = infer([[1, 3, 8], [2, 2], [0, 5, 9, 9]])
    assert (nums.kind, nums.min_len, nums.max_len, nums.ordered, nums.item.kind) == ("list", 2, 4, True, "int")
    assert (nums.item.low, nums.item.high) == (0, 9) and not nums.distinct
    text = infer(["(()", "[]"])
    assert text.kind == "str" and text.alphabet == "()[]" and (text.min_len, text.max_len) == (2, 3)
    tree = infer([[1, None, 2], [4]])
    assert tree.item.kind == "int" and 0 < tree.item.null_share < 1
    assert infer([1, 2.5]).kind == "float" and infer([True, False]).kind == "bool"
    assert infer([{"a": 1}, {"a": 4}]).values["a"].high == 4 and infer([1, "x"]).kind == "choice"


def test_candidates_are_seeded_new_small_and_keep_the_example_shapes():
    from codeio.answers import canonical_json
    from codeio.examples.typegen import candidate_inputs
    from codeio.sandbox.sizecheck import size_violation

    examples = [{"nums": [1, 4, 6], "k": 2}, {"nums": [0, 3, 3, 8, 9], "k": 1}]
    first = candidate_inputs(["nums", "k"], examples, count=12, seed=7)
    assert first == candidate_inputs(["nums", "k"], examples, count=12, seed=7)  # seeded
    assert first != candidate_inputs(["nums", "k"], examples, count=12, seed=8)
    assert len(first) == 12 and not any(c in examples for c in first)
    assert len({json.dumps(c, sort_keys=True) for c in first}) == 12
    for candidate in first:
        assert set(candidate) == {"nums", "k"} and size_violation(candidate) is None
        assert candidate["nums"] == sorted(candidate["nums"])  # every example was sorted
        assert all(isinstance(x, int) and x >= 0 for x in candidate["nums"]) and candidate["k"] >= 0
    sizes = [len(canonical_json(c)) for c in first]  # the measure candidate_inputs sorts by
    assert sizes == sorted(sizes)  # smallest first: a timeout costs the fewest
    assert candidate_inputs(["nums"], [], count=5, seed=1) == []


def test_candidates_are_never_shorter_than_every_example():
    """Drawn values keep the examples' shortest length, and so must changed ones: a
    change that dropped the one item of [7] gave [], which the smallest-first order then
    put right after the examples (LeetCode: {"nums": []} for "1 <= nums.length",
    {"currentState": ""}, {"costs": []})."""
    from codeio.examples.typegen import candidate_inputs

    examples = [{"nums": [7], "s": "ab"}, {"nums": [3, 1, 2], "s": "b"}]
    found = candidate_inputs(["nums", "s"], examples, count=40, seed=3)
    assert len(found) == 40
    assert all(len(c["nums"]) >= 1 and len(c["s"]) >= 1 for c in found)
    # examples that hold an empty value allow it
    allowed = candidate_inputs(["nums", "k"], [{"nums": [], "k": 1}, {"nums": [1, 2], "k": 3}], count=20, seed=3)
    assert any(c["nums"] == [] for c in allowed)


def _in_order(level_order):
    """The values of a LeetCode level-order tree in order (the judge's own construction)."""
    nodes = [None if v is None else {"val": v, "kids": []} for v in level_order]
    root, queue, i = nodes[0] if nodes else None, [nodes[0]] if nodes and nodes[0] else [], 1
    while queue and i < len(nodes):
        node = queue.pop(0)
        for _ in range(2):
            child = nodes[i] if i < len(nodes) else None
            node["kids"].append(child)
            if child is not None:
                queue.append(child)
            i += 1
    def walk(node):
        if node is None:
            return []
        kids = node["kids"] + [None, None]
        return walk(kids[0]) + [node["val"]] + walk(kids[1])
    return walk(root)


def test_candidates_keep_a_binary_search_tree_when_every_example_is_one():
    """"Kth smallest element in a BST" given [3,1,4,null,2]: a drawn level order that is no
    BST gave the in-order k-th value, an answer that contradicts the statement shown with
    it. When every example tree is a BST, every candidate is one; a plain tree stays free."""
    from codeio.examples.typegen import candidate_inputs

    examples = [{"root": [3, 1, 4, None, 2], "k": 1}, {"root": [5, 3, 6, 2, 4, None, None, 1], "k": 3}]
    found = candidate_inputs(["root", "k"], examples, count=40, seed=5)
    assert len(found) == 40
    for candidate in found:
        values = _in_order(candidate["root"])
        assert values == sorted(set(values)), candidate  # strictly increasing in order
        assert candidate["root"][-1] is not None and len(values) >= 1
    assert len({len(_in_order(c["root"])) for c in found}) > 2  # sizes vary, not only the examples'
    assert candidate_inputs(["root", "k"], examples, count=40, seed=5) == found  # seeded

    plain = [{"root": [1, 2, 3, None, 5]}, {"root": [4, 9, 0, 5, 1]}]  # trees that are no BST
    free = candidate_inputs(["root"], plain, count=40, seed=5)
    assert any(_in_order(c["root"]) != sorted(set(_in_order(c["root"]))) for c in free)
    tiny = [{"root": [2, 1]}, {"root": [1]}]  # fewer than 3 nodes say nothing about the order
    assert any(_in_order(c["root"]) != sorted(set(_in_order(c["root"])))
               for c in candidate_inputs(["root"], tiny, count=40, seed=5) if len(c["root"]) > 2)


def test_a_level_order_tree_with_distinct_values_keeps_them_distinct():
    """"All Node.val are unique" (LCA of a binary tree): the examples' trees hold several
    nulls, which made "distinct items" false, and candidates got repeated values."""
    from codeio.examples.typegen import candidate_inputs

    examples = [{"root": [3, 5, 1, 6, 2, 0, 8, None, None, 7, 4]}, {"root": [1, 2, None, 4]}]
    found = candidate_inputs(["root"], examples, count=40, seed=4)
    assert len(found) == 40 and any(None in c["root"] for c in found)
    for candidate in found:
        values = [v for v in candidate["root"] if v is not None]
        assert len(values) == len(set(values)), candidate
    repeated = [{"root": [1, 1, None, 2]}, {"root": [3, None, 3]}]  # trees that repeat values may still
    assert any(len({v for v in c["root"] if v is not None}) < sum(v is not None for v in c["root"])
               for c in candidate_inputs(["root"], repeated, count=40, seed=4))


def test_candidates_keep_the_order_every_example_keeps_between_arguments():
    """"1 <= k <= nums.length", "lo <= hi": a changed nums one item shorter, or a k drawn
    afresh, broke the constraint the statement states (and the examples keep); such a
    candidate is no input of the problem. An order only some examples keep is no rule."""
    from codeio.examples.typegen import candidate_inputs, relations

    examples = [{"nums": [1, 2, 3], "k": 3, "lo": 0, "hi": 2}, {"nums": [4, 5], "k": 1, "lo": 1, "hi": 1}]
    assert set(relations(["nums", "k", "lo", "hi"], examples)) >= {("k", "nums", "len<="), ("lo", "hi", "<=")}
    found = candidate_inputs(["nums", "k", "lo", "hi"], examples, count=40, seed=2)
    assert len(found) == 40
    assert all(c["k"] <= len(c["nums"]) and c["lo"] <= c["hi"] for c in found)
    assert any(c["k"] == len(c["nums"]) for c in found)  # "<=" is not "<"

    unordered = [{"a": 1, "b": 5}, {"a": 7, "b": 2}]
    assert relations(["a", "b"], unordered) == []
    assert relations(["a", "b"], unordered[:1]) == []  # one example says nothing
    drawn = candidate_inputs(["a", "b"], unordered, count=40, seed=2)
    assert any(c["a"] > c["b"] for c in drawn) and any(c["a"] < c["b"] for c in drawn)


def test_functions_without_a_generator_get_type_driven_pairs(executor):
    sources = [source_record(DOCTESTS / name) for name in ("text_tools.py", "number_tools.py")]
    functions = normalize_shard(sources, OFFLINE, llm=None).records
    out = collect_io_shard(functions, CollectConfig(), executor)
    name_of = {f["function_id"]: f["main_code"].split("return ")[-1].split("(")[0] for f in functions}
    pairs: dict[str, list] = {}
    for pair in out.records:
        pairs.setdefault(name_of[pair["function_id"]], []).append((json.loads(pair["input"]), json.loads(pair["output"])))
    # the given pairs come first, the drawn ones are what the code returns for them
    assert [o for _, o in pairs["count_vowels"][:2]] == [3, 0] and len(pairs["count_vowels"]) == 10
    for value, output in pairs["count_vowels"]:
        assert output == sum(c in "aeiouAEIOU" for c in value["text"])
    for value, output in pairs["digit_sum"]:
        assert output == sum(int(d) for d in str(abs(value["n"])))
    # one true example is now enough: the drawn inputs give the second pair
    assert len(pairs["first_word"]) >= 2 and len(pairs["running_max"]) >= 2
    for value, output in pairs["first_word"]:
        assert output == value["text"].split()[0]
    rejected = {name_of[r["record_id"]]: r["reason"] for r in out.rejects}
    assert rejected == {"wrong_doc": "not_reproduced"}  # no example reproduced: nothing drawn for it


def test_the_ingestion_flow_reads_leetcode_folders_as_the_pipeline_does():
    from codeio.ingest.readers import plan_units, read_unit
    from codeio.sources import MAX_SOURCE_BYTES_DEFAULT, parse_source_specs

    units = plan_units(parse_source_specs([f"leetcode:{LEETCODE}"]), open_fs=None, rows_per_unit=100, files_per_unit=100)
    assert len(units) == 1 and units[0].fmt == "leetcode"
    outcomes = list(read_unit(units[0], open_file=None, max_bytes=MAX_SOURCE_BYTES_DEFAULT))
    records, rejects = problem_records()
    assert [o.record for o in outcomes if o.record] == records
    assert [o.rejected for o in outcomes if o.rejected] == rejects


# -- design problems and the judge's custom node types ---------------------------------------------------
LEETCODE_DESIGN = DATA / "leetcode_design"


def leetcode_functions(folder: Path) -> tuple[dict[str, dict], list[dict]]:
    """Normalize a LeetCode-layout folder offline: unified functions by problem, and the rejects."""
    from codeio.sources import parse_source_specs, read_sources

    records = [o.record for o in read_sources(parse_source_specs([f"leetcode:{folder}"]))]
    out = normalize_shard(records, OFFLINE, llm=None)
    UNIFIED_FUNCTION.check(out.records)
    return {json.loads(f["origin"])["problem"]: f for f in out.records}, out.rejects


def design_functions() -> tuple[dict[str, dict], list[dict]]:
    return leetcode_functions(LEETCODE_DESIGN)


def test_design_examples_are_call_sequences_cut_to_the_size_check():
    from codeio.examples.design import call_sequences
    from codeio.sandbox.sizecheck import size_violation

    by_title, rejects = design_functions()
    tally = by_title["101. Tally Counter"]
    assert "def main_solution(operations, arguments):" in tally["main_code"]
    assert "instance = TallyCounter(*values)" in tally["main_code"]
    pairs = json.loads(tally["given_pairs"])
    # six calls are over the 1 KiB size check: the longest prefixes that fit are kept
    assert pairs[0] == {"input": {"operations": ["TallyCounter", "add", "total"], "arguments": [[5], [3], []]},
                        "output": [None, None, 8]}
    assert all(size_violation(p["input"]) is None for p in pairs) and len(pairs) == 4
    assert "def input_generator():" in tally["generator_code"] and '"reset"' in tally["generator_code"]
    assert "add, reset, total" in tally["io_description"]
    assert "Explanation" not in tally["problem_statement"] and "At most" in tally["problem_statement"]
    # "Input" with and without a colon; a malformed one is counted, not guessed
    _, whole, skipped = call_sequences('Input\n["A","f"]\n[[],[1]]\nOutput\n[null,2]\nInput: ["A","f"] [[]\nOutput [null]')
    assert whole == [[["A", "f"], [[], [1]]]] and skipped == ["design_example_malformed"]
    # a Node the judge defines with prev/child pointers has no standard serialization here
    assert [r["reason"] for r in rejects] == ["no_offline_pairs:custom_type:Node"]


def test_custom_nodes_are_converted_after_the_judge_definition():
    by_title, _ = design_functions()
    ring = by_title["102. Clone Ring"]["main_code"]
    assert "self.neighbors = neighbors" in ring and "return _from_graph_node(Solution().cloneRing(_to_graph_node(node)))" in ring
    assert "_from_random_list_node(Solution().copyChain(_to_random_list_node(head)))" in by_title["103. Copy Chain"]["main_code"]
    assert "return Solution().naryDepth(_to_nary_node(root))" in by_title["104. Nary Depth"]["main_code"]
    links = by_title["105. Level Links"]
    assert json.loads(links["given_pairs"])[0]["output"] == [1, "#", 2, 3, "#", 4, 5, 7, "#"]
    assert "adjacency list" in by_title["102. Clone Ring"]["io_description"]


def test_design_and_node_pairs_reproduce_and_design_sequences_are_generated(executor):
    by_title, _ = design_functions()
    title = {f["function_id"]: name for name, f in by_title.items()}
    out = collect_io_shard(list(by_title.values()), GIVEN_ONLY, executor)
    kept: dict[str, list] = {}
    for pair in out.records:
        kept.setdefault(title[pair["function_id"]], []).append(json.loads(pair["output"]))
    assert kept["101. Tally Counter"][0] == [None, None, 8]
    assert kept["102. Clone Ring"] == [[[2, 3], [1, 3], [1, 2]], [[2], [1]]]
    assert kept["103. Copy Chain"] == [[[7, None], [13, 0], [11, 1]], [[1, 1], [2, 1]]]
    assert kept["104. Nary Depth"] == [3, 2, 0]
    assert kept["105. Level Links"][0] == [1, "#", 2, 3, "#", 4, 5, 7, "#"]
    assert not out.rejects and {name: len(outputs) for name, outputs in kept.items() if name != "101. Tally Counter"} \
        == {"102. Clone Ring": 2, "103. Copy Chain": 2, "104. Nary Depth": 3, "105. Level Links": 2}
    # the design problem's generator tops its four pairs up with new call sequences (long ones are
    # dropped by the size check like any pair); each result is what a counter gives
    tally = [pair for pair in out.records if title[pair["function_id"]] == "101. Tally Counter"]
    assert len(tally) == CollectConfig().max_pairs
    assert set(out.stats["pairs_dropped"]) <= {"pair_input_too_large", "pair_duplicate"}
    for pair in tally:
        call = json.loads(pair["input"])
        (start,), count, expected = call["arguments"][0], None, [None]
        count = start
        for name, values in zip(call["operations"][1:], call["arguments"][1:]):
            if name == "add":
                count += values[0]
            elif name == "reset":
                count = start
            expected.append(count if name == "total" else None)
        assert json.loads(pair["output"]) == expected


# -- more judge harnesses: nodes given by value, codecs, judge packages --------------------------------
LEETCODE_MORE = DATA / "leetcode_more"


def more_functions() -> tuple[dict[str, dict], list[dict]]:
    return leetcode_functions(LEETCODE_MORE)


def test_tree_nodes_given_by_value_are_found_in_the_tree_and_returned_by_value(executor):
    """``root = [4,2,6,1,3,5,7], p = 1, q = 3`` / ``Output: 2`` for a method taking and
    returning TreeNodes: p and q are the nodes of root with those values, the output
    is the returned node's value (was: every pair raised TypeError, 'int' object is
    not subscriptable, building a tree from 1)."""
    by_title, _ = more_functions()
    ancestor = by_title["201. Common Ancestor"]
    assert "    root = _to_tree_node(root)\n    return _tree_node_value(Solution().commonAncestor(" \
        "root, _find_tree_node(root, p), _find_tree_node(root, q)))" in ancestor["main_code"]
    assert "`p` (int): the value of a node of `root`" in ancestor["io_description"]
    out = collect_io_shard([ancestor], GIVEN_ONLY, executor)
    assert [json.loads(p["output"]) for p in out.records] == [2, 4, 6] and not out.rejects


def test_sorted_containers_are_imported_as_the_judge_does(executor):
    """LeetCode's judge pre-imports sortedcontainers (220. Contains Duplicate III uses
    SortedSet unimported: every pair raised NameError)."""
    by_title, _ = more_functions()
    smaller = by_title["202. Smaller Before"]
    assert "from sortedcontainers import SortedList" in smaller["main_code"]
    out = collect_io_shard([smaller], GIVEN_ONLY, executor)
    assert [json.loads(p["output"]) for p in out.records] == [[0, 0, 1, 3], [0, 0]] and not out.rejects


def test_codecs_are_wrapped_as_the_round_trip_their_harness_shows(executor):
    """A codec problem has no ``class Solution``: the solution file's closing comment
    shows the judge's round trip (one instance, or a serializer and a deserializer),
    which main_solution runs; old-style docstring types (":type root: TreeNode") say
    what crosses the boundary. (Serialize and Deserialize Binary Tree, Encode and
    Decode Strings were rejected as no_solution_class.)"""
    by_title, _ = more_functions()
    words, tree = by_title["203. Pack Words"], by_title["204. Tree Text"]
    assert "def main_solution(items):\n    first = Codec()\n    return first.unpack(first.pack(items))" \
        in words["main_code"]
    assert "(`words` in the statement)" in words["io_description"]
    assert "return _from_tree_node(Codec().deserialize(first.serialize(_to_tree_node(root))))" in tree["main_code"]
    assert "Codec.serialize, then Codec.deserialize" in tree["io_description"]
    out = collect_io_shard([words, tree], GIVEN_ONLY, executor)
    outputs = {(p["function_id"], p["input"]): json.loads(p["output"]) for p in out.records}
    assert list(outputs.values()) == [["to", "be", ""], ["a:b"], [1, 2, 3, None, 4], []] and not out.rejects


def test_design_examples_over_the_size_check_vet_the_generator_that_draws_small_inputs(executor):
    """Shortest Word Distance II, Flatten 2D Vector, Unique Word Abbreviation: even the
    constructor and one call are over 1 KiB, so no example can be a pair (METHOD.md's
    size check) and the functions were rejected as no_valid_pairs. The examples still
    run: one that reproduces vouches for the wrapping, and the generator, which cuts the
    constructor's list to a part of it, draws small inputs. One that does not
    reproduce vouches for nothing."""
    by_title, _ = more_functions()
    board = by_title["205. Word Board"]
    out = collect_io_shard([board], CollectConfig(), executor)
    assert not out.rejects and len(out.records) >= CollectConfig().min_pairs
    assert out.stats["pairs_dropped"]["pair_input_too_large"] >= 1
    for pair in out.records:
        call, output = json.loads(pair["input"]), json.loads(pair["output"])
        assert size_violation(call) is None and pair["given_output"] is None
        words = set(call["arguments"][0][0])
        assert output == [None] + [values[0] in words for values in call["arguments"][1:]]
    wrong = dict(board, given_pairs=dumps([dict(p, output=[None, False, False]) for p in json.loads(board["given_pairs"])]))
    refused = collect_io_shard([wrong], CollectConfig(), executor)
    assert not refused.records and [r["reason"] for r in refused.rejects] == ["no_valid_pairs"]


# -- dataset rows ---------------------------------------------------------------------------------------
ROWS = DATA / "rows" / "problems.jsonl"


def row_outcomes() -> list:
    import fsspec

    from codeio.ingest.readers import plan_units, read_unit
    from codeio.sources import MAX_SOURCE_BYTES_DEFAULT, parse_source_specs
    from tasks.ingest_shards import opener

    units = plan_units(parse_source_specs([f"rows:{ROWS}"]), open_fs=lambda url: fsspec.core.url_to_fs(url),
                       rows_per_unit=100, files_per_unit=100)
    assert len(units) == 1 and units[0].spec_kind == "rows"
    return list(read_unit(units[0], open_file=opener({}), max_bytes=MAX_SOURCE_BYTES_DEFAULT))


def test_rows_are_read_one_problem_each_and_unknown_layouts_are_rejected_by_name():
    outcomes = row_outcomes()
    records = [o.record for o in outcomes if o.record]
    assert len(outcomes) == 5 and len(records) == 4 and {r["kind"] for r in records} == {"problem"}
    assert [json.loads(r["unified"])["layout"] for r in records] == ["leetcodedataset", "leetcodedataset", "humaneval", "mbpp"]
    (rejected,) = [o.rejected for o in outcomes if o.rejected]
    assert rejected["reason"] == "unrecognised_row_layout" and "['body', 'title']" in rejected["detail"]
    origin = json.loads(records[0]["origin"])
    assert origin["problem"] == "pair-sum-indices" and origin["row"] == 1 and origin["layout"] == "leetcodedataset"


def test_row_statements_travel_with_their_code_into_normalization():
    from codeio.examples.offline import normalization_text

    records = [o.record for o in row_outcomes() if o.record]
    text = normalization_text(records[0])
    assert text.startswith("# Problem statement (pair-sum-indices):\n# Given an integer array nums")
    assert "# Input: nums = [2,7,11,15], target = 9" in text and "def pairSum(self" in text
    assert "# Write a function to return the elements shared" in normalization_text(records[3])
    assert normalization_text(records[2]) == records[2]["content"]  # HumanEval: the statement is the docstring


def test_row_examples_and_asserts_become_pairs_that_reproduce(executor):
    records = [o.record for o in row_outcomes() if o.record]
    out = normalize_shard(records, OFFLINE, llm=None)
    assert len(out.records) == 4 and not out.rejects
    assert out.stats["offline_skipped"] == {"example_output_not_json": 1, "assert_not_a_call_equality": 3}
    assert [f["teacher"] for f in out.records] == ["source:leetcode", "source:leetcode", "source:humaneval", "source:mbpp"]
    humaneval = out.records[2]
    assert "def main_solution(text):\n    return count_upper(text)" in humaneval["main_code"]
    assert ">>>" not in humaneval["main_code"] and "Count the upper-case letters" in humaneval["problem_statement"]
    collected = collect_io_shard(out.records, GIVEN_ONLY, executor)
    outputs: dict[int, list] = {}
    index = {f["function_id"]: n for n, f in enumerate(out.records)}
    for pair in collected.records:
        outputs.setdefault(index[pair["function_id"]], []).append(json.loads(pair["output"]))
    assert outputs == {0: [[0, 1], [1, 2], [0, 1]], 1: [[1, 1, 2, 3, 4, 4], [0]], 2: [2, 0, 3], 3: [[4, 5], []]}
    assert not collected.rejects


def test_nested_integers_cross_the_boundary_as_nested_lists(executor):
    """Nested List Weight Sum / Mini Parser take or return the judge's NestedInteger
    (was: rejected as custom_type:NestedInteger): the class is supplied, a nested list
    becomes NestedIntegers on the way in and a returned one becomes a nested list."""
    by_title, rejects = leetcode_functions(DATA / "leetcode_nested")
    assert not rejects and set(by_title) == {"301. Depth Weighted Total", "302. Read Nested"}
    total, reader = by_title["301. Depth Weighted Total"], by_title["302. Read Nested"]
    assert "class NestedInteger" in total["main_code"] and "class TreeNode" not in total["main_code"]
    assert "Solution().depthTotal([_to_nested_integer(v) for v in items])" in total["main_code"]
    assert "return _from_nested_integer(Solution().readNested(s))" in reader["main_code"]
    assert "nested integer" in total["io_description"]
    out = collect_io_shard([total, reader], GIVEN_ONLY, executor)
    assert not out.rejects
    assert sorted(json.dumps(json.loads(p["output"])) for p in out.records) == ["13", "19", "42", "[7, [8, [9]]]"]
