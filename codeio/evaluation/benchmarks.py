"""Benchmark files -> questions, as ``INSTANCE`` records.

Three formats (``KIND:PATH``, one JSON object per line):

- ``cruxeval``: rows ``code, input, output, id``. ``code`` defines ``def f(...)``;
  ``input`` is the positional arguments as Python literals (``"[1, 2], 3"``);
  ``output`` is a Python literal. Values may be tuples or sets, so these
  questions are judged by Python value (``format: python`` in their origin).
  Optional ``category`` / ``difficulty`` group the scores. Values are stored as
  JSON where JSON holds them exactly, and the stored code gets a
  ``main_solution`` that calls ``f``, so the offline teacher can answer them;
  the prompt shows the row's own code and literals.
- ``leetcode-o``: one problem per row: ``id``, ``difficulty``, optional
  ``category``, ``problem_description``, ``io_requirements``, ``refcode``
  (defines ``main_solution``) and ``examples`` (``[{"input": {...}, "output":
  ...}]``, JSON values). Each example gives one output- and one
  input-prediction question; a problem is solved when all its questions are.
- ``unified``: the pipeline's unified rows (``problem_description``,
  ``io_requirements``, ``refcode``, ``ios``, ``category``...), both tasks.

A question is an instance record: the prompt is built from the same templates
as synthesis, ``function_id`` is the problem, ``origin`` carries benchmark,
category, difficulty and value format. Nothing from the file is executed here;
Python literals are read with ``ast.literal_eval`` only.
"""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codeio import prompting
from codeio.records import dumps, reject, stable_id

KINDS = ("cruxeval", "leetcode-o", "unified")
PYTHON, JSON = "python", "json"
TASKS = ("output", "input")
ENTRY = "main_solution"
CRUXEVAL_ENTRY = "f"
# Appended to the stored code (not to the prompt): the pipeline's entry point, so the
# offline teacher traces a CRUXEval function as it traces any other.
CRUXEVAL_MAIN = f"\n\ndef {ENTRY}(**arguments):\n    return {CRUXEVAL_ENTRY}(**arguments)\n"
NO_GROUP = "-"
CRUXEVAL_STATEMENT = ("The Python function `f` in the reference code below is called with the arguments given "
                      "by parameter name.")
CRUXEVAL_IO = ("Input: the arguments of `f`, as a dictionary from parameter name to value ({params}). "
               "Output: the value `f` returns. Values are Python literals: strings in quotes, tuples as (1, 2), "
               "sets as {{1, 2}}, True/False/None; write your answer the same way.")


class BenchmarkSpecError(ValueError):
    """A --benchmark value that is not KIND:PATH with a known kind and a readable file."""


@dataclass(frozen=True)
class BenchmarkSpec:
    kind: str
    path: str

    @property
    def text(self) -> str:
        return f"{self.kind}:{self.path}"


@dataclass
class Benchmark:
    spec: BenchmarkSpec
    sha256: str  # of the file's bytes: the benchmark's identity in lineage
    rows: int = 0  # rows read (after the limit)
    questions: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, str]] = field(default_factory=list)  # rows that give no question, with a reason


