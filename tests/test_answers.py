"""Answer extraction and the verification comparison rule (METHOD.md 7)."""

from __future__ import annotations

import json
import math

import pytest

from codeio.answers import (
    REASON_MISSING_KEY,
    REASON_NO_JSON,
    REASON_NOT_A_DICT,
    extract_answer,
    find_json_objects,
    numbers_close,
    parse_lenient,
    values_match,
)

# ---------------------------------------------------------------------------
# extraction: output task


def test_plain_object_at_the_end():
    got = extract_answer('Reasoning... so the answer is\n{"output": 38}', "output")
    assert got.ok and got.value == 38 and got.reason is None and got.origin == "json"


def test_last_object_wins():
    text = 'First guess {"output": 1}. On second thought {"output": 2}.'
    assert extract_answer(text, "output").value == 2


def test_last_object_with_the_key_wins_over_a_later_unrelated_object():
    text = 'The answer is {"output": [1, 2]}. (Internally the state was {"i": 3}.)'
    assert extract_answer(text, "output").value == [1, 2]


def test_json_fence():
    text = "Let me think.\n\n```json\n{\n  \"output\": {\"a\": 1.5, \"b\": [true, null]}\n}\n```\n"
    assert extract_answer(text, "output").value == {"a": 1.5, "b": [True, None]}


def test_last_fence_wins():
    text = '```json\n{"output": "old"}\n```\nrevised:\n```json\n{"output": "new"}\n```'
    assert extract_answer(text, "output").value == "new"


def test_bare_value_in_the_last_json_fence():
    assert extract_answer("so:\n```json\n[1, 2, 3]\n```", "output").value == [1, 2, 3]
    assert extract_answer("so:\n```json\n\"abc\"\n```", "output").value == "abc"
    got = extract_answer("```json\n[1, 2]\n```", "input")
    assert not got.ok and got.reason == REASON_NOT_A_DICT
    assert extract_answer("```json\nnot json at all\n```", "output").reason == REASON_NO_JSON


def test_nested_object_is_part_of_its_parent():
    text = '{"output": {"output": 5, "x": {"y": 1}}}'
    assert extract_answer(text, "output").value == {"output": 5, "x": {"y": 1}}


def test_python_literals_tolerated():
    got = extract_answer("{'output': [True, False, None, (1, 2)]}", "output")
    assert got.ok and got.value == [True, False, None, [1, 2]]


def test_mixed_json_and_python_words():
    assert extract_answer('{"output": [true, None, False, null]}', "output").value == [True, None, False, None]


def test_json_words_inside_strings_are_kept():
    got = extract_answer("{'output': 'true or null', 'flag': true}", "output")
    assert got.value == "true or null"


def test_apostrophes_in_prose_do_not_break_scanning():
    text = "It's easy: the loop doesn't run {twice}. Final: {\"output\": \"it's\"}"
    assert extract_answer(text, "output").value == "it's"


def test_braces_inside_strings():
    text = '{"output": "a } tricky { string"}'
    assert extract_answer(text, "output").value == "a } tricky { string"


def test_raw_newline_inside_a_string():
    assert extract_answer('{"output": "two\nlines"}', "output").value == "two\nlines"


def test_nan_and_infinity_parse_but_never_match():
    got = extract_answer('{"output": NaN}', "output")
    assert got.ok and math.isnan(got.value)
    assert not values_match(got.value, float("nan"))


def test_unbalanced_braces_then_answer():
    text = "consider { an unclosed brace and {\"output\": 7}"
    assert extract_answer(text, "output").value == 7


def test_code_with_dicts_before_the_answer():
    text = (
        "```python\ndef f(d):\n    return {k: v for k, v in d.items()}\nx = {'a': 1}\n```\n"
        "So the answer is {\"output\": {\"a\": 1}}"
    )
    assert extract_answer(text, "output").value == {"a": 1}


def test_null_output_is_a_valid_answer():
    got = extract_answer('{"output": null}', "output")
    assert got.ok and got.value is None


