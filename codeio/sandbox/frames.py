"""Validation of what a sandboxed child sends to its server.

The child runs the code under test, so every byte it writes is hostile until
checked: a frame may be anything the code chose to write on the channel. The
server never acts on a frame before one of these functions has checked its
shape, types, sizes, counts and JSON (finite numbers, bounded nesting). A frame
that fails raises :class:`BadFrame`; the server turns it into a
``sandbox_error`` for that function alone and kills and reaps the child.

What a valid frame can claim is no more than the code could have produced by
returning a value: the server re-checks the limits the child applied (value
length, the size check, finiteness of sampled pairs, reject counts), so a
forged frame cannot get past a check the child was meant to apply.
"""

from __future__ import annotations

from typing import Any

from codeio.sandbox.protocol import ProtocolError, loads_strict
from codeio.sandbox.sizecheck import MAX_DEEP_BYTES, deep_size, is_finite, structure_violation

# Statuses a child may report for a call (timeouts, kills and sandbox errors are
# the server's own findings, never the child's word).
CHILD_CALL_STATUSES = frozenset({"ok", "exception", "invalid_value", "memory", "output_limit"})
SAMPLE_DONE_STATUSES = frozenset({"ok", "exception", "timeout"})
SAMPLE_REJECT_REASONS = frozenset({
    "duplicate", "input_not_dict", "input_not_json", "input_too_large", "input_not_finite",
    "output_none", "output_not_json", "output_too_large", "output_not_finite",
    "generator_exception", "generator_timeout", "generator_output_limit",
    "entry_exception", "entry_timeout", "entry_output_limit",
})
MAX_TYPE_CHARS = 200
MAX_MESSAGE_CHARS = 1000
MAX_TRACEBACK_CHARS = 2000
# A value that passed the child's size check (deep size under 1 KiB as built by
# the code) stays well under twice that once parsed back from JSON (lists built
# by the parser are over-allocated, tuples become lists): the server's re-check
# uses this bound so it never rejects an honest value.
SERVER_DEEP_BYTES = 2 * MAX_DEEP_BYTES


class BadFrame(ProtocolError):
    """The child sent a frame that is not what the protocol allows."""


def parse_json(text: str, allow_nan: bool) -> Any:
    try:
        return loads_strict(text, allow_nan=allow_nan)
    except ProtocolError as exc:
        raise BadFrame(str(exc)) from None


def _dict(frame: Any, what: str) -> dict[str, Any]:
    if not isinstance(frame, dict):
        raise BadFrame(f"{what} is a {type(frame).__name__}, not an object")
    return frame


def _opt_str(frame: dict[str, Any], key: str, limit: int) -> str | None:
    value = frame.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadFrame(f"{key} is not a string")
    return value if len(value) <= limit else value[: limit - 3] + "..."


def _count(value: Any, what: str, upper: int) -> int:
    if type(value) is not int or not 0 <= value <= upper:
        raise BadFrame(f"{what} is not a count in 0..{upper}")
    return value


def value_problem(value_json: str, max_chars: int, check_size: bool, finite: bool) -> str | None:
    """Why a value reported by the child could not have come from the child's own
    checks (None when it could)."""
    if len(value_json) > max_chars:
        return f"value of {len(value_json)} characters (limit {max_chars})"
    value = parse_json(value_json, allow_nan=True)
    if finite and not is_finite(value):
        return "non-finite value"
    if check_size:
        reason = structure_violation(value)
        if reason is None and deep_size(value) >= SERVER_DEEP_BYTES:
            reason = "deep size over the limit"
        if reason is not None:
            return f"value over the size limits ({reason})"
    return None


def call_result(frame: Any, max_chars: int, check_size: bool) -> dict[str, Any]:
    """One call's result as the server passes it on (CallResult field names)."""
    frame = _dict(frame, "result")
    status = frame.get("status")
    if status not in CHILD_CALL_STATUSES:
        raise BadFrame(f"status {str(status)[:40]!r} is not one a child may report")
    out: dict[str, Any] = {"status": status}
    for key, limit in (("error_type", MAX_TYPE_CHARS), ("error_message", MAX_MESSAGE_CHARS),
                       ("traceback", MAX_TRACEBACK_CHARS)):
        text = _opt_str(frame, key, limit)
        if text is not None:
            out[key] = text
    value_json = frame.get("value_json")
    if status == "ok":
        if not isinstance(value_json, str):
            raise BadFrame("an ok result without a value")
        problem = value_problem(value_json, max_chars, check_size, finite=False)
        if problem is not None:
            raise BadFrame(problem)
        out["value_json"] = value_json
    elif value_json is not None:
        raise BadFrame("a value on a failed call")
    duration = frame.get("duration_s", 0.0)
    if type(duration) not in (int, float) or not 0 <= duration < 1e6:
        raise BadFrame("duration is not a finite non-negative number")
    out["duration_s"] = float(duration)
    return out


