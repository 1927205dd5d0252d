"""Doctest examples of a file's functions as given pairs, read by parsing only.

Each top-level function that doctests call with literal arguments and a literal
expected value becomes a unified function: the function and what it uses from
its file, a ``main_solution`` wrapper with the same parameters, and its examples
as pairs. ``f(x) == <literal>`` shown as ``True`` counts as ``f(x)`` giving the
literal; ``round(f(x), 3)`` and ``float(f(x))`` count as ``f(x)``; ``list(f(x))``,
``tuple(f(x))`` and ``sorted(f(x))`` (a generator, a set) make the wrapper return
that (a function keeps its most common such shape). Examples in the
module docstring count for the function they call;
``>>> name = <literal>`` lines earlier in the same docstring are substituted
into later calls. Examples that raise, print, compare, use other names or values
JSON cannot carry are passed over and counted by reason.
"""

from __future__ import annotations

import ast
import doctest
from collections import Counter
from typing import Any

from codeio.examples.base import PARSE_ERRORS, Extraction, OfflineFunction, parse_module
from codeio.examples.literals import NotJSON, node_value, read_literal
from codeio.examples.wrapping import MAIN_NAME, Unsupported, entry_wrapper, io_description, parameters, slice_function

KIND = "doctest"
_PARSER = doctest.DocTestParser()
_DOCSTRING_ERRORS = (ValueError, IndexError)  # doctest's parser on malformed docstrings
# Calls a doctest wraps around the function to show its number (name: most arguments, the call first).
NUMERIC_WRAPPERS = {"round": 2, "float": 1}
# Calls a doctest wraps around the function to show what it yields as a JSON list (a generator, a set):
# main_solution returns the same call around the function.
SHAPE_WRAPPERS = ("list", "tuple", "sorted")


def extract_doctest_functions(source: str, path: str) -> Extraction:
    """Every function of ``source`` with at least one usable doctest example."""
    found = Extraction()
    tree = parse_module(source, found)
    if tree is None:
        return found
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    examples: dict[str, list[tuple[dict[str, Any], str]]] = {name: [] for name in functions}
    holders: list[ast.AST] = [tree, *functions.values()]
    for holder in holders:
        for name, pair, shape in _examples_of(ast.get_docstring(holder, clean=True) or "", functions, found):
            if all(pair["input"] != seen["input"] for seen, _ in examples[name]):
                examples[name].append((pair, shape))
    for name, node in functions.items():
        if not examples[name]:
            continue
        shape = _common_shape(examples[name], found)
        pairs = [pair for pair, wrapped in examples[name] if wrapped == shape]
        try:
            params = parameters(node.args)
        except Unsupported as error:
            found.skipped[str(error)] += len(pairs)
            continue
        if not params:
            found.skipped["no_parameters"] += len(pairs)
            continue
        found.functions.append(_function(source, tree, node, params, pairs, path, shape))
    return found


def _common_shape(examples: list[tuple[dict[str, Any], str]], found: Extraction) -> str:
    """The shape (``""``: the plain call, or one of SHAPE_WRAPPERS) most of a function's
    examples show, the plain call on a tie; the other examples are counted and passed over
    (one main_solution returns one shape)."""
    counts = Counter(shape for _, shape in examples)
    shape = max(counts, key=lambda s: (counts[s], s == "", s))
    others = len(examples) - counts[shape]
    if others:
        found.skipped["example_other_wrapper"] += others
    return shape


