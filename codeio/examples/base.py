"""What an offline extraction returns."""

from __future__ import annotations

import ast
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OfflineFunction:
    """A unified function built from a source without an LLM."""

    name: str  # the corpus function or method it wraps ("palindrome.is_palindrome", "0001.Two Sum")
    kind: str  # "doctest", "leetcode" or a row layout ("humaneval", "mbpp"): where its pairs come from
    main_code: str  # defines main_solution
    io_description: str  # derived from the signature, labelled as such
    problem_statement: str  # the source's own words (docstring, statement), labelled
    pairs: tuple[dict[str, Any], ...]  # {"input": {name: value}, "output": value}, JSON values only
    generator_code: str | None = None  # an input_generator() for more inputs (design problems), run in the sandbox


@dataclass
class Extraction:
    """Functions found in one source, and why the rest was passed over
    (counted by reason: ``no_examples``, ``example_not_literal``, ...)."""

    functions: list[OfflineFunction] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)

    def describe_skipped(self, width: int = 6) -> str:
        items = self.skipped.most_common(width)
        return ", ".join(f"{reason}={count}" for reason, count in items) or "nothing found"


# What ast.parse raises on text that is not Python (or is too deep or too big for it).
PARSE_ERRORS = (SyntaxError, ValueError, RecursionError, MemoryError)


def parse_module(code: str, found: Extraction) -> ast.Module | None:
    """The module's syntax tree, or None with ``syntax_error`` counted."""
    try:
        return ast.parse(code)
    except PARSE_ERRORS:
        found.skipped["syntax_error"] += 1
        return None
