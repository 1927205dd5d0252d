"""The offline extraction of one SourceFile record, by its kind."""

from __future__ import annotations

import json
from typing import Any

from codeio.examples.base import Extraction
from codeio.examples import leetcode, rows
from codeio.examples.doctests import extract_doctest_functions

PROBLEM_KIND = "problem"  # a statement with its solution (SourceFile.kind)


def source_path(source: dict[str, Any]) -> str:
    """The path a source record came from (for labels), or ""."""
    try:
        origin = json.loads(source.get("origin") or "{}")
    except ValueError:
        return ""
    return str(origin.get("path") or "") if isinstance(origin, dict) else ""


def offline_functions(source: dict[str, Any]) -> Extraction:
    """Unified functions whose pairs ``source`` carries (raw files: doctests;
    problems: the statement's examples; dataset rows: their examples or tests)."""
    if source["kind"] == "raw":
        return extract_doctest_functions(source["content"], source_path(source))
    payload = _payload(source)
    if source["kind"] == PROBLEM_KIND and payload.get("format") == leetcode.FORMAT:
        return leetcode.leetcode_function(source["content"], payload)
    if source["kind"] == PROBLEM_KIND and payload.get("format") == rows.FORMAT:
        return rows.row_function(source["content"], payload)
    found = Extraction()
    found.skipped[f"kind_{source['kind']}"] += 1
    return found


def normalization_text(source: dict[str, Any]) -> str:
    """What the normalization LLM reads: the file, or for a problem its statement
    and its solution together."""
    payload = _payload(source)
    if source["kind"] == PROBLEM_KIND and payload.get("format") == leetcode.FORMAT:
        return leetcode.statement_for_normalization(payload, source["content"])
    if source["kind"] == PROBLEM_KIND and payload.get("format") == rows.FORMAT:
        return rows.statement_for_normalization(source["content"], payload)
    return source["content"]


def _payload(source: dict[str, Any]) -> dict[str, Any]:
    try:
        payload = json.loads(source.get("unified") or "{}")
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}