def _examples_of(docstring: str, functions: dict[str, ast.FunctionDef], found: Extraction):
    """(function name, pair) for each usable example of a docstring."""
    if ">>>" not in docstring:
        return
    try:
        parsed = _PARSER.get_examples(docstring)
    except _DOCSTRING_ERRORS:
        found.skipped["malformed_docstring"] += 1
        return
    bound: dict[str, ast.expr] = {}
    for example in parsed:
        try:
            statement = ast.parse(example.source.strip())
        except PARSE_ERRORS:
            found.skipped["example_syntax_error"] += 1
            continue
        body = statement.body
        if len(body) == 1 and isinstance(body[0], ast.Assign) and len(body[0].targets) == 1 \
                and isinstance(body[0].targets[0], ast.Name):
            bound[body[0].targets[0].id] = body[0].value  # literal or not: checked where it is used
            continue
        if len(body) != 1 or not isinstance(body[0], ast.Expr):
            found.skipped["example_not_a_call"] += 1
            continue
        call, want, shape = _call_and_want(body[0].value, example.want, functions)
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in functions):
            found.skipped["example_not_a_call"] += 1
            continue
        if example.exc_msg is not None:
            found.skipped["example_raises"] += 1
            continue
        pair = call_pair(call, want, functions[call.func.id], bound)
        if isinstance(pair, str):
            found.skipped[pair] += 1
        else:
            yield call.func.id, pair, shape


def _call_and_want(expression: ast.expr, want: str, functions: dict[str, ast.FunctionDef]) -> tuple[ast.expr, str, str]:
    """(the call, its expected text, its shape wrapper or ""). ``f(x) == <literal>`` (or
    ``f(x) is None``) shown as ``True`` is the call with that literal as its expected
    text; ``round(f(x), n)`` and ``float(f(x))`` are the call (the pair keeps what f
    returns, which must match the shown value within the answer tolerance);
    ``list(f(x))``, ``tuple(f(x))``, ``sorted(f(x))`` are the call in that shape;
    anything else is itself. A file's own function named like a wrapper is a call."""
    if (isinstance(expression, ast.Compare) and len(expression.ops) == 1 and want.strip() == "True"
            and isinstance(expression.ops[0], (ast.Eq, ast.Is)) and isinstance(expression.left, ast.Call)):
        expected = expression.comparators[0]
        if isinstance(expression.ops[0], ast.Is) and not (isinstance(expected, ast.Constant) and expected.value is None):
            return expression, want, ""
        expression, want = expression.left, ast.unparse(expected)
    if not (isinstance(expression, ast.Call) and isinstance(expression.func, ast.Name)
            and expression.func.id not in functions and not expression.keywords and expression.args
            and isinstance(expression.args[0], ast.Call)):
        return expression, want, ""
    wrapper, arguments = expression.func.id, expression.args
    if wrapper in NUMERIC_WRAPPERS and len(arguments) <= NUMERIC_WRAPPERS[wrapper] \
            and all(isinstance(a, ast.Constant) and isinstance(a.value, int) for a in arguments[1:]):
        return arguments[0], want, ""
    if wrapper in SHAPE_WRAPPERS and len(arguments) == 1:
        return arguments[0], want, wrapper
    return expression, want, ""


def call_pair(call: ast.Call, want: str, function: ast.FunctionDef, bound: dict[str, ast.expr]) -> dict[str, Any] | str:
    """The pair of one call, or the reason it cannot be one."""
    try:
        params = [name for name, _ in parameters(function.args)]
    except Unsupported as error:
        return str(error)
    positional = [*function.args.posonlyargs, *function.args.args]
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return "example_unpacks_arguments"
    if len(call.args) > len(positional):
        return "example_too_many_arguments"
    values: dict[str, Any] = {}
    try:
        for arg, node in zip(positional, call.args):
            values[arg.arg] = node_value(_resolve(node, bound))
        for keyword in call.keywords:
            if keyword.arg not in params or keyword.arg in values:
                return "example_unknown_keyword"
            values[keyword.arg] = node_value(_resolve(keyword.value, bound))
    except NotJSON:
        return "example_argument_not_json"
    if not want.strip():
        return "example_returns_none"
    try:
        output = read_literal(want)
    except NotJSON:
        return "example_output_not_json"
    return {"input": {name: values[name] for name in params if name in values}, "output": output}


def _resolve(node: ast.expr, bound: dict[str, ast.expr]) -> ast.expr:
    return bound.get(node.id, node) if isinstance(node, ast.Name) else node


