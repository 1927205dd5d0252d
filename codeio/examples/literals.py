"""Values written in a source as literals, accepted only when JSON can carry them.

``ast.literal_eval`` evaluates nothing but literals, so reading an example never
runs corpus code. Tuples become lists (JSON has no tuples; the sandbox run then
decides whether the code behaves the same on lists); sets, bytes, complex
numbers, ``...``, non-string dict keys and non-finite floats are refused.
"""

from __future__ import annotations

import ast
import io
import math
import tokenize
from typing import Any, Iterator

MAX_LITERAL_CHARS = 20_000  # longer example texts are not small values anyway
# JSON words (LeetCode writes true/false/null) as Python spells them.
PYTHON_FOR_JSON_WORD = {"true": "True", "false": "False", "null": "None"}
_EVAL_ERRORS = (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, OverflowError)


class NotJSON(ValueError):
    """The text is not a literal, or its value has no JSON form."""


def to_json_value(value: Any, depth: int = 0) -> Any:
    """The value with tuples as lists; NotJSON for anything JSON cannot carry."""
    if depth > 50:
        raise NotJSON("nested too deeply")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotJSON("non-finite float")
        return value
    if isinstance(value, (list, tuple)):
        return [to_json_value(item, depth + 1) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise NotJSON("dict with non-string keys")
        return {key: to_json_value(item, depth + 1) for key, item in value.items()}
    raise NotJSON(f"{type(value).__name__} has no JSON form")


def read_literal(text: str, json_words: bool = False) -> Any:
    """The JSON value of a literal text (``json_words``: true/false/null allowed)."""
    text = text.strip()
    if not text or len(text) > MAX_LITERAL_CHARS:
        raise NotJSON("empty or too long")
    if json_words:
        text = python_words(text)
    try:
        value = ast.literal_eval(text)
    except _EVAL_ERRORS as error:
        raise NotJSON(f"not a literal: {type(error).__name__}") from None
    return to_json_value(value)


def node_value(node: ast.expr) -> Any:
    """The JSON value of a literal expression node (an argument of a doctest call)."""
    try:
        value = ast.literal_eval(node)
    except _EVAL_ERRORS as error:
        raise NotJSON(f"not a literal: {type(error).__name__}") from None
    return to_json_value(value)


def python_words(text: str) -> str:
    """``true``/``false``/``null`` outside string literals spelled as Python."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return text
    if not any(t.type == tokenize.NAME and t.string in PYTHON_FOR_JSON_WORD for t in tokens):
        return text
    lines = text.split("\n")
    # replace from the end so earlier offsets stay valid
    for token in reversed(tokens):
        if token.type == tokenize.NAME and token.string in PYTHON_FOR_JSON_WORD:
            row, col = token.start
            line = lines[row - 1]
            lines[row - 1] = line[:col] + PYTHON_FOR_JSON_WORD[token.string] + line[col + len(token.string):]
    return "\n".join(lines)


def outside_strings(text: str, start: int = 0) -> Iterator[tuple[int, str]]:
    """(index, character) of each character of ``text`` from ``start`` that is not
    inside a quoted string (single or double quotes, backslash escapes); the quotes
    themselves are yielded."""
    quote, escaped = "", False
    for index in range(start, len(text)):
        char = text[index]
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
                yield index, char
            continue
        if char in "\"'":
            quote = char
        yield index, char