def load_frame(frame: Any, max_chars: int) -> dict[str, Any] | None:
    """None when the code loaded, else the result that stands for every call."""
    frame = _dict(frame, "load frame")
    state = frame.get("load")
    if state == "ok" and len(frame) == 1:
        return None
    if state != "error":
        raise BadFrame("expected a load frame")
    result = call_result(frame.get("result"), max_chars, check_size=False)
    if result["status"] == "ok":
        raise BadFrame("a failed load with an ok result")
    return result


class SampleTracker:
    """Follows one sampling child's frames and checks each against the job."""

    def __init__(self, max_attempts: int, max_pairs: int, max_chars: int) -> None:
        self.max_attempts = max_attempts
        self.max_pairs = max_pairs
        self.max_chars = max_chars
        self.attempts = 0
        self.pairs: list[list[str]] = []
        self._inputs: set[str] = set()
        self.loaded = False

    def feed(self, frame: Any) -> dict[str, Any] | None:
        """Take one frame; return the final summary when sampling is over."""
        frame = _dict(frame, "sampling frame")
        if not self.loaded:
            failure = load_frame(frame, self.max_chars)
            if failure is not None:
                return {"status": failure["status"], "error_type": failure.get("error_type"),
                        "error_message": failure.get("error_message"), "attempts": 0, "rejected": {}}
            self.loaded = True
            return None
        if "tick" in frame:
            if len(frame) != 1 or frame["tick"] != self.attempts + 1 or self.attempts >= self.max_attempts:
                raise BadFrame("attempt counter out of sequence")
            self.attempts += 1
            return None
        if "pair" in frame:
            self._pair(frame)
            return None
        if frame.get("done") is True:
            return self._done(frame)
        raise BadFrame("unknown sampling frame")

    def _pair(self, frame: dict[str, Any]) -> None:
        pair = frame["pair"]
        if len(frame) != 1 or not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(p, str) for p in pair):
            raise BadFrame("a pair is not two strings")
        if len(self.pairs) >= self.max_pairs or len(self.pairs) >= self.attempts:
            raise BadFrame("more pairs than attempts or than asked for")
        input_json, output_json = pair
        if input_json in self._inputs:
            raise BadFrame("a duplicate input")
        problem = value_problem(input_json, self.max_chars, check_size=True, finite=True)
        if problem is None and not isinstance(parse_json(input_json, allow_nan=True), dict):
            problem = "input is not an object"
        if problem is None:
            problem = value_problem(output_json, self.max_chars, check_size=True, finite=True)
        if problem is None and output_json == "null":
            problem = "output is None"
        if problem is not None:
            raise BadFrame(f"pair: {problem}")
        self._inputs.add(input_json)
        self.pairs.append([input_json, output_json])

    def _done(self, frame: dict[str, Any]) -> dict[str, Any]:
        status = frame.get("status")
        if status not in SAMPLE_DONE_STATUSES:
            raise BadFrame("sampling status is not one a child may report")
        if _count(frame.get("attempts"), "attempts", self.max_attempts) != self.attempts:
            raise BadFrame("attempts do not match the attempts seen")
        rejected = _dict(frame.get("rejected"), "rejects")
        counts: dict[str, int] = {}
        for reason, n in rejected.items():
            if reason not in SAMPLE_REJECT_REASONS:
                raise BadFrame("unknown reject reason")
            counts[reason] = _count(n, "reject count", self.attempts)
        if sum(counts.values()) + len(self.pairs) > self.attempts:
            raise BadFrame("more rejects and pairs than attempts")
        return {"status": status, "attempts": self.attempts, "rejected": counts,
                "error_type": _opt_str(frame, "error_type", MAX_TYPE_CHARS),
                "error_message": _opt_str(frame, "error_message", MAX_MESSAGE_CHARS)}
