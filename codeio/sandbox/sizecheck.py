"""The METHOD.md size check and the finiteness check, applied inside the
sandbox to values produced by untrusted code.

Deep size follows pympler's ``asizeof`` closely enough for the thresholds:
``sys.getsizeof`` of every distinct object reached through containers, each
rounded up to 8 bytes.
"""

from __future__ import annotations

import math
import sys

MAX_DEEP_BYTES = 1024
MAX_ENTRIES = 20
MAX_STR_CHARS = 100
MAX_SCALAR_BYTES = 128
_ALIGN = 8
_MAX_DEPTH = 50  # deeper nesting is rejected (and would be far over 1 KiB anyway)


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def deep_size(obj: object) -> int:
    seen: set[int] = set()
    total = 0
    stack = [obj]
    while stack:
        cur = stack.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        total += _aligned(sys.getsizeof(cur))
        if total >= MAX_DEEP_BYTES * 4:
            return total
        if isinstance(cur, dict):
            stack.extend(cur.keys())
            stack.extend(cur.values())
        elif isinstance(cur, (list, tuple, set, frozenset)):
            stack.extend(cur)
    return total


def _check(obj: object, depth: int) -> str | None:
    if depth > _MAX_DEPTH:
        return "nested too deeply"
    if isinstance(obj, dict):
        if len(obj) >= MAX_ENTRIES:
            return f"dict with {len(obj)} entries (limit {MAX_ENTRIES})"
        for k, v in obj.items():
            reason = _check(k, depth + 1) or _check(v, depth + 1)
            if reason:
                return reason
    elif isinstance(obj, (list, tuple, set, frozenset)):
        if len(obj) >= MAX_ENTRIES:
            return f"{type(obj).__name__} with {len(obj)} entries (limit {MAX_ENTRIES})"
        for item in obj:
            reason = _check(item, depth + 1)
            if reason:
                return reason
    elif isinstance(obj, str):
        if len(obj) >= MAX_STR_CHARS:
            return f"string of {len(obj)} characters (limit {MAX_STR_CHARS})"
    elif _aligned(sys.getsizeof(obj)) >= MAX_SCALAR_BYTES:
        return f"{type(obj).__name__} scalar of {sys.getsizeof(obj)} bytes (limit {MAX_SCALAR_BYTES})"
    return None


def size_violation(obj: object) -> str | None:
    """Why ``obj`` fails the METHOD.md size check, or None when it passes."""
    size = deep_size(obj)
    if size >= MAX_DEEP_BYTES:
        return f"deep size {size} bytes (limit {MAX_DEEP_BYTES})"
    return _check(obj, 0)


def structure_violation(obj: object) -> str | None:
    """The part of the size check that JSON keeps exactly (entry counts, string
    lengths, scalar sizes, nesting): the same answer on a value and on its JSON
    parsed back."""
    return _check(obj, 0)


def is_finite(obj: object, _depth: int = 0) -> bool:
    """False when a float NaN/inf hides anywhere in ``obj``."""
    if isinstance(obj, float):
        return math.isfinite(obj)
    if _depth > _MAX_DEPTH:
        return True
    if isinstance(obj, dict):
        return all(is_finite(k, _depth + 1) and is_finite(v, _depth + 1) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return all(is_finite(v, _depth + 1) for v in obj)
    return True
