"""Dataset rows that carry a description, an entry point and examples (``rows:`` sources).

One function per row; the layout is recognised from the row's fields:

- ``leetcodedataset`` (newfacade/LeetCodeDataset): ``completion`` (``class
  Solution``), ``entry_point`` (``Solution().twoSum``), ``input_output``
  (``[{"input": "nums = [2,7], target = 9", "output": "[0, 1]"}]``), the statement
  in ``problem_description`` (or ``meta.question_title`` in early versions). The
  examples are read like a LeetCode statement's and the method wrapped like a
  ``leetcode:`` folder's.
- ``humaneval``: ``prompt`` + ``canonical_solution`` is the function,
  ``entry_point`` its name, ``test`` a ``check(candidate)`` of asserts.
- ``mbpp``: ``code``, ``test_list`` (asserts calling the function), the
  statement in ``text`` or ``prompt``; the entry point is the function of
  ``code`` the asserts call.

Asserts become pairs when they compare one call with literal arguments to a
literal (``f(x) == y``, ``y == f(x)``, ``f(x) is True``, bare ``f(x)``, ``not
f(x)``); others are counted by reason. Rows of no known layout are rejected by
the reader as ``unrecognised_row_layout``, naming the fields they have.
"""

from __future__ import annotations

import ast
from collections import Counter
from typing import Any

from codeio.examples import leetcode
from codeio.examples.base import PARSE_ERRORS, Extraction, OfflineFunction, parse_module
from codeio.examples.doctests import call_pair, docstring_prose, entry_code
from codeio.examples.wrapping import checked_parameters, io_description

FORMAT = "rows"  # the "format" of a row's payload
LAYOUTS = ("leetcodedataset", "humaneval", "mbpp")
MAX_EXAMPLES = 32  # input_output entries kept from a row (collect_io keeps at most 10 pairs anyway)
SOLUTION_ENTRY = "Solution()."
CANDIDATE = "candidate"  # the name HumanEval-style checks call the entry point by
STATEMENT_FIELDS = ("problem_description", "text", "prompt", "description", "question")
ID_FIELDS = ("task_id", "question_id", "id")


def _text(row: dict[str, Any], name: str) -> str | None:
    value = row.get(name)
    return value if isinstance(value, str) and value.strip() else None


def row_layout(row: dict[str, Any]) -> str | None:
    """The layout a row is written in, or None."""
    if _text(row, "completion") and _text(row, "entry_point") and isinstance(row.get("input_output"), list):
        return "leetcodedataset"
    if _text(row, "prompt") and isinstance(row.get("canonical_solution"), str) and _text(row, "entry_point") \
            and _text(row, "test"):
        return "humaneval"
    if _text(row, "code") and isinstance(row.get("test_list"), list):
        return "mbpp"
    return None


def read_row(row: dict[str, Any]) -> tuple[str, dict[str, Any]] | str:
    """(the code, the payload that travels with it) of a row, or why the row is not one."""
    layout = row_layout(row)
    if layout is None:
        return "unrecognised_row_layout"
    row_id = next((str(row[name]) for name in ID_FIELDS if row.get(name) not in (None, "")), "")
    payload: dict[str, Any] = {"format": FORMAT, "layout": layout, "id": row_id}
    if layout == "leetcodedataset":
        meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
        statement = _text(row, "problem_description") or _text(meta, "question_title") or ""
        examples = [e for e in row["input_output"] if isinstance(e, dict)
                    and isinstance(e.get("input"), str) and isinstance(e.get("output"), str)][:MAX_EXAMPLES]
        payload.update(title=str(row.get("task_id") or row_id), statement=statement,
                       entry_point=row["entry_point"].strip(), examples=examples,
                       difficulty=row.get("difficulty") or meta.get("difficulty"))
        return row["completion"], payload
    if layout == "humaneval":
        payload.update(title=row_id or row["entry_point"], entry_point=row["entry_point"].strip(), tests=row["test"])
        return row["prompt"] + row["canonical_solution"], payload
    tests = [t for t in row["test_list"] if isinstance(t, str)]
    statement = _text(row, "text") or _text(row, "prompt") or ""
    payload.update(title=f"MBPP {row_id}" if row_id else "an MBPP problem", statement=statement,
                   tests="\n".join(tests))
    return row["code"], payload


def statement_of(code: str, payload: dict[str, Any]) -> str:
    """The row's statement as written (examples included): what normalization reads above the code."""
    if payload.get("layout") == "humaneval":
        return _docstring(code, payload.get("entry_point") or "") or ""
    return payload.get("statement") or ""


def _docstring(code: str, name: str) -> str | None:
    try:
        tree = ast.parse(code)
    except PARSE_ERRORS:
        return None
    node = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    return ast.get_docstring(node, clean=True) if node is not None else None


def row_function(code: str, payload: dict[str, Any]) -> Extraction:
    """The unified function of a row, or the reasons there is none."""
    if payload.get("layout") == "leetcodedataset":
        return _leetcodedataset(code, payload)
    return _asserted(code, payload)


