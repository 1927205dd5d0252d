"""Answer extraction from teacher responses, and the comparison rule of verification.

The teacher ends its answer with ``{"output": ...}`` or ``{"input": {...}}``
(METHOD.md 5). Models wrap that object in prose, markdown fences, Python
literals or LaTeX boxes, so extraction scans for every complete top-level
object and keeps the last one that carries the expected key; ``\\boxed{...}`` is
the fallback. Comparison follows METHOD.md 7: equal as canonical JSON, or close
(floats within a relative tolerance with the same integer part). Non-finite
numbers never match, and ``True`` is not the number ``1``.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass
from typing import Any

TASKS = ("output", "input")

# A ```json fenced block (its content is a fallback when no object carries the key).
JSON_FENCE_PATTERN = re.compile(r"```[ \t]*json[ \t]*\r?\n(.*?)```", re.DOTALL | re.IGNORECASE)
# The start of a LaTeX box; the content is taken by brace matching, not by regex.
BOXED_PATTERN = re.compile(r"\\boxed\s*\{")
# JSON words that Python's literal syntax spells differently (used outside strings only).
JSON_WORD_PATTERN = re.compile(r"\b(true|false|null)\b")
PYTHON_FOR_JSON_WORD = {"true": "True", "false": "False", "null": "None"}
# LaTeX escapes that turn up inside boxed answers: \{ \} \left \right.
LATEX_BRACE_PATTERN = re.compile(r"\\([{}])")
LATEX_SIZING_PATTERN = re.compile(r"\\(?:left|right)\b")
# A text wrapped as \text{...} inside a box.
LATEX_TEXT_PATTERN = re.compile(r"^\\text\s*\{(.*)\}$", re.DOTALL)

FLOAT_RELATIVE_TOLERANCE = 1e-3
# A "{" that can open a dict: JSON and Python dicts with string keys start with a quote.
DICT_START_PATTERN = re.compile(r"\{\s*[\"'}]")
# Characters that matter when matching braces by hand (quotes, escapes, newlines, braces).
BRACE_SCAN_PATTERN = re.compile(r"[{}\"'\\\n]")
# The Python-literal fallback never looks at spans longer than this, and visits at most
# MAX_SCAN_STEPS interesting characters per response (a response is a few thousand tokens).
MAX_CANDIDATE_CHARS = 50_000
MAX_SCAN_STEPS = 200_000

REASON_NO_JSON = "no_json"
REASON_MISSING_KEY = "missing_key"
REASON_NOT_A_DICT = "not_a_dict"

_PARSE_ERRORS = (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, OverflowError)


@dataclass(frozen=True)
class Extracted:
    """The answer found in a response. ``value`` is the predicted output (task
    ``output``) or the predicted keyword arguments (task ``input``)."""

    ok: bool
    value: Any = None
    reason: str | None = None  # no_json | missing_key | not_a_dict when not ok
    origin: str | None = None  # "json" (an object in the text) or "boxed"


# ---------------------------------------------------------------------------
# extraction


def extract_answer(text: str, task: str) -> Extracted:
    """Find the answer of ``task`` ("output" or "input") in a response text.

    Order: the last complete top-level object that has the key ``task`` (an
    object without it, such as a restated intermediate state, is passed over),
    then the last ``\\boxed{...}``, then a bare value in the last ```json block."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    key = task
    objects = find_json_objects(text or "")
    chosen: dict[str, Any] | None = None
    for obj in reversed(objects):
        if key in obj:
            chosen = obj
            break
    if chosen is not None:
        return _finish(chosen[key], task, "json")
    boxed = _extract_boxed(text or "", task)
    if boxed is not None:
        return boxed
    fenced = _extract_fenced_value(text or "", task)
    if fenced is not None:
        return fenced
    if objects:
        return Extracted(False, None, REASON_MISSING_KEY)
    return Extracted(False, None, REASON_NO_JSON)


def _extract_fenced_value(text: str, task: str) -> Extracted | None:
    """The last ```json block holding a bare value (``[1, 2]``, ``42``): the
    answer itself, as the reference scripts read it; objects were tried already."""
    fences = JSON_FENCE_PATTERN.findall(text)
    if not fences:
        return None
    content = fences[-1].strip()
    value = parse_lenient(content)
    if isinstance(value, dict) or (value is None and content not in ("null", "None")):
        return None
    return _finish(value, task, "json")


def _finish(value: Any, task: str, origin: str) -> Extracted:
    try:
        value = _as_json_value(value)
    except RecursionError:
        return Extracted(False, None, REASON_NO_JSON, origin)
    if task == "input" and not isinstance(value, dict):
        return Extracted(False, value, REASON_NOT_A_DICT, origin)
    try:
        json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        # A Python literal JSON cannot hold (a set, bytes, complex): not a JSON answer.
        return Extracted(False, None, REASON_NO_JSON, origin)
    return Extracted(True, value, None, origin)


def _as_json_value(value: Any) -> Any:
    """Tuples from Python literals become lists, as JSON would have written them."""
    if isinstance(value, tuple):
        return [_as_json_value(item) for item in value]
    if isinstance(value, list):
        return [_as_json_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_json_value(item) for key, item in value.items()}
    return value


def find_json_objects(text: str) -> list[dict[str, Any]]:
    """Every complete top-level object in ``text`` (JSON, or a Python dict literal),
    in order of appearance. Objects nested in a found object are not listed
    separately; an unparseable ``{`` is skipped and scanning resumes after it, so
    the object of a ```json fence is found whatever prose surrounds it.

    Only a ``{`` followed by a quote (or ``}``) can open a dict, which skips prose
    and code braces at once; the Python-literal fallback shares one scanning
    budget per text, so degenerate responses (thousands of braces) stay fast."""
    decoder = json.JSONDecoder(strict=False)  # tolerate raw newlines inside strings
    found: list[dict[str, Any]] = []
    budget = [MAX_SCAN_STEPS]
    position = 0
    while True:
        match = DICT_START_PATTERN.search(text, position)
        if match is None:
            break
        start = match.start()
        parsed, end = _parse_object_at(text, start, decoder, budget)
        if parsed is not None:
            found.append(parsed)
            position = end
        else:
            position = start + 1
    return found


def _parse_object_at(
    text: str, start: int, decoder: json.JSONDecoder, budget: list[int]
) -> tuple[dict[str, Any] | None, int]:
    try:
        value, end = decoder.raw_decode(text, start)
    except (ValueError, RecursionError):  # ValueError: also over-long integers
        value, end = None, start
    if isinstance(value, dict):
        return value, end
    end = _matching_brace(text, start, budget)
    if end is None:
        return None, start
    value = parse_lenient(text[start:end])
    if isinstance(value, dict):
        return value, end
    return None, start


def _matching_brace(text: str, start: int, budget: list[int]) -> int | None:
    """Index just past the brace closing the one at ``start``; quotes (single or
    double, with backslash escapes) hide the braces inside them. Each visited
    token costs one step of ``budget``; None when it runs out."""
    depth = 0
    quote: str | None = None
    skip_until = -1
    limit = min(len(text), start + MAX_CANDIDATE_CHARS)
    for token in BRACE_SCAN_PATTERN.finditer(text, start, limit):
        budget[0] -= 1
        if budget[0] < 0:
            return None
        index = token.start()
        if index < skip_until:
            continue  # the character escaped by a backslash
        char = token.group()
        if quote is not None:
            if char == "\\":
                skip_until = index + 2
            elif char == quote:
                quote = None
            elif char == "\n" and quote == "'":
                return None  # a lone apostrophe in prose, not a Python string
        elif char in "\"'":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index + 1
    return None


def parse_lenient(span: str) -> Any:
    """JSON, else a Python literal (True/False/None, single quotes, tuples), else
    JSON words rewritten for Python. ``None`` when nothing parses (a parsed JSON
    ``null`` is also ``None``; callers only look for dicts and boxed values)."""
    span = span.strip()
    if not span:
        return None
    try:
        return json.loads(span, strict=False)
    except (ValueError, RecursionError):  # ValueError: also over-long integers
        pass
    try:
        return ast.literal_eval(span)
    except _PARSE_ERRORS:
        pass
    rewritten = _rewrite_json_words(span)
    if rewritten != span:
        try:
            return ast.literal_eval(rewritten)
        except _PARSE_ERRORS:
            pass
    return None


def _rewrite_json_words(span: str) -> str:
    """Replace true/false/null by True/False/None outside quoted strings."""
    parts: list[str] = []
    index = 0
    segment_start = 0
    quote: str | None = None
    length = len(span)
    while index < length:
        char = span[index]
        if quote is not None:
            if char == "\\":
                index += 2
                continue
            if char == quote:
                quote = None
                parts.append(span[segment_start : index + 1])
                segment_start = index + 1
        elif char in "\"'":
            parts.append(JSON_WORD_PATTERN.sub(lambda m: PYTHON_FOR_JSON_WORD[m.group(1)], span[segment_start:index]))
            segment_start = index
            quote = char
        index += 1
    tail = span[segment_start:]
    parts.append(tail if quote is not None else JSON_WORD_PATTERN.sub(lambda m: PYTHON_FOR_JSON_WORD[m.group(1)], tail))
    return "".join(parts)


def _extract_boxed(text: str, task: str) -> Extracted | None:
    """The last ``\\boxed{...}``: an object with the key, else (output task) the
    boxed value itself, else (input task) a boxed dict of arguments."""
    matches = list(BOXED_PATTERN.finditer(text))
    if not matches:
        return None
    last = matches[-1]
    brace = last.end() - 1
    end = _matching_latex_brace(text, brace)
    if end is None:
        return None
    content = text[brace + 1 : end - 1].strip()
    text_match = LATEX_TEXT_PATTERN.match(content)
    if text_match:
        content = text_match.group(1).strip()
    content = LATEX_SIZING_PATTERN.sub("", LATEX_BRACE_PATTERN.sub(r"\1", content)).strip()
    if not content:
        return None
    value = parse_lenient(content)
    if isinstance(value, dict) and task in value:
        return _finish(value[task], task, "boxed")
    if task == "input":
        return _finish(value, task, "boxed") if value is not None else None
    if value is None and content not in ("null", "None"):
        return Extracted(True, content, None, "boxed")  # a bare word or text: the output is that string
    return Extracted(True, value, None, "boxed")


def _matching_latex_brace(text: str, start: int) -> int | None:
    """Brace matching for LaTeX: ``\\{`` and ``\\}`` are literal braces, not groups."""
    depth = 0
    index = start
    limit = min(len(text), start + MAX_CANDIDATE_CHARS)
    while index < limit:
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    return None


# ---------------------------------------------------------------------------
# comparison


def canonical_json(value: Any) -> str | None:
    """Sorted-key compact JSON, or None when the value is not finite JSON."""
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return None


def values_match(predicted: Any, expected: Any) -> bool:
    """METHOD.md 7: equal as canonical JSON strings, or close recursively."""
    predicted_text = canonical_json(predicted)
    if predicted_text is not None and predicted_text == canonical_json(expected):
        return True
    try:
        return _close(predicted, expected)
    except RecursionError:
        return False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _close(predicted: Any, expected: Any) -> bool:
    if isinstance(predicted, bool) or isinstance(expected, bool):
        return isinstance(predicted, bool) and isinstance(expected, bool) and predicted == expected
    if _is_number(predicted) and _is_number(expected):
        return numbers_close(predicted, expected)
    if isinstance(predicted, dict) and isinstance(expected, dict):
        if set(predicted) != set(expected):
            return False
        return all(_close(predicted[key], expected[key]) for key in expected)
    if isinstance(predicted, (list, tuple)) and isinstance(expected, (list, tuple)):
        if len(predicted) != len(expected):
            return False
        return all(_close(p, e) for p, e in zip(predicted, expected))
    if isinstance(predicted, float) or isinstance(expected, float):
        return False  # a float against a non-number
    if isinstance(predicted, (dict, list, tuple)) or isinstance(expected, (dict, list, tuple)):
        return False
    try:
        return bool(predicted == expected) and type(predicted) is type(expected)
    except (TypeError, ValueError):
        return False


def numbers_close(predicted: int | float, expected: int | float) -> bool:
    """Ints compare exactly; with a float involved: both finite, within
    ``FLOAT_RELATIVE_TOLERANCE`` of the expected value, and the same integer part
    (``int()`` truncation, as the reference scripts do)."""
    if isinstance(predicted, int) and isinstance(expected, int):
        return predicted == expected
    try:
        p = float(predicted)
        e = float(expected)
    except OverflowError:
        return False
    if not (math.isfinite(p) and math.isfinite(e)):
        return False
    if p == e:
        return True
    return abs(p - e) <= FLOAT_RELATIVE_TOLERANCE * abs(e) and int(p) == int(e)


__all__ = [
    "Extracted",
    "REASON_MISSING_KEY",
    "REASON_NOT_A_DICT",
    "REASON_NO_JSON",
    "canonical_json",
    "extract_answer",
    "find_json_objects",
    "numbers_close",
    "parse_lenient",
    "values_match",
]