def parse_benchmark_spec(text: str) -> BenchmarkSpec:
    kind, sep, path = (text or "").partition(":")
    if not sep or kind not in KINDS or not path:
        raise BenchmarkSpecError(f"--benchmark must be KIND:PATH with KIND one of {', '.join(KINDS)}; got {text!r}")
    if not Path(path).expanduser().is_file():
        raise BenchmarkSpecError(f"benchmark file {path} does not exist")
    return BenchmarkSpec(kind, str(Path(path).expanduser().resolve()))


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_benchmark(spec: BenchmarkSpec, templates: prompting.PromptTemplates, limit: int | None = None,
                   placement: str = "prompt") -> Benchmark:
    """All questions of the file (the first ``limit`` rows); rows that give none
    are rejects with a reason, so rows in = rows with questions + rejects."""
    bench = Benchmark(spec, file_sha256(spec.path))
    with open(spec.path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if limit is not None and bench.rows >= limit:
                break
            bench.rows += 1
            row_ref = f"{Path(spec.path).name}:{number}"
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise RowError("not_an_object", "a row must be a JSON object")
                if spec.kind == "cruxeval":
                    questions = cruxeval_questions(row, number, bench, templates)
                else:
                    questions = json_questions(row, number, bench, templates, placement)
            except json.JSONDecodeError as error:
                bench.rejects.append(reject(row_ref, "bad_json", str(error)))
                continue
            except RowError as error:
                bench.rejects.append(reject(row_ref, error.reason, error.detail))
                continue
            bench.questions.extend(questions)
    return bench


class RowError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def _origin(bench: Benchmark, number: int, item_id: str, row: dict[str, Any], value_format: str) -> dict[str, Any]:
    return {"benchmark": bench.spec.kind, "path": bench.spec.path, "sha256": bench.sha256, "row": number,
            "item_id": item_id, "category": str(row.get("category") or NO_GROUP),
            "difficulty": str(row.get("difficulty") or NO_GROUP), "format": value_format}


def _question(bench: Benchmark, origin: dict[str, Any], example: int, task: str, messages: list[dict[str, str]],
              code: str, input_text: str, output_text: str, templates: prompting.PromptTemplates,
              placement: str) -> dict[str, Any]:
    item_id = origin["item_id"]
    return {
        "instance_id": stable_id("eval-question", bench.sha256, origin["row"], example, task, templates.label, messages),
        "function_id": f"{bench.spec.kind}:{item_id}",
        "source_id": bench.sha256,
        "pair_id": f"{item_id}#{example}",
        "pair_index": example,
        "task": task,
        "messages": dumps(messages),
        "template_version": templates.label,
        "variant": placement,
        "main_code": code,
        "input": input_text,
        "output": output_text,
        "origin": dumps(origin),
    }


# -- JSON benchmarks (leetcode-o, unified) ---------------------------------------------


def json_questions(row: dict[str, Any], number: int, bench: Benchmark, templates: prompting.PromptTemplates,
                   placement: str) -> list[dict[str, Any]]:
    code = row.get("refcode")
    if not isinstance(code, str) or not code.strip():
        raise RowError("missing_field", "no refcode")
    if (row.get("funcname") or ENTRY) != ENTRY:
        raise RowError("unsupported_entry", f"the entry point must be {ENTRY}, got {row.get('funcname')!r}")
    examples = row.get("examples") if bench.spec.kind == "leetcode-o" else row.get("ios")
    if examples is None and bench.spec.kind == "leetcode-o":
        examples = row.get("ios")
    if not isinstance(examples, list) or not examples:
        raise RowError("missing_field", "no examples" if bench.spec.kind == "leetcode-o" else "no ios")
    meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
    item_id = str(row.get("id") or row.get("problem_id") or meta.get("id") or f"row{number}")
    origin = _origin(bench, number, item_id, row, JSON)
    out = []
    for index, example in enumerate(examples):
        if not isinstance(example, dict) or "input" not in example or "output" not in example:
            raise RowError("bad_example", f"example {index} lacks input or output")
        if not isinstance(example["input"], dict):
            raise RowError("bad_example", f"example {index}: the input must be an object of keyword arguments")
        input_text, output_text = dumps(example["input"]), dumps(example["output"])
        for task in TASKS:
            messages = prompting.build_prediction_messages(
                task=task, problem_statement=str(row.get("problem_description") or ""),
                io_description=str(row.get("io_requirements") or ""),
                given_json_text=input_text if task == "output" else output_text, main_code=code,
                placement=placement, templates=templates)
            out.append(_question(bench, origin, index, task, messages, code, input_text, output_text, templates,
                                 placement))
    return out


# -- CRUXEval ----------------------------------------------------------------------------


def cruxeval_questions(row: dict[str, Any], number: int, bench: Benchmark,
                       templates: prompting.PromptTemplates) -> list[dict[str, Any]]:
    for name in ("code", "input", "output"):
        if not isinstance(row.get(name), str):
            raise RowError("missing_field", f"no {name} string")
    code, item_id = row["code"], str(row.get("id") or f"row{number}")
    params = cruxeval_parameters(code)
    arguments = cruxeval_arguments(row["input"], params)
    try:
        ast.literal_eval(row["output"].strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as error:
        raise RowError("output_not_literal", f"{type(error).__name__}: {error}") from None
    input_text = "{" + ", ".join(f"{name!r}: {source}" for name, source in arguments) + "}"
    output_text = row["output"].strip()
    origin = _origin(bench, number, item_id, row, PYTHON)
    io_description = CRUXEVAL_IO.format(params=", ".join(params))
    # stored values are JSON where JSON holds them exactly (then the offline teacher can answer too),
    # else Python literals; read_value tells them apart
    stored_input = json_text(ast.literal_eval(input_text)) or input_text
    stored_output = json_text(ast.literal_eval(output_text)) or output_text
    out = []
    for task in TASKS:
        messages = python_prediction_messages(task, code, io_description,
                                              input_text if task == "output" else output_text, templates)
        out.append(_question(bench, origin, 0, task, messages, code + CRUXEVAL_MAIN, stored_input, stored_output,
                             templates, "prompt"))
    return out


def json_text(value: Any) -> str | None:
    """JSON of ``value`` when it reads back as the same Python value (no tuples,
    sets, non-string keys or non-finite floats), else None."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return None
    return text if json.loads(text) == value else None


def read_value(text: str) -> Any:
    """A stored CRUXEval value: JSON, else a Python literal (``ast.literal_eval`` only).
    Where both parse, they mean the same value."""
    try:
        return json.loads(text)
    except ValueError:
        return ast.literal_eval(text)


def python_prediction_messages(task: str, code: str, io_description: str, given: str,
                               templates: prompting.PromptTemplates) -> list[dict[str, str]]:
    """The synthesis templates with a Python-literal given value (CRUXEval values
    are not JSON); the code is the question, so it is always in the prompt."""
    tip = templates.render(prompting.CODE_IN_PROMPT, main_code=code.strip("\n")).rstrip() + "\n\n"
    content = templates.render(prompting.PREDICTION_TEMPLATES[task], problem_statement=CRUXEVAL_STATEMENT,
                               io_description=io_description, given=given, code_tip=tip,
                               answer_format=prompting.ANSWER_FORMATS[task])
    return [{"role": "user", "content": content.strip()}]


def cruxeval_parameters(code: str) -> list[str]:
    """Parameter names of the last top-level ``def f``: arguments are passed by name."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        raise RowError("code_does_not_parse", str(error)) from None
    found = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == CRUXEVAL_ENTRY]
    if not found:
        raise RowError("no_entry", f"the code defines no top-level function {CRUXEVAL_ENTRY}")
    args = found[-1].args
    if args.posonlyargs or args.vararg or args.kwarg or args.kwonlyargs:
        raise RowError("unsupported_signature", "f must take plain named parameters (no /, *args, **kwargs, *)")
    return [arg.arg for arg in args.args]


def cruxeval_arguments(input_text: str, params: list[str]) -> list[tuple[str, str]]:
    """(parameter, argument source) pairs; every argument must be a Python literal."""
    source = f"_({input_text})"
    try:
        call = ast.parse(source, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        raise RowError("input_not_literal", str(error)) from None
    if not isinstance(call, ast.Call) or call.keywords or len(call.args) > len(params):
        raise RowError("input_not_literal", f"the input must be up to {len(params)} positional arguments")
    pairs = []
    for name, node in zip(params, call.args):
        try:
            ast.literal_eval(node)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as error:
            raise RowError("input_not_literal", f"argument {name}: {type(error).__name__}: {error}") from None
        pairs.append((name, ast.get_source_segment(source, node) or ""))
    return pairs


def question_origin(question: dict[str, Any]) -> dict[str, Any]:
    return json.loads(question["origin"])