def test_no_json():
    got = extract_answer("I think the answer is 42.", "output")
    assert not got.ok and got.reason == REASON_NO_JSON


def test_empty_and_none_text():
    assert extract_answer("", "output").reason == REASON_NO_JSON
    assert extract_answer(None, "output").reason == REASON_NO_JSON  # type: ignore[arg-type]


def test_missing_key():
    got = extract_answer('{"result": 42}', "output")
    assert not got.ok and got.reason == REASON_MISSING_KEY


def test_set_answer_is_not_json():
    got = extract_answer("{'output': {1, 2}}", "output")
    assert not got.ok and got.reason == REASON_NO_JSON


def test_unknown_task():
    with pytest.raises(ValueError):
        extract_answer('{"output": 1}', "both")


# ---------------------------------------------------------------------------
# extraction: boxed fallback


def test_boxed_number():
    got = extract_answer(r"The final answer is $\boxed{42}$.", "output")
    assert got.ok and got.value == 42 and got.origin == "boxed"


def test_boxed_object_with_latex_braces():
    got = extract_answer(r'\boxed{\{"output": [1, 2]\}}', "output")
    assert got.value == [1, 2]


def test_boxed_json_object():
    assert extract_answer(r'\boxed{{"output": "abc"}}', "output").value == "abc"


def test_boxed_text_is_a_string():
    got = extract_answer(r"\boxed{\text{hello world}}", "output")
    assert got.ok and got.value == "hello world"


def test_last_boxed_wins():
    assert extract_answer(r"\boxed{1} then \boxed{[2, 3]}", "output").value == [2, 3]


def test_json_beats_boxed():
    assert extract_answer(r'\boxed{1} and {"output": 2}', "output").value == 2


def test_boxed_input_dict():
    got = extract_answer(r'\boxed{{"input": {"n": 3}}}', "input")
    assert got.ok and got.value == {"n": 3}


def test_boxed_input_not_a_dict():
    got = extract_answer(r"\boxed{5}", "input")
    assert not got.ok and got.reason == REASON_NOT_A_DICT


# ---------------------------------------------------------------------------
# extraction: input task


def test_input_dict():
    got = extract_answer('so {"input": {"n": 61, "m": 4}}', "input")
    assert got.ok and got.value == {"n": 61, "m": 4}
    assert list(got.value) == ["n", "m"]


def test_input_not_a_dict():
    got = extract_answer('{"input": [61, 4]}', "input")
    assert not got.ok and got.reason == REASON_NOT_A_DICT and got.value == [61, 4]


def test_input_missing_key():
    got = extract_answer('{"output": 3}', "input")
    assert not got.ok and got.reason == REASON_MISSING_KEY


def test_input_with_python_tuple_becomes_list():
    got = extract_answer("{'input': {'pair': (1, 2), 'flag': True}}", "input")
    assert got.value == {"pair": [1, 2], "flag": True}
    json.dumps(got.value)


def test_input_answer_is_json_serializable_or_rejected():
    got = extract_answer("{'input': {'s': {1, 2}}}", "input")
    assert not got.ok


# ---------------------------------------------------------------------------
# extraction robustness


def test_find_json_objects_lists_top_level_only():
    objects = find_json_objects('a {"x": {"y": 1}} b {"z": 2} c {bad} d')
    assert objects == [{"x": {"y": 1}}, {"z": 2}]


def test_parse_lenient():
    assert parse_lenient('{"a": 1}') == {"a": 1}
    assert parse_lenient("{'a': (1,)}") == {"a": (1,)}
    assert parse_lenient("not a value") is None
    assert parse_lenient("__import__('os').system('echo hi')") is None  # never evaluated


def test_deep_nesting_does_not_crash():
    text = '{"output": ' + "[" * 5000 + "]" * 5000 + "}"
    got = extract_answer(text, "output")
    assert isinstance(got.ok, bool)


@pytest.mark.parametrize(
    "garbage",
    ["{ " * 3000, "{" * 20000, '{"a": [' * 3000, '{"' * 10000, "{'" * 10000, '{"x": "' + "}" * 10000],
)
def test_degenerate_responses_still_find_the_final_json(garbage):
    assert extract_answer(garbage + ' end {"output": 1}', "output").value == 1


