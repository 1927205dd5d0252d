"""One traversal of a file's AST for every structural fact the selection rules use
(``ast.walk`` costs about as much as parsing: the CodeMix filters and the
PyEdu-R score share this single pass)."""

from __future__ import annotations

import ast
import warnings
from dataclasses import dataclass, field

FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
LOOP_NODES = (ast.For, ast.AsyncFor, ast.While)


@dataclass
class CodeFacts:
    nodes: int = 0
    functions: int = 0  # functions and classes
    imports: set[str] = field(default_factory=set)
    identifiers: list[str] = field(default_factory=list)
    docstrings: list[str] = field(default_factory=list)  # module, class and function docstrings
    classes_with_state: int = 0  # classes whose methods (other than __init__) assign self attributes
    loops_with_state: int = 0  # loops whose body updates a variable (augmented assignment)


def parse(text: str) -> ast.Module | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences in old files
            return ast.parse(text.removeprefix("\ufeff"))  # a byte-order mark is no syntax error
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _docstring(node: ast.AST) -> str | None:
    body = getattr(node, "body", None)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[0].value.value
    return None


def code_facts(tree: ast.Module) -> CodeFacts:
    facts = CodeFacts()
    stateful_classes: set[int] = set()
    stateful_loops: set[int] = set()
    module_doc = _docstring(tree)
    if module_doc:
        facts.docstrings.append(module_doc)
    # (node, innermost loop id, id of the class whose non-__init__ method we are in)
    stack: list[tuple[ast.AST, int, int]] = [(tree, 0, 0)]
    while stack:
        node, loop, method_of = stack.pop()
        facts.nodes += 1
        if isinstance(node, FUNCTION_NODES):
            facts.functions += 1
            facts.identifiers.append(node.name)
            doc = _docstring(node)
            if doc:
                facts.docstrings.append(doc)
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name != "__init__":
                        stack.append((item, loop, id(node)))
                    else:
                        stack.append((item, loop, method_of))
                facts.nodes += len(node.bases) + len(node.decorator_list)
                continue
        elif isinstance(node, ast.Import):
            facts.imports.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            facts.imports.add(node.module.split(".")[0])
        elif isinstance(node, ast.Name):
            facts.identifiers.append(node.id)
        elif isinstance(node, ast.arg):
            facts.identifiers.append(node.arg)
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            if isinstance(node, ast.AugAssign) and loop:
                stateful_loops.add(loop)
            if method_of:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
                       for t in targets):
                    stateful_classes.add(method_of)
        inner = id(node) if isinstance(node, LOOP_NODES) else loop
        stack.extend((child, inner, method_of) for child in ast.iter_child_nodes(node))
    facts.classes_with_state = len(stateful_classes)
    facts.loops_with_state = len(stateful_loops)
    return facts