def docstring_prose(docstring: str) -> str:
    """The docstring without its examples."""
    try:
        parts = _PARSER.parse(docstring)
    except _DOCSTRING_ERRORS:
        return docstring.split(">>>", 1)[0].strip()
    text = "".join(part for part in parts if isinstance(part, str))
    lines = [line.rstrip() for line in text.split("\n")]
    kept: list[str] = []
    for line in lines:
        if line or (kept and kept[-1]):
            kept.append(line)
    return "\n".join(kept).strip()


def without_examples(code: str) -> str:
    """The code with the doctest examples taken out of its docstrings: the pairs'
    answers must not be readable in the reference code shown with them."""
    try:
        tree = ast.parse(code)
    except PARSE_ERRORS:
        return code
    spans: list[tuple[int, int, str | None]] = []  # (first line, last line, replacement text)
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        docstring = ast.get_docstring(node, clean=True)
        if not docstring or ">>>" not in docstring:
            continue
        first = node.body[0]
        if not isinstance(node, ast.Module) and first.lineno == node.lineno:
            continue  # a docstring on the def line: left alone
        prose = docstring_prose(docstring)
        indent = " " * first.col_offset
        if not prose and len(node.body) > 1:
            spans.append((first.lineno, first.end_lineno or first.lineno, None))
            continue
        if '"""' in prose or "\\" in prose or prose.endswith('"'):
            prose = "(examples removed)"
        body = "\n".join(indent + line if line else "" for line in prose.split("\n")).lstrip()
        spans.append((first.lineno, first.end_lineno or first.lineno, f'{indent}"""{body}\n{indent}"""'
                      if "\n" in prose else f'{indent}"""{prose}"""'))
    lines = code.split("\n")
    for start, end, text in sorted(spans, reverse=True):
        lines[start - 1:end] = [] if text is None else text.split("\n")
    rewritten = "\n".join(lines)
    try:
        ast.parse(rewritten)
    except SyntaxError:
        return code
    return rewritten


def entry_code(source: str, tree: ast.Module, node: ast.FunctionDef, params: list[tuple[str, str | None]],
               shape: str = "") -> str:
    """The function with what it uses from its file, doctest lines out of its
    docstrings, and a ``main_solution`` wrapper that calls it (inside ``shape``:
    ``list``, ``tuple`` or ``sorted``, as its doctests show it)."""
    name = node.name
    code = without_examples(slice_function(source, tree, name))
    if name != MAIN_NAME:
        target = name
        if any(param == name for param, _ in params):  # def dna(dna): the parameter hides the function
            target = f"_entry_{name}"
            code += f"\n\n{target} = {name}\n"
        code += "\n\n" + entry_wrapper(node.args, target, result=f"{shape}({{}})" if shape else "{}")
    return code


def _function(source: str, tree: ast.Module, node: ast.FunctionDef, params: list[tuple[str, str | None]],
              pairs: list[dict[str, Any]], path: str, shape: str = "") -> OfflineFunction:
    name = node.name
    code = entry_code(source, tree, node, params, shape)
    where = f"`{name}` in {path}" if path else f"`{name}`"
    prose = docstring_prose(ast.get_docstring(node, clean=True) or "")
    names = ", ".join(f"`{p}`" for p, _ in params)
    question = f"Given {names}, what is `{shape}({name}(...))`?" if shape else f"Given {names}, what does `{name}` return?"
    statement = "\n\n".join(part for part in (prose, question) if part)
    statement += f"\n({'derived without an LLM from the docstring of ' + where})"
    returns = ast.unparse(node.returns) if node.returns is not None else None
    description = io_description(params, returns, pairs, f"the signature and doctests of {where}")
    qualified = f"{path}:{name}" if path else name
    return OfflineFunction(name=qualified, kind=KIND, main_code=code, io_description=description,
                           problem_statement=statement, pairs=tuple(pairs))
