"""The offline teacher: explanations derived from a real, traced execution.

Without an LLM endpoint the pipeline still produces complete samples. This
teacher runs the function on the pair's input inside the sandbox (never in this
process: the code is untrusted) under a small ``sys.settrace`` tracer limited to
the function's own code, and turns the trace into a step-by-step explanation:
the entry call, the helper functions it went through (call counts, recursion
depth, first calls with their results), loop summaries (iterations, the state
at the first and last recorded passes), the final local values and the return
value. Output prediction ends with ``{"output": <value>}``; input prediction
walks from the pair's true input (the candidate) to the given output and ends
with ``{"input": {...}}``.

Every text starts with :data:`OFFLINE_BANNER`, so no record it writes can pass
for a model's answer. The text depends only on the code and the values: no
times, no memory addresses (reprs are sanitized), no hash-order artefacts.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any, Sequence

from codeio.answers import values_match
from codeio.execution import CallResult, Executor, Limits, RunRequest

TEACHER_NAME = "offline"
OFFLINE_BANNER = (
    "[offline teacher] This explanation was written by codeio's offline teacher, not by a language model: "
    "it follows a real, traced execution of the reference code."
)
REVISION_NOTE = (
    "The previous answer was not accepted, so the answer is derived again from scratch by following the "
    "computation step by step."
)
TRACE_ENTRY = "_codeio_offline_trace"

# Tracer budgets (inside the sandbox): line events before details stop, loop passes
# whose state is still snapshotted, calls sampled per function, variables per snapshot.
MAX_LINE_EVENTS = 200_000
MAX_SNAPSHOT_PASS = 1_000
CALL_SAMPLES = 3
SNAPSHOT_VARS = 8
REPR_CHARS = 80

# Explanation budgets.
MAX_FUNCTIONS_SHOWN = 8
MAX_LOOPS_SHOWN = 8
SOURCE_LINE_CHARS = 70

# Line ends as Python's tokenizer sees them (str.splitlines also splits on \x0c, \x85, ...).
SOURCE_NEWLINE_PATTERN = re.compile(r"\r\n|\r|\n")
# Memory addresses in reprs ("<Node object at 0x7f3a...>", "0x55d2c3a1b2c0").
ADDRESS_PATTERN = re.compile(r"\s+at\s+0x[0-9a-fA-F]+")
HEX_ADDRESS_PATTERN = re.compile(r"0x[0-9a-fA-F]{8,}")
# Line breaks inside a repr (numpy arrays print one row per line) become single spaces.
REPR_LINE_BREAK_PATTERN = re.compile(r"\s*\n\s*")
COMPREHENSION_NAMES = {
    "<listcomp>": "a list comprehension",
    "<dictcomp>": "a dict comprehension",
    "<setcomp>": "a set comprehension",
    "<genexpr>": "a generator expression",
    "<lambda>": "a lambda",
}

# The tracer appended to the function's code. Placeholders are filled with
# Python literals computed from the AST in the parent. Inside the sandbox it only
# needs sys and json (both preloaded); it never calls user-defined __repr__.
TRACER_SOURCE = r'''


# ---- codeio offline teacher: execution tracer (not part of the function) ----
def _codeio_offline_trace(**_codeio_kwargs):
    import json as _json
    import sys as _sys

    main_lines = __MAIN_LINES__
    loops = __LOOPS__  # header line -> [first body line, last body line]
    max_events = __MAX_EVENTS__
    max_snapshot_pass = __MAX_SNAPSHOT_PASS__
    call_samples = __CALL_SAMPLES__
    snapshot_vars = __SNAPSHOT_VARS__
    repr_chars = __REPR_CHARS__
    # Every call traces a fresh load of the function, exactly as a child of its
    # own would: the first call of a child uses the namespace the child loaded;
    # later calls of a batch run the code again in a new namespace, so module
    # state (caches, counters, mutable defaults) never leaks from an earlier call.
    # The random streams the call starts with are the ones the child seeded.
    namespace = globals()
    if namespace.get("_codeio_loaded_used"):
        namespace = _codeio_fresh_namespace(namespace)
    else:
        namespace["_codeio_loaded_used"] = True
    module_name = namespace.get("__name__")
    target = namespace.get("main_solution")
    main_code = getattr(target, "__code__", None)

    functions = {}
    order = []
    header_hits = {}
    passes = {}
    loop_snaps = {}
    state = {"events": 0, "truncated": False, "depth": 0, "main_locals": None}

    def cut(text, budget):
        return text if len(text) <= budget else text[: max(budget - 3, 1)] + "..."

    def items_text(pieces, total, opening, closing, budget):
        out = []
        used = len(opening) + len(closing)
        for piece in pieces:
            if out and used + len(piece) > budget:
                out.append("... (%d in all)" % total)
                break
            out.append(piece)
            used += len(piece) + 2
        return opening + ", ".join(out) + closing

    def show(value, depth, budget):
        kind = type(value)
        if value is None or kind in (bool, float):
            return repr(value)
        if kind is int:
            if value.bit_length() > 200:
                return "<int of %d bits>" % value.bit_length()
            return repr(value)
        if kind is str:
            return repr(value) if len(value) <= budget else repr(value[:budget]) + "..."
        if depth >= 4:
            return "..."
        inner = max(12, budget // 2)
        if kind is list:
            return items_text((show(v, depth + 1, inner) for v in value), len(value), "[", "]", budget)
        if kind is tuple:
            if len(value) == 1:
                return "(" + show(value[0], depth + 1, inner) + ",)"
            return items_text((show(v, depth + 1, inner) for v in value), len(value), "(", ")", budget)
        if kind is dict:
            pieces = (show(k, depth + 1, inner) + ": " + show(v, depth + 1, inner) for k, v in value.items())
            return items_text(pieces, len(value), "{", "}", budget)
        if kind in (set, frozenset):
            if not value:
                return "set()" if kind is set else "frozenset()"
            if len(value) > 50:
                return "<%s of %d items>" % (kind.__name__, len(value))
            text = items_text(iter(sorted(show(v, depth + 1, inner) for v in value)), len(value), "{", "}", budget)
            return text if kind is set else "frozenset(" + text + ")"
        if getattr(kind, "__module__", None) == module_name:
            attributes = getattr(value, "__dict__", None)
            if isinstance(attributes, dict) and depth < 2:
                pieces = ("%s=%s" % (k, show(v, depth + 1, inner)) for k, v in attributes.items())
                return items_text(pieces, len(attributes), kind.__name__ + "(", ")", budget)
            return "<%s object>" % kind.__name__
        if callable(value) and hasattr(value, "__name__"):
            return "<%s %s>" % (kind.__name__, value.__name__)
        if str(getattr(kind, "__module__", "")).startswith("numpy") and getattr(value, "shape", None) == ():
            try:
                return repr(value.item())
            except Exception:
                return "<%s>" % kind.__name__
        try:
            return cut(repr(value), budget)
        except Exception:
            return "<%s object>" % kind.__name__

    def shown(value):
        try:
            return cut(show(value, 0, repr_chars), 2 * repr_chars)
        except Exception as error:
            return "<unprintable %s: %s>" % (type(value).__name__, type(error).__name__)

    def snapshot(frame, names=None):
        out = {}
        local = frame.f_locals
        items = local.items() if names is None else ((n, local[n]) for n in names if n in local)
        for name, value in items:
            if name == "self" or name.startswith("__") or name.startswith("_codeio"):
                continue
            if isinstance(value, type) or type(value).__name__ in ("module", "function", "builtin_function_or_method"):
                continue
            out[name] = shown(value)
            if len(out) >= snapshot_vars:
                break
        return out

    def record_pass(frame, header):
        count = passes.get(header, 0) + 1
        passes[header] = count
        if count > max_snapshot_pass:
            return
        snaps = loop_snaps.setdefault(header, [])
        if count <= 2 or len(snaps) < 3:
            snaps.append([count, snapshot(frame)])
        else:
            snaps[2] = [count, snapshot(frame)]

    def leave(frame, value, sample):
        code = frame.f_code
        record = functions.get("%s:%d" % (code.co_qualname, code.co_firstlineno))
        state["depth"] -= 1
        if record is not None:
            record["open"] -= 1
        if sample is not None and sample["ret"] is None:
            sample["ret"] = shown(value)
        if code is main_code and state["depth"] == 0:
            state["main_locals"] = snapshot(frame)

    def make_local(sample):
        previous = [0]

        # A pass of a loop starts when a line of its body runs right after its header line.
        def local_trace(frame, event, arg):
            if event == "line":
                state["events"] += 1
                if state["events"] > max_events:
                    state["truncated"] = True
                    return None
                line = frame.f_lineno
                before = previous[0]
                previous[0] = line
                if line in loops:
                    header_hits[line] = header_hits.get(line, 0) + 1
                span = loops.get(before)
                if span is not None and span[0] <= line <= span[1]:
                    record_pass(frame, before)
            elif event == "return":
                leave(frame, arg, sample)
            return local_trace

        return local_trace

    def global_trace(frame, event, arg):
        if event != "call" or state["truncated"]:
            return None
        code = frame.f_code
        if frame.f_globals is not namespace or code.co_firstlineno > main_lines:
            return None
        key = "%s:%d" % (code.co_qualname, code.co_firstlineno)
        record = functions.get(key)
        if record is None:
            record = {"name": code.co_name, "qualname": code.co_qualname, "line": code.co_firstlineno,
                      "generator": bool(code.co_flags & 0x2A0), "calls": 0, "open": 0, "max_depth": 0,
                      "samples": []}
            functions[key] = record
            order.append(key)
        record["calls"] += 1
        record["open"] += 1
        record["max_depth"] = max(record["max_depth"], record["open"])
        state["depth"] += 1
        sample = None
        if len(record["samples"]) < call_samples and not code.co_name.startswith("<") and not record["generator"]:
            count = code.co_argcount + code.co_kwonlyargcount + bool(code.co_flags & 0x04) + bool(code.co_flags & 0x08)
            sample = {"args": snapshot(frame, code.co_varnames[:count]), "ret": None}
            record["samples"].append(sample)
        return make_local(sample)

    error = None
    result = None
    _sys.settrace(global_trace)
    try:
        result = target(**_codeio_kwargs)
    except Exception as exc:
        error = {"type": type(exc).__name__, "message": cut(str(exc), 2 * repr_chars)}
    finally:
        _sys.settrace(None)
    result_json = None
    if error is None:
        try:
            result_json = _json.dumps(result)
        except (TypeError, ValueError) as exc:
            error = {"type": "NotJSONSerializable", "message": cut(str(exc), 2 * repr_chars)}
    return {
        "result_json": result_json,
        "error": error,
        "functions": [{k: v for k, v in functions[key].items() if k != "open"} for key in order],
        "header_hits": {str(line): header_hits.get(line, 0) for line in sorted(loops)},
        "passes": {str(line): passes.get(line, 0) for line in sorted(loops)},
        "loop_snaps": {str(line): snaps for line, snaps in sorted(loop_snaps.items())},
        "main_locals": state["main_locals"],
        "events": state["events"],
        "truncated": state["truncated"],
    }


def _codeio_fresh_namespace(loaded):
    import sys as _sys

    code = loaded.get("_codeio_main_compiled")
    if code is None:
        code = compile(__MAIN_SOURCE__, _codeio_offline_trace.__code__.co_filename, "exec")
        loaded["_codeio_main_compiled"] = code
    py_random = _sys.modules.get("random")
    np_random = _sys.modules.get("numpy.random")
    py_state = py_random.getstate() if py_random is not None else None
    np_state = np_random.get_state() if np_random is not None else None
    fresh = {"__name__": loaded.get("__name__"), "__builtins__": loaded.get("__builtins__")}
    try:
        exec(code, fresh)
    finally:
        if py_state is not None:
            py_random.setstate(py_state)
        if np_state is not None:
            np_random.set_state(np_state)
    return fresh
'''


@dataclass(frozen=True)
class OfflineAnswer:
    text: str
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class OfflineQuestion:
    """One instance to answer: the task, the pair, and the feedback of a revision round."""

    task: str
    input_json: str
    output_json: str
    feedback: str | None = None


@dataclass(frozen=True)
class LoopInfo:
    header_line: int
    body_first: int  # first and last line of the body (the else clause is not part of it)
    body_last: int
    source: str  # the header line, stripped and shortened
    function: str | None  # qualified name of the enclosing function, None at module level


@dataclass(frozen=True)
class CodeMap:
    lines: int
    loops: tuple[LoopInfo, ...]


class TraceError(ValueError):
    """The function could not be traced (syntax, execution failure, sandbox)."""


class OfflineTeacher:
    """Deterministic explanations from traced executions. Thread-safe (no state
    besides the executor, which is)."""

    name = TEACHER_NAME

    def __init__(self, executor: Executor, limits: Limits | None = None) -> None:
        self.executor = executor
        self.limits = limits or Limits()

    def answer(
        self, task: str, main_code: str, input_json: str, output_json: str, feedback: str | None = None
    ) -> OfflineAnswer:
        return self.answer_batch(main_code, [OfflineQuestion(task, input_json, output_json, feedback)])[0]

    def answer_batch(self, main_code: str, questions: Sequence[OfflineQuestion]) -> list[OfflineAnswer]:
        """Answers for many questions about one function, from one sandbox batch:
        each distinct input is traced once, in a fresh load of the code, so every
        answer reads exactly as if it had been traced on its own."""
        answers: list[OfflineAnswer | None] = [None] * len(questions)
        parsed: dict[int, tuple[dict[str, Any], Any]] = {}
        for index, question in enumerate(questions):
            if question.task not in ("output", "input"):
                answers[index] = OfflineAnswer("", False, f"unknown task {question.task!r}")
                continue
            try:
                inputs = json.loads(question.input_json)
                expected = json.loads(question.output_json)
            except (TypeError, ValueError) as error:
                answers[index] = OfflineAnswer("", False, f"bad pair JSON: {error}")
                continue
            if not isinstance(inputs, dict):
                answers[index] = OfflineAnswer("", False, "the input of a pair must be a JSON object of keyword arguments")
                continue
            parsed[index] = (inputs, expected)
        if parsed:
            try:
                code_map = analyse_code(main_code)
            except TraceError as error:
                failure = OfflineAnswer("", False, f"offline teacher could not trace the function: {error}")
                for index in parsed:
                    answers[index] = failure
                return _filled(answers)
            distinct = list(dict.fromkeys(questions[index].input_json for index in parsed))
            traces = self.trace_many(main_code, code_map, distinct)
            for index, (inputs, expected) in parsed.items():
                question = questions[index]
                answers[index] = _written(question, code_map, inputs, expected, traces[question.input_json])
        return _filled(answers)

    def trace(self, main_code: str, code_map: CodeMap, input_json: str) -> dict[str, Any]:
        found = self.trace_many(main_code, code_map, [input_json])[input_json]
        if isinstance(found, TraceError):
            raise found
        return found

    def trace_many(self, main_code: str, code_map: CodeMap,
                   inputs_json: Sequence[str]) -> dict[str, dict[str, Any] | TraceError]:
        """One sandbox batch for all the inputs; a fatal call (timeout, crash) costs
        only its own trace: the rest go on in a fresh child."""
        harness = build_harness(main_code, code_map)
        request = RunRequest(code=harness, entry=TRACE_ENTRY, inputs_json=tuple(inputs_json), check_size=False,
                             limits=self.limits, stop_on_fatal=False)
        results = self.executor.run(request)
        if len(results) != len(inputs_json):
            error = TraceError("the executor returned no result")
            return {input_json: error for input_json in inputs_json}
        return {input_json: _checked_trace(call) for input_json, call in zip(inputs_json, results)}


def _filled(answers: list[OfflineAnswer | None]) -> list[OfflineAnswer]:
    """One answer per question, in order (every slot is set above; this keeps the
    positions aligned even if that ever changes)."""
    return [a if a is not None else OfflineAnswer("", False, "not answered") for a in answers]


def _checked_trace(call: CallResult) -> dict[str, Any] | TraceError:
    if not call.ok or call.value_json is None:
        return TraceError(f"tracing run failed: {call.describe()}")
    try:
        trace = json.loads(call.value_json)
    except ValueError as error:
        return TraceError(f"trace is not JSON: {error}")
    if not isinstance(trace, dict):
        return TraceError("trace is not an object")
    if trace.get("error"):
        err = trace["error"]
        try:
            return TraceError(f"main_solution raised {err.get('type')}: {err.get('message')}")
        except AttributeError as error:  # a tampered trace
            return TraceError(f"malformed trace error: {type(error).__name__}")
    if trace.get("result_json") is None:
        return TraceError("main_solution returned nothing the trace could record")
    return trace


def _written(question: OfflineQuestion, code_map: CodeMap, inputs: dict[str, Any], expected: Any,
             trace: dict[str, Any] | TraceError) -> OfflineAnswer:
    if isinstance(trace, TraceError):
        return OfflineAnswer("", False, f"offline teacher could not trace the function: {trace}")
    try:
        result = json.loads(trace["result_json"])
        text = write_explanation(question.task, code_map, inputs, expected, result, trace,
                                 revision=question.feedback is not None)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        # The trace comes back from untrusted code: a tampered one is a failure, not a crash.
        return OfflineAnswer("", False, f"offline teacher got a malformed trace: {type(error).__name__}: {error}")
    return OfflineAnswer(text, True, None)


# ---------------------------------------------------------------------------
# code analysis (parent side, AST only: nothing is executed here)


def analyse_code(main_code: str) -> CodeMap:
    try:
        tree = ast.parse(main_code)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        raise TraceError(f"the code does not parse: {error}") from None
    source_lines = SOURCE_NEWLINE_PATTERN.split(main_code)
    if source_lines and source_lines[-1] == "":
        source_lines.pop()
    loops: list[LoopInfo] = []

    def visit(node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, [*scope, child.name, "<locals>"])
                continue
            if isinstance(child, ast.ClassDef):
                visit(child, [*scope, child.name])
                continue
            if isinstance(child, (ast.For, ast.While, ast.AsyncFor)):
                first = min(statement.lineno for statement in child.body)
                last = max(getattr(statement, "end_lineno", None) or statement.lineno for statement in child.body)
                if first > child.lineno:  # a one-line loop gives no separate body line events
                    text = source_lines[child.lineno - 1].strip() if child.lineno <= len(source_lines) else ""
                    qual = ".".join(part for part in scope if part != "<locals>") or None
                    loops.append(LoopInfo(child.lineno, first, last, _shorten(text, SOURCE_LINE_CHARS), qual))
            visit(child, scope)

    visit(tree, [])
    loops.sort(key=lambda loop: loop.header_line)
    return CodeMap(lines=len(source_lines), loops=tuple(loops))


def build_harness(main_code: str, code_map: CodeMap) -> str:
    loops = {loop.header_line: [loop.body_first, loop.body_last] for loop in code_map.loops}
    tracer = (
        TRACER_SOURCE.replace("__MAIN_LINES__", str(code_map.lines))
        .replace("__LOOPS__", repr(loops))
        .replace("__MAX_EVENTS__", str(MAX_LINE_EVENTS))
        .replace("__MAX_SNAPSHOT_PASS__", str(MAX_SNAPSHOT_PASS))
        .replace("__CALL_SAMPLES__", str(CALL_SAMPLES))
        .replace("__SNAPSHOT_VARS__", str(SNAPSHOT_VARS))
        .replace("__REPR_CHARS__", str(REPR_CHARS))
        .replace("__MAIN_SOURCE__", repr(main_code.rstrip("\n") + "\n"))  # last: the code may contain any text
    )
    # The function's lines keep their numbers: the tracer only comes after them.
    return main_code.rstrip("\n") + "\n" + tracer


# ---------------------------------------------------------------------------
# writing


def sanitize(text: str) -> str:
    """Drop memory addresses so the same execution always reads the same, and
    keep every value on one line."""
    text = HEX_ADDRESS_PATTERN.sub("0x...", ADDRESS_PATTERN.sub("", text))
    return REPR_LINE_BREAK_PATTERN.sub(" ", text)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _assignments(values: dict[str, str]) -> str:
    return ", ".join(f"{name} = {sanitize(text)}" for name, text in values.items())


def _times(count: int) -> str:
    return "once" if count == 1 else "twice" if count == 2 else f"{count} times"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _changing(recorded: list[list[Any]]) -> list[tuple[int, dict[str, str]]]:
    """Loop states keep only the variables that change between the recorded
    passes (all of them when there is a single pass or nothing changes)."""
    states = [(int(number), dict(values)) for number, values in recorded]
    if len(states) < 2:
        return states
    names: list[str] = []
    for _, values in states:
        names.extend(name for name in values if name not in names)
    changing = [n for n in names if len({values.get(n) for _, values in states}) > 1]
    if not changing:
        return states
    return [(number, {n: values[n] for n in changing if n in values}) for number, values in states]


def _function_label(record: dict[str, Any]) -> str:
    name = record["name"]
    if name in COMPREHENSION_NAMES:
        return f"{COMPREHENSION_NAMES[name]} (line {record['line']})"
    qual = record["qualname"].replace(".<locals>", "")
    return f"`{qual}`"


def _trace_steps(code_map: CodeMap, trace: dict[str, Any], inputs: dict[str, Any]) -> list[str]:
    steps: list[str] = []
    given = ", ".join(f"{name} = {json.dumps(value)}" for name, value in inputs.items()) or "no arguments"
    steps.append(f"`main_solution` is called with {given}.")

    helpers = [r for r in trace.get("functions", []) if r["qualname"] != "main_solution"]
    if helpers:
        parts: list[str] = []
        for record in helpers[:MAX_FUNCTIONS_SHOWN]:
            label = _function_label(record)
            verb = "is resumed" if record.get("generator") else "runs" if record["name"] in COMPREHENSION_NAMES else "is called"
            piece = f"{label} {verb} {_times(record['calls'])}"
            if record.get("max_depth", 0) > 1:
                piece += f", recursing up to {record['max_depth']} levels deep"
            samples = [s for s in record.get("samples", []) if s.get("args") is not None]
            if samples and not record.get("generator"):
                shown = []
                for sample in samples:
                    args = _assignments(sample["args"]) or "no arguments"
                    if record["name"] == "__init__":
                        shown.append(f"it sets up an object from {args}")
                        continue
                    ret = sanitize(sample["ret"]) if sample.get("ret") is not None else "no recorded value"
                    shown.append(f"with {args} it returns {ret}")
                piece += "; " + "; ".join(shown)
            parts.append(piece[:1].upper() + piece[1:] + ".")
        if len(helpers) > MAX_FUNCTIONS_SHOWN:
            parts.append(f"{len(helpers) - MAX_FUNCTIONS_SHOWN} more helper functions are used along the way.")
        steps.append("On the way, the computation uses these pieces: " + " ".join(parts))

    hits = trace.get("header_hits", {})
    pass_counts = trace.get("passes", {})
    snaps = trace.get("loop_snaps", {})
    loops_shown = 0
    for loop in code_map.loops:
        header_hits = int(hits.get(str(loop.header_line), 0))
        passes = int(pass_counts.get(str(loop.header_line), 0))
        if header_hits == 0 and passes == 0:
            continue  # this loop never ran for this input
        loops_shown += 1
        if loops_shown > MAX_LOOPS_SHOWN:
            continue
        where = f" in `{loop.function}`" if loop.function else ""
        if passes == 0:
            steps.append(f"The loop `{loop.source}` (line {loop.header_line}{where}) is reached, but its body never runs.")
            continue
        text = f"The loop `{loop.source}` (line {loop.header_line}{where}) runs its body {_times(passes)} in total."
        recorded = _changing(snaps.get(str(loop.header_line), []))
        states = []
        for number, values in recorded:
            if not values:
                continue
            label = f"at the start of the {_ordinal(number)} pass"
            if number == passes and number > 1:
                label += " (the last one)"
            states.append(f"{label}: {_assignments(values)}")
        if states:
            text += " State " + "; ".join(states) + "."
        steps.append(text)
    if loops_shown > MAX_LOOPS_SHOWN:
        steps.append(f"{loops_shown - MAX_LOOPS_SHOWN} more loops run in the same way.")
    if not code_map.loops or loops_shown == 0:
        steps.append("No loop statement runs for this input; the value is computed directly.")

    final_locals = trace.get("main_locals") or {}
    if final_locals:
        steps.append(f"Just before `main_solution` returns, its local values are: {_assignments(final_locals)}.")
    if trace.get("truncated"):
        steps.append(
            f"(The trace stopped recording details after {MAX_LINE_EVENTS} executed lines; the counts above are "
            "lower bounds.)"
        )
    return steps


def write_explanation(
    task: str,
    code_map: CodeMap,
    inputs: dict[str, Any],
    expected: Any,
    result: Any,
    trace: dict[str, Any],
    revision: bool = False,
) -> str:
    lines = [OFFLINE_BANNER, ""]
    if revision:
        lines += [REVISION_NOTE, ""]
    result_text = json.dumps(result)
    if task == "output":
        lines.append(
            f"We need the value that `main_solution` returns for the input {json.dumps(inputs)}, "
            "so let us follow the computation step by step."
        )
    else:
        lines.append(
            f"We need an input for which `main_solution` returns {json.dumps(expected)}. "
            f"Let us try the candidate input {json.dumps(inputs)} and follow the computation step by step "
            "to check that it leads to this output."
        )
    lines.append("")
    steps = _trace_steps(code_map, trace, inputs)
    steps.append(f"`main_solution` returns {result_text}.")
    for number, step in enumerate(steps, start=1):
        lines.append(f"Step {number}. {step}")
    lines.append("")
    if task == "output":
        lines.append(f"So the output is {result_text}.")
        lines.append("")
        lines.append(json.dumps({"output": result}))
    else:
        if values_match(result, expected):
            lines.append(f"The result {result_text} matches the given output, so this input is feasible.")
        else:
            lines.append(
                f"The result {result_text} is what this candidate input produces; the given output is "
                f"{json.dumps(expected)}."
            )
        lines.append("")
        lines.append(json.dumps({"input": inputs}))
    return "\n".join(lines)


__all__ = ["OFFLINE_BANNER", "OfflineAnswer", "OfflineQuestion", "OfflineTeacher", "TEACHER_NAME", "TraceError", "analyse_code", "build_harness"]