def test_code_braces_are_not_dicts():
    text = "x = {a: b for a in c}\n" * 500 + "s = {1, 2}\n" + 'answer: {"output": 2}'
    assert extract_answer(text, "output").value == 2


# ---------------------------------------------------------------------------
# comparison


@pytest.mark.parametrize(
    ("predicted", "expected"),
    [
        (1, 1),
        ("abc", "abc"),
        (None, None),
        ([1, 2], [1, 2]),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
        (1.0, 1),
        (1, 1.0),
        (3.14159, 3.1416),
        (1000.4, 1000.0),
        (-2.0004, -2.0),
        ([1.0001, "x"], [1.0, "x"]),
        ({"k": [0.5, {"z": 2.0}]}, {"k": [0.5, {"z": 2.0001}]}),
        ((1, 2), [1, 2]),
        ([1, 2], (1, 2)),
        (True, True),
        (0.0, 0.0),
        (-0.0, 0.0),
    ],
)
def test_match(predicted, expected):
    assert values_match(predicted, expected)


@pytest.mark.parametrize(
    ("predicted", "expected"),
    [
        (1, 2),
        ("1", 1),
        (True, 1),
        (1, True),
        (False, 0),
        (0.0, False),
        (None, 0),
        (None, "None"),
        ([1, 2], [1, 2, 3]),
        ([1, 2], [2, 1]),
        ({"a": 1}, {"a": 1, "b": 2}),
        ({"a": 1}, {"b": 1}),
        ([1], {"0": 1}),
        (1.01, 1.0),  # 1% off
        (0.9999, 1.0),  # close, but the integer part differs (0 vs 1)
        (2.9995, 3.0),
        (1e-9, 0.0),  # relative tolerance: nothing is close to 0 but 0
        (float("nan"), float("nan")),
        (float("inf"), float("inf")),
        (float("-inf"), float("-inf")),
        ([float("nan")], [float("nan")]),
        ({"x": float("inf")}, {"x": float("inf")}),
        (1.0, float("nan")),
        (10**400, 1e308),
        ("abc", "abd"),
        ([1.5], 1.5),
    ],
)
def test_no_match(predicted, expected):
    assert not values_match(predicted, expected)


def test_tolerance_is_relative_to_the_expected_value():
    assert values_match(100.09, 100.0)  # 0.09 <= 0.1
    assert not values_match(100.11, 100.0)  # 0.11 > 0.1
    assert values_match(1234.5, 1234.0)  # 0.5 <= 1.234, same integer part
    assert not values_match(1235.1, 1234.9)  # within tolerance, but 1235 != 1234


def test_big_integers_compare_exactly():
    assert values_match(10**30, 10**30)
    assert not values_match(10**30 + 1, 10**30)
    assert values_match(2**70, float(2**70))


def test_float_rule_really_runs():
    """The authors' checker swallowed a NameError and judged every float wrong:
    make sure close floats are really accepted and far ones really refused."""
    assert numbers_close(0.1 + 0.2, 0.3)
    assert values_match([0.1 + 0.2], [0.3])
    assert values_match({"area": 78.53981633974483}, {"area": 78.54})
    assert not numbers_close(0.31, 0.3)


def test_numbers_close_non_finite():
    assert not numbers_close(float("nan"), 1.0)
    assert not numbers_close(1.0, float("inf"))


def test_deep_structures_do_not_crash():
    deep_a: list = []
    deep_b: list = []
    a, b = deep_a, deep_b
    for _ in range(3000):
        a.append([])
        b.append([])
        a, b = a[0], b[0]
    assert values_match(deep_a, deep_b) in (True, False)


def test_round_trip_through_extraction():
    expected = {"rabbits": 61.31, "foxes": 14.25}
    got = extract_answer('... {"output": {"foxes": 14.2501, "rabbits": 61.31}}', "output")
    assert values_match(got.value, expected)
