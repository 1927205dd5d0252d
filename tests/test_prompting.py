"""Prediction prompts, feedback texts and revision messages (the contract of issue 2)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from codeio import prompting
from codeio.answers import extract_answer
from codeio.prompting import (
    ANSWER_FORMATS,
    PromptTemplates,
    TemplateError,
    build_feedback,
    build_prediction_messages,
    prompt_text,
    response_prefix,
    revision_messages,
)

PROBLEM = "Children stand in a circle of `n`; every `m`-th leaves. Who is the last one? It costs $5."
IO = "Input:\n  `n` (int): children.\n  `m` (int): step.\n\nOutput:\n  `return` (int): the survivor."
CODE = (
    "def helper(n, m):\n    return {'n': n}\n\n\n"
    "def main_solution(n, m):\n    last = 0\n    for i in range(2, n + 1):\n        last = (last + m) % i\n    return last\n"
)
INPUT_JSON = '{"n": 61, "m": 4, "name": "Zo\\u00eb"}'


@pytest.fixture(scope="module")
def templates() -> PromptTemplates:
    return PromptTemplates.load()


def _content(task: str, placement: str, templates: PromptTemplates, given: str = INPUT_JSON) -> str:
    messages = build_prediction_messages(task, PROBLEM, IO, given, CODE, placement, templates)
    assert len(messages) == 1 and messages[0]["role"] == "user"
    assert set(messages[0]) == {"role", "content"}
    return messages[0]["content"]


@pytest.mark.parametrize("task", ["output", "input"])
def test_one_user_message_holds_the_whole_question_in_order(task, templates):
    given = INPUT_JSON if task == "output" else "38"
    content = _content(task, "prompt", templates, given)
    given_text = json.dumps(json.loads(given))
    positions = [
        content.index(PROBLEM),
        content.index(IO),
        content.index(given_text),
        content.index("Tip:"),
        content.index(CODE.strip("\n")),
        content.rindex(ANSWER_FORMATS[task]),
    ]
    assert positions == sorted(positions)
    # the answer-format literal is the very end of the message
    assert content.endswith(ANSWER_FORMATS[task])
    assert "step by step" in content and "without writing" in content
    assert "do not copy" in content


def test_given_value_uses_json_dumps_in_original_key_order(templates):
    content = _content("output", "none", templates, '{"zeta": 1, "alpha": [1.5, "\u00e9"], "mid": null}')
    assert '{"zeta": 1, "alpha": [1.5, "\\u00e9"], "mid": null}' in content


def test_placement_none_has_no_code(templates):
    content = _content("output", "none", templates)
    assert "main_solution" not in content and "Tip:" not in content
    assert content.endswith(ANSWER_FORMATS["output"])


def test_placement_response_keeps_code_out_of_the_prompt(templates):
    content = _content("input", "response", templates, "38")
    assert "main_solution" not in content
    prefix = response_prefix(CODE, "response", templates)
    assert CODE.strip("\n") in prefix and prefix.lstrip().startswith("Reference code")
    assert response_prefix(CODE, "prompt", templates) == ""
    assert response_prefix(CODE, "none", templates) == ""


def test_input_prompt_asks_for_a_dict_of_argument_names(templates):
    content = _content("input", "prompt", templates, "38")
    assert "Given the following output" in content
    assert "dictionary" in content and content.endswith('{"input": ...}')


def test_dollar_and_braces_in_values_are_kept_verbatim(templates):
    content = _content("output", "prompt", templates)
    assert "$5" in content and "{'n': n}" in content


def test_bad_arguments(templates):
    with pytest.raises(ValueError):
        build_prediction_messages("both", PROBLEM, IO, "1", CODE, "prompt", templates)
    with pytest.raises(ValueError):
        build_prediction_messages("output", PROBLEM, IO, "1", CODE, "middle", templates)


def test_deterministic(templates):
    again = PromptTemplates.load()
    assert build_prediction_messages("output", PROBLEM, IO, INPUT_JSON, CODE, "prompt", templates) == (
        build_prediction_messages("output", PROBLEM, IO, INPUT_JSON, CODE, "prompt", again)
    )
    assert templates.content_hash == again.content_hash and templates.label == prompting.TEMPLATE_VERSION


def test_prompt_text_is_the_first_user_message(templates):
    messages = build_prediction_messages("output", PROBLEM, IO, INPUT_JSON, CODE, "prompt", templates)
    assert prompt_text(messages) == messages[0]["content"]
    assert prompt_text([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]) == "u"


# ---------------------------------------------------------------------------
# templates on disk and overrides


def test_shipped_files_exist():
    names = {p.name for p in prompting.PROMPTS_DIR.glob("*.v1.txt")}
    for required in prompting.REQUIRED_TEMPLATES:
        assert f"{required}.v1.txt" in names


def test_override_folder_replaces_same_names(tmp_path: Path, templates):
    (tmp_path / "output_prediction.v1.txt").write_text(
        "Q: ${problem_statement}\nIO: ${io_description}\nIN: ${given}\n${code_tip}Answer as {\"output\": ...}",
        encoding="utf-8",
    )
    (tmp_path / "extra_note.v1.txt").write_text("hello", encoding="utf-8")
    custom = PromptTemplates.load(str(tmp_path))
    assert custom.overridden == ("extra_note", "output_prediction")
    assert custom.content_hash != templates.content_hash
    assert custom.label.startswith("v1+custom-")
    assert custom.text("extra_note") == "hello"
    content = build_prediction_messages("output", PROBLEM, IO, INPUT_JSON, CODE, "none", custom)[0]["content"]
    assert content.startswith("Q: ") and content.endswith('{"output": ...}')
    # untouched templates still come from the package
    assert custom.text("input_prediction") == templates.text("input_prediction")


def test_hash_of_covers_only_the_named_templates(tmp_path: Path, templates):
    (tmp_path / "feedback_success.v1.txt").write_text("[Correct] yes", encoding="utf-8")
    custom = PromptTemplates.load(str(tmp_path))
    prediction = ["output_prediction", "input_prediction", "reference_code_prompt"]
    assert custom.hash_of(prediction) == templates.hash_of(prediction)
    assert custom.hash_of(["feedback_success"]) != templates.hash_of(["feedback_success"])
    with pytest.raises(TemplateError):
        templates.hash_of(["no_such_template"])


def test_override_with_unknown_placeholder_fails_loudly(tmp_path: Path):
    (tmp_path / "output_prediction.v1.txt").write_text("${nonsense}", encoding="utf-8")
    custom = PromptTemplates.load(str(tmp_path))
    with pytest.raises(TemplateError):
        build_prediction_messages("output", PROBLEM, IO, INPUT_JSON, CODE, "none", custom)


@pytest.mark.parametrize("text, problem", [
    ("Normalize this file, please.", "lacks the placeholder(s) $raw_code"),
    ("Normalize $raw_code for $user.", "unknown placeholder(s) $user"),
    ("Normalize $raw_code for $5.", "malformed"),
])
def test_a_normalize_override_is_checked_when_templates_load(tmp_path: Path, text: str, problem: str):
    """Not when a worker first renders it, deep inside the run."""
    (tmp_path / "normalize.v1.txt").write_text(text, encoding="utf-8")
    with pytest.raises(TemplateError, match=re.escape(problem)):
        PromptTemplates.load(str(tmp_path))


def test_missing_override_folder(tmp_path: Path):
    with pytest.raises(TemplateError):
        PromptTemplates.load(str(tmp_path / "absent"))


def test_unknown_version():
    with pytest.raises(TemplateError):
        PromptTemplates.load(version="v999")


# ---------------------------------------------------------------------------
# feedback


REDO = "Do not repeat any of your earlier wrong answers"


def test_success_feedback(templates):
    text = build_feedback("success", task="output", templates=templates)
    assert "correct" in text.lower() and REDO not in text


def test_output_mismatch_names_given_and_predicted_but_not_the_truth(templates):
    text = build_feedback("mismatch", task="output", templates=templates, given_json='{"n": 61, "m": 4}',
                          predicted_json="37", actual_json="38")
    assert '{"n": 61, "m": 4}' in text and "37" in text
    assert "38" not in text  # the true output is not revealed
    assert REDO in text and text.endswith('{"output": ...}')


def test_input_mismatch_names_given_predicted_and_actual(templates):
    text = build_feedback("mismatch", task="input", templates=templates, given_json="38",
                          predicted_json='{"n": 60, "m": 4}', actual_json="52")
    assert "38" in text and '{"n": 60, "m": 4}' in text and "52" in text
    assert text.index("38") < text.index('{"n": 60') < text.index("52")
    assert REDO in text and text.endswith('{"input": ...}')


@pytest.mark.parametrize(
    ("reason", "fragment"),
    [("no_json", "no JSON object"), ("missing_key", '"output" key'), ("not_a_dict", "not a dictionary")],
)
def test_no_answer_reasons(templates, reason, fragment):
    text = build_feedback("no_answer", task="output", templates=templates, reason=reason)
    assert fragment in text and REDO in text


def test_exception_feedback(templates):
    text = build_feedback("exception", task="input", templates=templates, predicted_json='{"n": 0}',
                          error_type="ZeroDivisionError", error_message="integer division or modulo by zero")
    assert "ZeroDivisionError: integer division or modulo by zero" in text and '{"n": 0}' in text
    assert REDO in text


def test_timeout_feedback(templates):
    text = build_feedback("timeout", task="input", templates=templates, predicted_json='{"n": 10}', timeout_s=5.0)
    assert "5 seconds" in text and REDO in text
    assert "the time limit" in build_feedback("timeout", task="input", templates=templates)


def test_llm_failed_feedback(templates):
    text = build_feedback("llm_failed", task="output", templates=templates)
    assert "cut off" in text and REDO in text


def test_long_values_are_cut(templates):
    text = build_feedback("exception", task="input", templates=templates, error_type="ValueError",
                          error_message="x" * 10_000)
    assert len(text) < 3000 and prompting.TRUNCATION_MARK.strip() in text


def test_unknown_status(templates):
    with pytest.raises(ValueError):
        build_feedback("weird", task="output", templates=templates)


# ---------------------------------------------------------------------------
# revision messages


def test_revision_messages_append_assistant_and_user(templates):
    round1 = build_prediction_messages("output", PROBLEM, IO, INPUT_JSON, CODE, "prompt", templates)
    feedback = build_feedback("mismatch", task="output", templates=templates, given_json=INPUT_JSON,
                              predicted_json="37")
    round2 = revision_messages(round1, 'so {"output": 37}', feedback)
    assert round2[: len(round1)] == round1 and round2 is not round1
    assert round2[-2] == {"role": "assistant", "content": 'so {"output": 37}'}
    assert round2[-1] == {"role": "user", "content": feedback}
    round3 = revision_messages(round2, "again", "feedback 2")
    assert [m["role"] for m in round3] == ["user", "assistant", "user", "assistant", "user"]
    assert len(round1) == 1  # the input list is not mutated


def test_feedback_answer_format_matches_extraction(templates):
    """An answer written in the format the feedback asks for is extracted."""
    for task, value in (("output", 5), ("input", {"n": 5})):
        fmt = ANSWER_FORMATS[task].replace("...", json.dumps(value))
        assert extract_answer(f"New answer: {fmt}", task).value == value