def _leetcodedataset(code: str, payload: dict[str, Any]) -> Extraction:
    found = Extraction()
    tree = parse_module(code, found)
    if tree is None:
        return found
    entry = payload.get("entry_point") or ""
    if not entry.startswith(SOLUTION_ENTRY):
        found.skipped["entry_point_not_a_solution_method"] += 1
        return found
    examples: list[leetcode.Example] = []
    for item in payload.get("examples") or []:
        example = leetcode.parse_example(item["input"], item["output"])
        if isinstance(example, str):
            found.skipped[example] += 1
        else:
            examples.append(example)
    title = payload.get("title") or "a LeetCode problem"
    problem = leetcode.Problem(title, leetcode.cut_examples(payload.get("statement") or ""))
    return leetcode.solution_function(code, tree, examples, problem, found, method_name=entry[len(SOLUTION_ENTRY):])


def assert_examples(tests: str, names: set[str]) -> tuple[list[tuple[ast.Call, str]], Counter]:
    """(call, expected value text) of each assert on a call of one of ``names``, and why the others were skipped."""
    skipped: Counter = Counter()
    try:
        tree = ast.parse(tests)
    except PARSE_ERRORS:
        skipped["tests_syntax_error"] += 1
        return [], skipped
    calls: list[tuple[ast.Call, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assert):
            continue
        found = _asserted_call(node.test, names)
        if found is None:
            skipped["assert_not_a_call_equality"] += 1
        else:
            calls.append(found)
    return calls, skipped


def _is_call(node: ast.expr, names: set[str]) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names


def _asserted_call(test: ast.expr, names: set[str]) -> tuple[ast.Call, str] | None:
    if _is_call(test, names):
        return test, "True"  # type: ignore[return-value]
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and _is_call(test.operand, names):
        return test.operand, "False"  # type: ignore[return-value]
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], (ast.Eq, ast.Is)):
        left, right = test.left, test.comparators[0]
        if isinstance(test.ops[0], ast.Is) and not (isinstance(right, ast.Constant) and right.value in (True, False, None)):
            return None
        if _is_call(left, names):
            return left, ast.unparse(right)  # type: ignore[return-value]
        if _is_call(right, names):
            return right, ast.unparse(left)  # type: ignore[return-value]
    return None


def _asserted(code: str, payload: dict[str, Any]) -> Extraction:
    """HumanEval/MBPP rows: the entry function, its asserts as pairs."""
    found = Extraction()
    tree = parse_module(code, found)
    if tree is None:
        return found
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    tests = payload.get("tests") or ""
    entry = payload.get("entry_point")
    if entry is None:  # MBPP: the function of the code the asserts call most
        calls, _ = assert_examples(tests, set(functions))
        called = Counter(call.func.id for call, _ in calls)  # type: ignore[attr-defined]
        entry = called.most_common(1)[0][0] if called else None
    if entry not in functions:
        found.skipped["entry_point_not_defined"] += 1
        return found
    node = functions[entry]
    calls, skipped = assert_examples(tests, {entry, CANDIDATE})
    found.skipped.update(skipped)
    params = checked_parameters(node.args, found.skipped)
    if params is None:
        return found
    pairs: list[dict[str, Any]] = []
    for call, want in calls:
        pair = call_pair(call, want, node, {})
        if isinstance(pair, str):
            found.skipped[pair] += 1
        elif all(pair["input"] != seen["input"] for seen in pairs):
            pairs.append(pair)
    if not pairs:
        found.skipped["no_examples"] += 1
        return found
    found.functions.append(_function(code, tree, node, params, pairs, payload))
    return found


def _function(code: str, tree: ast.Module, node: ast.FunctionDef, params: list[tuple[str, str | None]],
              pairs: list[dict[str, Any]], payload: dict[str, Any]) -> OfflineFunction:
    layout, title = payload["layout"], payload.get("title") or node.name
    if layout == "humaneval":
        statement = docstring_prose(ast.get_docstring(node, clean=True) or "")
    else:
        statement = payload.get("statement") or ""
    names = ", ".join(f"`{p}`" for p, _ in params)
    statement = "\n\n".join(part for part in (statement, f"Given {names}, what does `{node.name}` return?") if part)
    statement += f"\n(the statement of {title}; read without an LLM, its tests are the pairs)"
    returns = ast.unparse(node.returns) if node.returns is not None else None
    description = io_description(params, returns, pairs, f"the signature of `{node.name}` and the tests of {title}")
    return OfflineFunction(name=f"{title}:{node.name}", kind=layout, main_code=entry_code(code, tree, node, params),
                           io_description=description, problem_statement=statement, pairs=tuple(pairs))


def statement_for_normalization(code: str, payload: dict[str, Any]) -> str:
    """What the normalization LLM reads for a row: its statement as a comment block above its code
    (HumanEval's statement is already the code's docstring)."""
    statement = statement_of(code, payload)
    if not statement or payload.get("layout") == "humaneval":
        return code
    return leetcode.statement_above(payload.get("title") or "problem", statement, code)
