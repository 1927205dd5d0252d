"""Prediction prompts, revision feedback and multi-turn revision messages.

The wording lives in versioned text files (``codeio/prompts/NAME.v1.txt``) with
``$name`` placeholders (``string.Template``, so JSON braces in a template need no
escaping). A user folder with files of the same names overrides the shipped
ones; the overrides change :attr:`PromptTemplates.content_hash`, which is part
of every instance id, so a reworded prompt never reuses old data by accident.

The shape of a prediction request is part of the contract with the outside
(issue 2): one user message holding problem statement, I/O description, the
given value written with ``json.dumps`` in its original key order, the
reference-code tip, and last the answer-format instruction ending with the
literal ``{"output": ...}`` or ``{"input": ...}``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any, Mapping, Sequence

TEMPLATE_VERSION = "v1"
PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
# Template files are NAME.VERSION.txt, e.g. output_prediction.v1.txt.
TEMPLATE_FILE_PATTERN = re.compile(r"^(?P<name>[a-z0-9_]+)\.(?P<version>v\d+)\.txt$")

TASKS = ("output", "input")
PLACEMENTS = ("prompt", "response", "none")
ANSWER_FORMATS = {"output": '{"output": ...}', "input": '{"input": ...}'}

PREDICTION_TEMPLATES = {"output": "output_prediction", "input": "input_prediction"}
CODE_IN_PROMPT = "reference_code_prompt"
CODE_IN_RESPONSE = "reference_code_response"
FEEDBACK_SUCCESS = "feedback_success"
FEEDBACK_MISMATCH = {"output": "feedback_mismatch_output", "input": "feedback_mismatch_input"}
FEEDBACK_NO_ANSWER = "feedback_no_answer"
FEEDBACK_EXCEPTION = "feedback_exception"
FEEDBACK_TIMEOUT = "feedback_timeout"
FEEDBACK_REDO = "feedback_redo"
REQUIRED_TEMPLATES = (
    *PREDICTION_TEMPLATES.values(),
    CODE_IN_PROMPT,
    CODE_IN_RESPONSE,
    FEEDBACK_SUCCESS,
    *FEEDBACK_MISMATCH.values(),
    FEEDBACK_NO_ANSWER,
    FEEDBACK_EXCEPTION,
    FEEDBACK_TIMEOUT,
    FEEDBACK_REDO,
)

# Placeholders of the templates filled with exactly these values (``substitute`` fails on a missing
# or unknown one): checked when the templates load, not when a worker first renders them.
TEMPLATE_PLACEHOLDERS: Mapping[str, frozenset[str]] = {
    "normalize": frozenset({"raw_code"}),
    "normalize_json": frozenset({"raw_code"}),
    "pyedu_judge": frozenset({"code", "path"}),  # codeio.ingest.judge
}

# Verdict statuses that get feedback (records.VERDICT); llm_failed reads as "no answer".
# Which templates each stage renders (their texts enter that stage's dataset key).
PROMPT_TEMPLATES = (*PREDICTION_TEMPLATES.values(), CODE_IN_PROMPT, CODE_IN_RESPONSE)
FEEDBACK_TEMPLATES = (FEEDBACK_SUCCESS, *FEEDBACK_MISMATCH.values(), FEEDBACK_NO_ANSWER, FEEDBACK_EXCEPTION,
                      FEEDBACK_TIMEOUT, FEEDBACK_REDO)
FEEDBACK_STATUSES = ("success", "mismatch", "no_answer", "exception", "timeout", "llm_failed")
NO_ANSWER_REASONS = {
    "no_json": "no JSON object was found",
    "missing_key": 'no JSON object with an "{key}" key was found',
    "not_a_dict": 'the value of "input" is not a dictionary keyed by the input variable names',
    "llm_failed": "the response was cut off or incomplete",
}
# Long values and error messages are cut in feedback so one runaway value cannot flood the next prompt.
MAX_FEEDBACK_VALUE_CHARS = 2000
TRUNCATION_MARK = " ...[truncated]"


class TemplateError(ValueError):
    """A template file is missing or names a placeholder the code does not fill."""


@dataclass(frozen=True)
class PromptTemplates:
    """The template texts of one version, after user overrides."""

    texts: Mapping[str, str] = field(default_factory=dict)
    version: str = TEMPLATE_VERSION
    overridden: tuple[str, ...] = ()  # names replaced by the user's folder

    @classmethod
    def load(cls, override_dir: str | None = None, version: str = TEMPLATE_VERSION) -> "PromptTemplates":
        """Shipped ``*.{version}.txt`` files, then the same file names from
        ``override_dir`` (files of other names there are loaded too, so a user may
        add templates that other stages look up by name)."""
        texts = _read_dir(PROMPTS_DIR, version)
        overridden: list[str] = []
        if override_dir:
            folder = Path(override_dir).expanduser()
            if not folder.is_dir():
                raise TemplateError(f"prompt override folder {folder} does not exist")
            for name, text in _read_dir(folder, version).items():
                texts[name] = text
                overridden.append(name)
        missing = [name for name in REQUIRED_TEMPLATES if name not in texts]
        if missing:
            raise TemplateError(f"prompt templates missing for version {version}: {', '.join(missing)}")
        for name, expected in TEMPLATE_PLACEHOLDERS.items():
            if name in texts:
                _check_placeholders(name, texts[name], expected, override_dir if name in overridden else None)
        return cls(texts=dict(sorted(texts.items())), version=version, overridden=tuple(sorted(overridden)))

    @property
    def content_hash(self) -> str:
        """sha256 of every template text: changes whenever any wording changes."""
        blob = json.dumps(sorted(self.texts.items()), ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    def hash_of(self, names: Sequence[str]) -> str:
        """sha256 of the named templates only (e.g. a stage's own), so rewording
        another stage's template does not change this stage's keys."""
        blob = json.dumps([[name, self.text(name)] for name in sorted(set(names))], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    @property
    def label(self) -> str:
        """Version for lineage: ``v1``, or ``v1+custom-<hash>`` with user overrides."""
        return self.version if not self.overridden else f"{self.version}+custom-{self.content_hash}"

    def text(self, name: str) -> str:
        try:
            return self.texts[name]
        except KeyError:
            raise TemplateError(f"no prompt template named {name!r} (version {self.version})") from None

    def render(self, name: str, **values: str) -> str:
        try:
            return Template(self.text(name)).substitute(values)
        except KeyError as error:
            raise TemplateError(f"template {name!r} uses an unknown placeholder {error}") from None
        except ValueError as error:
            raise TemplateError(f"template {name!r} is malformed: {error}") from None


def _check_placeholders(name: str, text: str, expected: frozenset[str], folder: str | None) -> None:
    where = f"{name}.txt in {folder}" if folder else f"the shipped {name} template"
    template = Template(text)
    if not template.is_valid():
        raise TemplateError(f"{where} is malformed: a '$' that is not a placeholder (write '$$' for a dollar sign)")
    found = set(template.get_identifiers())
    if expected - found:
        raise TemplateError(f"{where} lacks the placeholder(s) {', '.join('$' + p for p in sorted(expected - found))}")
    if found - expected:
        raise TemplateError(f"{where} uses unknown placeholder(s) {', '.join('$' + p for p in sorted(found - expected))}"
                            f"; it may use only {', '.join('$' + p for p in sorted(expected))}")


def _read_dir(folder: Path, version: str) -> dict[str, str]:
    texts: dict[str, str] = {}
    for path in sorted(folder.glob(f"*.{version}.txt")):
        match = TEMPLATE_FILE_PATTERN.match(path.name)
        if match and match.group("version") == version:
            texts[match.group("name")] = path.read_text(encoding="utf-8")
    return texts


# ---------------------------------------------------------------------------
# prediction prompts


def dump_given(given_json_text: str) -> str:
    """``json.dumps`` of the given value, keys in their original order."""
    return json.dumps(json.loads(given_json_text))


def build_prediction_messages(
    task: str,
    problem_statement: str,
    io_description: str,
    given_json_text: str,
    main_code: str,
    placement: str,
    templates: PromptTemplates,
) -> list[dict[str, str]]:
    """Round-1 messages of an instance: one user message with the whole question.

    ``placement``: ``prompt`` puts the reference code in the question as a tip;
    ``response`` leaves it out (assemble puts :func:`response_prefix` at the start
    of the answer); ``none`` uses no code at all."""
    _check_task(task)
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    tip = ""
    if placement == "prompt":
        tip = templates.render(CODE_IN_PROMPT, main_code=main_code.strip("\n")).rstrip() + "\n\n"
    content = templates.render(
        PREDICTION_TEMPLATES[task],
        problem_statement=(problem_statement or "").strip(),
        io_description=(io_description or "").strip(),
        given=dump_given(given_json_text),
        code_tip=tip,
        answer_format=ANSWER_FORMATS[task],
    )
    return [{"role": "user", "content": content.strip()}]


def response_prefix(main_code: str, placement: str, templates: PromptTemplates) -> str:
    """Text that starts the response for the ``response`` placement ("" otherwise)."""
    if placement != "response":
        return ""
    return templates.render(CODE_IN_RESPONSE, main_code=main_code.strip("\n"))


def prompt_text(messages: Sequence[Mapping[str, str]]) -> str:
    """The final rows' ``prompt``: the first user message."""
    for message in messages:
        if message.get("role") == "user":
            return message.get("content", "")
    return ""


# ---------------------------------------------------------------------------
# feedback and revision


def build_feedback(
    status: str,
    *,
    task: str,
    templates: PromptTemplates,
    given_json: str | None = None,
    predicted_json: str | None = None,
    actual_json: str | None = None,
    error_type: str | None = None,
    error_message: str | None = None,
    reason: str | None = None,
    timeout_s: float | None = None,
) -> str:
    """The user message of the next round for a verdict.

    Values are JSON texts. ``mismatch``: given / predicted, and for input
    prediction the output the predicted input actually produced (``actual``);
    the output-prediction message does not reveal the true output, so a revision
    is a new attempt, not a copy (the reference scripts do the same).
    ``no_answer`` takes the extraction ``reason`` (no_json, missing_key,
    not_a_dict). Every failure ends with the redo instruction."""
    _check_task(task)
    if status not in FEEDBACK_STATUSES:
        raise ValueError(f"no feedback for status {status!r}; expected one of {FEEDBACK_STATUSES}")
    if status == "success":
        return templates.render(FEEDBACK_SUCCESS).strip()
    values = {
        "given": _cut(given_json, "(not recorded)"),
        "predicted": _cut(predicted_json, "(none)"),
        "actual": _cut(actual_json, "(none)"),
        "answer_format": ANSWER_FORMATS[task],
        "task": task,
    }
    if status == "mismatch":
        body = templates.render(FEEDBACK_MISMATCH[task], **values)
    elif status in ("no_answer", "llm_failed"):
        key = "llm_failed" if status == "llm_failed" else (reason or "no_json")
        phrase = NO_ANSWER_REASONS.get(key, key).replace("{key}", task)
        body = templates.render(FEEDBACK_NO_ANSWER, reason=phrase, **values)
    elif status == "exception":
        body = templates.render(
            FEEDBACK_EXCEPTION,
            error_type=error_type or "Exception",
            error_message=_cut(error_message, "(no message)"),
            **values,
        )
    else:
        limit = f"{timeout_s:g} seconds" if timeout_s else "the time limit"
        body = templates.render(FEEDBACK_TIMEOUT, timeout=limit, **values)
    redo = templates.render(FEEDBACK_REDO, **values)
    return f"{body.strip()}\n\n{redo.strip()}"


def revision_messages(
    round_messages: Sequence[Mapping[str, str]], answer_text: str, feedback_text: str
) -> list[dict[str, str]]:
    """Messages of the next round: the earlier ones, the answer as an assistant
    turn, the feedback as a user turn."""
    out = [dict(message) for message in round_messages]
    out.append({"role": "assistant", "content": answer_text})
    out.append({"role": "user", "content": feedback_text})
    return out


def _cut(text: str | None, default: str) -> str:
    if text is None or not str(text).strip():
        return default
    text = str(text).strip()
    if len(text) > MAX_FEEDBACK_VALUE_CHARS:
        return text[:MAX_FEEDBACK_VALUE_CHARS] + TRUNCATION_MARK
    return text


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def describe_templates(templates: PromptTemplates) -> dict[str, Any]:
    """What lineage stores about the templates in use."""
    return {"version": templates.version, "label": templates.label, "content_hash": templates.content_hash,
            "overridden": list(templates.overridden)}


__all__ = [
    "ANSWER_FORMATS",
    "PLACEMENTS",
    "PromptTemplates",
    "TEMPLATE_VERSION",
    "TemplateError",
    "build_feedback",
    "build_prediction_messages",
    "describe_templates",
    "dump_given",
    "prompt_text",
    "response_prefix",
    "revision_messages",
]
