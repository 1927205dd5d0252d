"""From a function in a file to a unified ``main_solution``, by parsing only.

- :func:`slice_function`: the function with just what it uses from its file
  (imports, helper functions and classes, constants), found by names through
  ``ast``; the ``if __name__ == "__main__"`` block and bare statements go.
- :func:`entry_wrapper`: a ``main_solution`` with the same parameters that
  calls the function (renaming would break recursion).
- :func:`io_description`: argument and return types from the annotations, or
  from the example values, labelled as derived offline.
"""

from __future__ import annotations

import ast
from collections import Counter
from typing import Any, Iterable, Sequence

MAIN_NAME = "main_solution"
OFFLINE_LABEL = "derived without an LLM from {what}"


class Unsupported(ValueError):
    """The function cannot be called as ``main_solution(**kwargs)``; the message is a short reason."""


# -- slicing -------------------------------------------------------------------------------
def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators))


def defined_names(node: ast.stmt) -> set[str] | None:
    """Names a top-level statement binds or fills; None for ``from x import *`` (unknown)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, ast.Import):
        return {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    if isinstance(node, ast.ImportFrom):
        if any(alias.name == "*" for alias in node.names):
            return None
        return {alias.asname or alias.name for alias in node.names}
    names: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
            names.add(sub.id)
        elif isinstance(sub, (ast.Subscript, ast.Attribute)) and isinstance(sub.ctx, ast.Store):
            base = sub.value  # "table[k] = v" in a top-level loop fills a needed table
            while isinstance(base, (ast.Subscript, ast.Attribute)):
                base = base.value
            if isinstance(base, ast.Name):
                names.add(base.id)
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(sub.name)
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in sub.names if alias.name != "*")
    return names


def used_names(node: ast.AST) -> set[str]:
    """Names a top-level statement reads from the module: the names it loads minus
    those it binds itself (for a function or class: its parameters and locals,
    unless declared global)."""
    loads = {sub.id for sub in ast.walk(node) if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load)}
    # "count += 1" reads count too (its Name is a Store)
    loads |= {sub.target.id for sub in ast.walk(node) if isinstance(sub, ast.AugAssign) and isinstance(sub.target, ast.Name)}
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        # a loop variable read in its own loop is not needed from elsewhere
        return loads - {sub.id for sub in ast.walk(node) if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store)}
    bound: set[str] = set()
    declared: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
            bound.add(sub.id)
        elif isinstance(sub, ast.arg):
            bound.add(sub.arg)
        elif isinstance(sub, (ast.Global, ast.Nonlocal)):
            declared.update(sub.names)
        elif sub is not node and isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(sub.name)
    return loads - (bound - declared)


def _span(node: ast.stmt) -> tuple[int, int]:
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return first, node.end_lineno or node.lineno


def slice_function(source: str, tree: ast.Module, name: str) -> str:
    """The text of every top-level statement that ``name`` needs, in file order."""
    candidates = [n for n in tree.body if not _is_main_guard(n) and not isinstance(n, ast.Expr)]
    target = next(n for n in candidates if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name)
    keep = {id(target)}
    needed = used_names(target)
    for node in candidates:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            keep.add(id(node))
    changed = True
    while changed:
        changed = False
        for node in candidates:
            if id(node) in keep:
                continue
            names = defined_names(node)
            if names is None or names & needed:
                keep.add(id(node))
                needed |= used_names(node)
                changed = True
    lines = source.split("\n")
    parts = []
    for node in candidates:
        if id(node) in keep:
            start, end = _span(node)
            parts.append("\n".join(lines[start - 1:end]))
    return "\n\n".join(parts).strip("\n") + "\n"


# -- the entry point -------------------------------------------------------------------------
def parameters(args: ast.arguments, skip_first: bool = False) -> list[tuple[str, str | None]]:
    """(name, annotation text) of every parameter that a keyword call can fill."""
    if args.vararg is not None or args.kwarg is not None:
        raise Unsupported("variadic_parameters")
    params = [*args.posonlyargs, *args.args][1 if skip_first else 0:] + list(args.kwonlyargs)
    return [(a.arg, ast.unparse(a.annotation) if a.annotation is not None else None) for a in params]


def checked_parameters(args: ast.arguments, skipped: Counter, skip_first: bool = False) -> list[tuple[str, str | None]] | None:
    """:func:`parameters`, or None with the reason counted in ``skipped``
    (``variadic_parameters``, ``no_parameters``: nothing to give as an input)."""
    try:
        params = parameters(args, skip_first)
    except Unsupported as error:
        skipped[str(error)] += 1
        return None
    if not params:
        skipped["no_parameters"] += 1
        return None
    return params


def call_parts(args: ast.arguments, skip_first: bool = False,
               convert: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """(the parameter list of ``main_solution`` without annotations, the argument
    texts that pass them on). ``convert`` maps a parameter to an expression that
    converts its JSON value at the boundary (``"_to_list_node(head)"``)."""
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    if skip_first:
        positional, defaults = positional[1:], defaults[1:]
    convert = convert or {}
    signature, call = [], []
    for arg, default in zip(positional, defaults):
        signature.append(arg.arg if default is None else f"{arg.arg}={ast.unparse(default)}")
        call.append(convert.get(arg.arg, arg.arg))
    if args.kwonlyargs:
        if not positional:
            signature.append("*")
        for arg, default in zip(args.kwonlyargs, args.kw_defaults):
            signature.append(arg.arg if default is None else f"{arg.arg}={ast.unparse(default)}")
            call.append(f"{arg.arg}={convert.get(arg.arg, arg.arg)}")
    return ", ".join(signature), call


def entry_wrapper(args: ast.arguments, call_target: str, skip_first: bool = False, convert: dict[str, str] | None = None,
                  result: str = "{}") -> str:
    """``def main_solution(<same parameters>): return <result of calling call_target>``."""
    signature, call = call_parts(args, skip_first, convert)
    invocation = f"{call_target}({', '.join(call)})"
    return f"def {MAIN_NAME}({signature}):\n    return {result.format(invocation)}\n"


# -- the description -----------------------------------------------------------------------
def json_type(values: Iterable[Any]) -> str:
    """A readable type for the JSON values seen ("list of int", "str or null")."""
    kinds: list[str] = []
    values = list(values)
    scalars = {bool: "bool", int: "int", float: "float", str: "str", type(None): "null"}
    for value in values:
        if isinstance(value, list):
            name = f"list of {json_type([item for item in value])}" if value else "list"
        elif isinstance(value, dict):
            name = f"dict of str to {json_type(value.values())}" if value else "dict"
        else:
            name = scalars.get(type(value), type(value).__name__)
        if name not in kinds:
            kinds.append(name)
    if {"int", "float"} <= set(kinds):
        kinds.remove("int")
    lists = [k for k in kinds if k.startswith("list")]
    if len(lists) > 1 and "list" in lists:
        kinds.remove("list")  # an empty example list says nothing about the items
    return " or ".join(kinds) if kinds else "any"


def io_description(params: Sequence[tuple[str, str | None]], returns: str | None, pairs: Sequence[dict[str, Any]],
                   what: str, meaning: dict[str, str] | None = None) -> str:
    """The I/O description of an offline function: types from annotations (else
    from the example values), labelled as derived without an LLM from ``what``."""
    meaning = meaning or {}
    lines = [f"({OFFLINE_LABEL.format(what=what)})", "Input:"]
    for name, annotation in params:
        seen = [p["input"][name] for p in pairs if name in p["input"]]
        kind = annotation or json_type(seen)
        lines.append(f"  `{name}` ({kind}): {meaning.get(name, f'the argument `{name}`')}")
    lines.append("Output:")
    kind = returns if returns and returns != "None" else json_type(p["output"] for p in pairs)
    lines.append(f"  `return` ({kind}): {meaning.get('return', 'the value returned')}")
    return "\n".join(lines)
