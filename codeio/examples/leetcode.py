"""LeetCode-style problem folders: statement + ``class Solution`` -> unified function.

The layout of the largest public collection: ``.../NNNN.Title/README_EN.md``
(front matter, a ``# [N. Title](url)`` heading, the statement in HTML between
``<!-- description:start -->`` and ``<!-- description:end -->``, then
editorials) next to ``Solution.py`` (``class Solution`` with one public method,
written for LeetCode's judge: ``List``, ``Counter``, ``heappush``, ``ListNode``
... are not imported).

Offline, :func:`leetcode_function` makes a unified function of it: the
statement's examples (``Input: a = [1,2], b = 3`` / ``Output: 4``, HTML
unescaped, ``true/false/null`` read as JSON) are the given pairs; the solution
gets the imports the judge would have supplied (only the names it uses), the
judge's node classes it needs with converters (:mod:`.nodes`: ``ListNode``,
``TreeNode`` and four kinds of ``Node``), and a ``main_solution`` that converts
the statement's JSON forms to nodes at the boundary and back, and returns the
first argument when the method works in place (``-> None``). A design problem
(no ``class Solution`` call, examples as call sequences) is replayed by
``main_solution(operations, arguments)`` (:mod:`.design`). Rows of datasets in
the LeetCodeDataset layout reuse :func:`parse_example` and
:func:`solution_function` (:mod:`.rows`).
"""

from __future__ import annotations

import ast
import builtins
import html
import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from codeio.examples import design
from codeio.examples.base import Extraction, OfflineFunction, parse_module
from codeio.examples.literals import NotJSON, outside_strings, read_literal
from codeio.examples.nodes import LIST_NODE, NODE, NODE_TYPES, TREE_NODE, node_flavour, node_kind
from codeio.examples.wrapping import (MAIN_NAME, Unsupported, call_parts, checked_parameters, entry_wrapper,
                                      io_description, parameters)

KIND = "leetcode"
FORMAT = "leetcode"  # the "format" of a problem record's payload
STATEMENT_FILE = "README_EN.md"
SOLUTION_FILE = "Solution.py"
SOLUTION_CLASS = "Solution"

DESCRIPTION_SPAN = re.compile(r"<!--\s*description:start\s*-->(.*?)<!--\s*description:end\s*-->", re.S)
DESCRIPTION_HEADING = re.compile(r"^##\s+Description\s*$(.*?)(?=^##\s)", re.S | re.M)
TITLE_LINE = re.compile(r"^#\s+\[(?P<title>[^\]]+)\]\((?P<url>[^)]*)\)", re.M)
# A premium problem's heading ends in a lock ("244. Shortest Word Distance II 🔒"): not part of its title.
PREMIUM_MARK = re.compile(r"\s*\U0001F512\s*$")
FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.S)
DIFFICULTY = re.compile(r"^difficulty:\s*(\S+)", re.M)
# HTML -> text: line breaks for block ends, ^ for superscripts, then no tags.
BLOCK_END = re.compile(r"<br\s*/?>|</(p|pre|div|ul|ol|h\d)>", re.I)
LIST_ITEM = re.compile(r"\s*<li>\s*", re.I)
SUPERSCRIPT = re.compile(r"<sup>(.*?)</sup>", re.I | re.S)
IMAGE = re.compile(r"<img\b[^>]*>", re.I)
TAG = re.compile(r"<[^>]+>")
BLANK_LINES = re.compile(r"\n[ \t]*\n([ \t]*\n)+")
# In the statement text: "Input: ..." up to "Output:", then the output up to the next label.
EXAMPLE = re.compile(r"Input:\s*(?P<input>.*?)\s*Output:\s*(?P<output>.*?)\s*"
                     r"(?=Explanation:|Example\s*\d+|Constraints:|Input:|Note:|Follow[- ]?up|\Z)", re.S)
EXAMPLES_START = re.compile(r"^\s*Example\s*1?\s*:", re.M | re.I)
CONSTRAINTS_START = re.compile(r"^\s*Constraints\s*:", re.M | re.I)
ARGUMENT_NAME = re.compile(r"[A-Za-z_]\w*\s*=(?!=)")

# Modules whose names LeetCode's judge pre-imports, in the order a name is looked up
# (sortedcontainers: SortedList, SortedDict, SortedSet, which many solutions use unimported).
JUDGE_MODULES = ("collections", "heapq", "bisect", "itertools", "functools", "math", "string", "operator",
                 "typing", "re", "random", "sortedcontainers")
# A "#" between commas in an output: a level mark of a level-order serialization.
LEVEL_MARK = re.compile(r"(?<=[\[,])\s*#\s*(?=[,\]])")
# Custom judge types we cannot build from JSON (nested lists, interactive APIs); Node: see codeio.examples.nodes.
UNSUPPORTED_TYPES = ("Employee", "ImmutableListNode", "MountainArray", "Master",
                     "Robot", "Sea", "ArrayReader", "BinaryMatrix", "CustomFunction", "GridMaster", "HtmlParser")

# A tree node given by its value (Lowest Common Ancestor: root = [6,2,8], p = 2, q = 8; Output: 6):
# the judge passes the node of ``root`` holding that value and shows a returned node by its value.
BY_VALUE_HELPERS = '''
def _find_tree_node(root, value):
    queue = [root]
    while queue:
        node = queue.pop(0)
        if node is not None:
            if node.val == value:
                return node
            queue += [node.left, node.right]
    raise ValueError(f"no node with value {value!r} in the tree")


def _tree_node_value(node):
    return None if node is None else node.val
'''.strip("\n")


# A codec problem's harness, as the solution file's closing comment shows it:
#   codec = Codec()                              ser = Codec()
#   codec.deserialize(codec.serialize(root))     deser = Codec()
#                                                tree = ser.serialize(root)
#                                                ans = deser.deserialize(tree)
HARNESS_INSTANCE = re.compile(r"^#\s*(?P<obj>\w+)\s*=\s*(?P<cls>\w+)\(\)\s*$", re.M)
HARNESS_NESTED = re.compile(r"^#\s*(?:\w+\s*=\s*)?(?P<outer_obj>\w+)\.(?P<outer>\w+)\(\s*(?P<inner_obj>\w+)"
                            r"\.(?P<inner>\w+)\(\s*\w+\s*\)\s*\)\s*$", re.M)
HARNESS_STEP = re.compile(r"^#\s*(?P<target>\w+)\s*=\s*(?P<obj>\w+)\.(?P<method>\w+)\(\s*(?P<arg>\w+)\s*\)\s*$", re.M)
# Old-style solutions type their arguments in the docstring (":type root: TreeNode", ":rtype: str").
DOC_TYPE = r"^\s*:type\s+{name}:\s*(?P<type>.+?)\s*$"
DOC_RETURN_TYPE = re.compile(r"^\s*:rtype:\s*(?P<type>.+?)\s*$", re.M)


# -- reading a folder (sources) ----------------------------------------------------------------
def html_to_text(fragment: str) -> str:
    text = IMAGE.sub("", fragment)
    text = SUPERSCRIPT.sub(lambda m: "^" + m.group(1), text)
    text = LIST_ITEM.sub("\n- ", text)
    text = BLOCK_END.sub("\n", text)
    text = html.unescape(TAG.sub("", text)).replace("\xa0", " ")
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n")]
    return BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def read_statement(readme: str) -> dict[str, Any] | None:
    """Title, difficulty and the statement (HTML as written) of a README, or None."""
    span = DESCRIPTION_SPAN.search(readme) or DESCRIPTION_HEADING.search(readme)
    if span is None or not span.group(1).strip():
        return None
    title = TITLE_LINE.search(readme)
    front = FRONT_MATTER.match(readme)
    difficulty = DIFFICULTY.search(front.group(1)) if front else None
    heading = title.group("title").strip() if title else ""
    return {"format": FORMAT, "title": PREMIUM_MARK.sub("", heading), "premium": bool(PREMIUM_MARK.search(heading)),
            "url": title.group("url").strip() if title else "",
            "difficulty": difficulty.group(1) if difficulty else None, "statement_html": span.group(1).strip()}


def problem_folders(root: Path) -> list[Path]:
    """Every folder under ``root`` (or ``root`` itself) with a README_EN.md, sorted."""
    return sorted({p.parent for p in root.rglob(STATEMENT_FILE) if p.is_file()})


def statement_text(payload: dict[str, Any], with_examples: bool = True) -> str:
    """The statement as plain text, optionally without its examples (they are the pairs)."""
    text = html_to_text(payload.get("statement_html") or "")
    return text if with_examples else cut_examples(text)


def cut_examples(text: str) -> str:
    """A plain-text statement without its examples (from "Example 1:" up to "Constraints:")."""
    start = EXAMPLES_START.search(text)
    if start is not None:
        end = CONSTRAINTS_START.search(text, start.end())
        text = (text[:start.start()].rstrip() + ("\n\n" + text[end.start():].lstrip() if end else "")).strip()
    return text


def statement_for_normalization(payload: dict[str, Any], code: str) -> str:
    """What the normalization LLM reads for a problem: the statement as a comment
    block above the solution, so the one normalize template serves both."""
    return statement_above(payload.get("title") or "problem", statement_text(payload), code)


def statement_above(title: str, statement: str, code: str) -> str:
    """The statement as a comment block above the code."""
    lines = [f"# Problem statement ({title}):"]
    lines += [f"# {line}".rstrip() for line in statement.replace("\r\n", "\n").split("\n")]
    return "\n".join(lines) + "\n\n" + code


# -- examples ------------------------------------------------------------------------------------------
def split_arguments(text: str) -> dict[str, str] | None:
    """``a = [1,2], s = "x,y"`` -> {"a": "[1,2]", "s": '"x,y"'} (split at depth 0 outside strings)."""
    text = " ".join(text.split())
    starts: list[tuple[int, int, str]] = []  # (name start, value start, name)
    depth, resume = 0, 0
    for i, char in outside_strings(text):
        if i < resume:
            continue
        if char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif depth == 0 and (i == 0 or text[:i].rstrip().endswith(",")) and (i == 0 or text[i - 1] in ", "):
            match = ARGUMENT_NAME.match(text, i)
            if match is not None:
                starts.append((i, match.end(), match.group(0)[:-1].strip()))
                resume = match.end()
    if not starts:
        return None
    values: dict[str, str] = {}
    for n, (_, value_start, name) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(text)
        values[name] = text[value_start:end].strip().rstrip(",").strip()
    return values


Example = tuple[dict[str, Any] | str, Any]  # (arguments by name, or the bare value text; the output)


def read_output(text: str) -> Any:
    """An example's output as JSON; a level-order output with ``#`` level marks
    (``[1,#,2,3,#]``) reads them as the string ``"#"``."""
    try:
        return read_literal(text, json_words=True)
    except NotJSON:
        if "#" not in text:
            raise
        return read_literal(LEVEL_MARK.sub('"#"', text), json_words=True)


def parse_example(input_text: str, output_text: str) -> Example | str:
    """One ``Input: a = 1, b = [2]`` / ``Output: 3`` example, or the reason it is skipped."""
    try:
        output = read_output(output_text)
    except NotJSON:
        return "example_output_not_json"
    raw_input = input_text.strip()
    arguments = split_arguments(raw_input)
    if arguments is None:
        return raw_input, output  # a single unnamed value: matched to the only parameter later
    try:
        return {name: read_literal(value, json_words=True) for name, value in arguments.items()}, output
    except NotJSON:
        return "example_argument_not_json"


def statement_examples(payload: dict[str, Any]) -> tuple[list[Example], list[str]]:
    """([(arguments by name, or the bare value text), output], reasons of skipped examples)."""
    found: list[Example] = []
    skipped: list[str] = []
    for match in EXAMPLE.finditer(statement_text(payload)):
        example = parse_example(match.group("input"), match.group("output"))
        if isinstance(example, str):
            skipped.append(example)
        else:
            found.append(example)
    return found, skipped


# -- the function ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """What a problem's function is labelled with: its title and its statement without examples."""

    title: str
    statement: str


def _entry_method(cls: ast.ClassDef, names: set[str], wanted: str | None = None) -> ast.FunctionDef | None:
    methods = [n for n in cls.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")
               and not any(isinstance(d, ast.Name) and d.id in ("staticmethod", "classmethod") for d in n.decorator_list)]
    if wanted is not None:
        return next((m for m in methods if m.name == wanted), None)
    for method in methods:
        params = {a.arg for a in [*method.args.posonlyargs, *method.args.args][1:]}
        if names and params == names:
            return method
    return methods[0] if len(methods) == 1 else None


def judge_imports(tree: ast.Module) -> list[str]:
    """The import lines LeetCode's judge supplies for the names the solution uses
    and does not define (looked up in :data:`JUDGE_MODULES`; the standard library
    is imported here to look names up, the solution never is)."""
    defined = {name for node in ast.walk(tree) for name in _bound(node)}
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    used |= {ast.unparse(a.value) for a in ast.walk(tree) if isinstance(a, ast.Attribute) and isinstance(a.value, ast.Name)}
    missing = sorted(used - defined - set(dir(builtins)) - {LIST_NODE, TREE_NODE, NODE})
    by_module: dict[str, list[str]] = {}
    plain: list[str] = []
    for name in missing:
        if name in JUDGE_MODULES:
            plain.append(name)
            continue
        for module_name in JUDGE_MODULES:
            if hasattr(importlib.import_module(module_name), name) and not name.startswith("_"):
                by_module.setdefault(module_name, []).append(name)
                break
    lines = [f"import {name}" for name in plain]
    lines += [f"from {module} import {', '.join(names)}" for module, names in sorted(by_module.items())]
    return lines


def _bound(node: ast.AST) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
        return [node.id]
    if isinstance(node, ast.arg):
        return [node.arg]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    return []


def leetcode_function(code: str, payload: dict[str, Any]) -> Extraction:
    """The unified function of a problem folder, or the reason there is none:
    ``class Solution`` called with the statement's examples, or a design problem
    (a class of its own, examples as call sequences)."""
    found = Extraction()
    tree = parse_module(code, found)
    if tree is None:
        return found
    title = payload.get("title") or "a LeetCode problem"
    problem = Problem(title, statement_text(payload, with_examples=False))
    text = statement_text(payload)
    if design.is_design(text, tree):
        return design_function(code, tree, text, problem, found)
    if not any(isinstance(n, ast.ClassDef) and n.name == SOLUTION_CLASS for n in tree.body):
        harness = codec_harness(code, tree)
        if harness is not None:
            examples, skipped = statement_examples(payload)
            found.skipped.update(skipped)
            return codec_function(code, tree, harness, examples, problem, found)
        found.skipped["no_solution_class"] += 1  # SQL/pandas problems, interactive problems
        return found
    examples, skipped = statement_examples(payload)
    found.skipped.update(skipped)
    return solution_function(code, tree, examples, problem, found)


def solution_function(code: str, tree: ast.Module, examples: list[Example], problem: Problem, found: Extraction,
                      method_name: str | None = None) -> Extraction:
    """``class Solution``'s entry method (``method_name``, else the one whose
    parameters the examples name, else the only public one) as ``main_solution``,
    the examples as its pairs."""
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == SOLUTION_CLASS), None)
    if cls is None:
        found.skipped["no_solution_class"] += 1
        return found
    names = set().union(*(set(args) for args, _ in examples if isinstance(args, dict))) if examples else set()
    method = _entry_method(cls, names, method_name)
    if method is None:
        found.skipped["no_entry_method"] += 1
        return found
    params = checked_parameters(method.args, found.skipped, skip_first=True)
    if params is None:
        return found
    returns = ast.unparse(method.returns) if method.returns is not None else None
    try:
        flavour = node_flavour(code)
        kinds = {name: _boundary(annotation, flavour) for name, annotation in [*params, ("return", returns)]}
    except Unsupported as error:
        found.skipped[str(error)] += 1
        return found
    renamed: dict[str, str] = {}
    pairs = _pairs(examples, [name for name, _ in params], found, renamed)
    if not pairs:
        found.skipped["no_examples"] += 1
        return found
    found.functions.append(_function(code, tree, problem, method, params, kinds, returns, pairs, renamed))
    return found


def _boundary(annotation: str | None, flavour: str | None) -> tuple[str, bool] | None:
    """How a value of this annotation crosses the boundary: (node kind, plural), or None (plain JSON)."""
    for name in UNSUPPORTED_TYPES:
        if annotation and re.search(rf"\b{name}\b", annotation):
            raise Unsupported(f"custom_type:{name}")
    kind, plural = node_kind(annotation, flavour)
    if kind is None:
        return None
    if kind not in NODE_TYPES:
        raise Unsupported(f"custom_type:{NODE}")
    return kind, plural


def _tree_nodes_by_value(params: list[tuple[str, str | None]], kinds: dict[str, tuple[str, bool] | None],
                         pairs: list[dict[str, Any]]) -> tuple[dict[str, str], bool]:
    """({tree-node parameter the examples give as a value: the tree parameter it is a node of},
    whether a returned tree node is shown by its value): the statements write
    ``root = [6,2,8], p = 2`` and ``Output: 6`` where the method takes and returns nodes."""
    single_tree = [name for name, _ in params if kinds.get(name) == ("tree_node", False)]
    roots = [name for name in single_tree if all(isinstance(p["input"][name], list) for p in pairs)]
    by_value: dict[str, str] = {}
    if roots:
        for name in single_tree:
            values = [p["input"][name] for p in pairs]
            if name not in roots and all(isinstance(v, (int, str)) and not isinstance(v, bool) for v in values):
                by_value[name] = roots[0]
    outputs = [p["output"] for p in pairs]
    value_returned = kinds.get("return") == ("tree_node", False) and any(o is not None for o in outputs) and \
        all(o is None or (isinstance(o, (int, str)) and not isinstance(o, bool)) for o in outputs)
    return by_value, value_returned


def _convert(boundary: tuple[str, bool], direction: str, value: str) -> str:
    node_type = NODE_TYPES[boundary[0]]
    function = node_type.to_nodes if direction == "in" else node_type.from_nodes
    return f"[{function}(v) for v in {value}]" if boundary[1] else f"{function}({value})"


def _meaning(boundary: tuple[str, bool]) -> str:
    meaning = NODE_TYPES[boundary[0]].meaning
    return f"a list of: {meaning}" if boundary[1] else meaning


def _pairs(examples: list[Example], names: list[str], found: Extraction, renamed: dict[str, str]) -> list[dict[str, Any]]:
    """The examples as pairs keyed by the method's parameter names (``renamed``
    collects the statement's names where the solution renamed them)."""
    pairs: list[dict[str, Any]] = []
    for arguments, output in examples:
        if isinstance(arguments, str):
            if len(names) != 1:
                found.skipped["example_names_mismatch"] += 1
                continue
            try:
                arguments = {names[0]: read_literal(arguments, json_words=True)}
            except NotJSON:
                found.skipped["example_argument_not_json"] += 1
                continue
        if set(arguments) != set(names):
            if len(arguments) != len(names):
                found.skipped["example_names_mismatch"] += 1
                continue
            # the solution renamed the statement's parameters: same count, same order
            renamed.update(zip(names, arguments))
            arguments = dict(zip(names, arguments.values()))
        pair = {"input": {name: arguments[name] for name in names}, "output": output}
        if all(pair["input"] != seen["input"] for seen in pairs):
            pairs.append(pair)
    return pairs


def node_helpers(tree: ast.Module, kinds: Iterable[str]) -> str:
    """The judge's node classes the code mentions or the boundary converts, with their converters."""
    wanted = [NODE_TYPES[kind] for kind in dict.fromkeys(kinds)]
    for node_type in (NODE_TYPES["list_node"], NODE_TYPES["tree_node"], NODE_TYPES["nested_integer"]):
        if node_type not in wanted and _mentions(tree, node_type.class_name):
            wanted.append(node_type)
    order = list(NODE_TYPES)
    return "".join(t.helpers + "\n\n\n" for t in sorted(wanted, key=lambda t: order.index(t.kind)))


def _function(code: str, tree: ast.Module, problem: Problem, method: ast.FunctionDef,
              params: list[tuple[str, str | None]], kinds: dict[str, tuple[str, bool] | None], returns: str | None,
              pairs: list[dict[str, Any]], renamed: dict[str, str]) -> OfflineFunction:
    convert = {name: _convert(kind, "in", name) for name, kind in kinds.items() if kind and name != "return"}
    in_place = returns == "None"
    target = f"Solution().{method.name}"
    return_kind = kinds["return"]
    by_value, value_returned = ({}, False) if in_place else _tree_nodes_by_value(params, kinds, pairs)
    if by_value or value_returned:
        signature, call = call_parts(method.args, skip_first=True, convert={
            **convert, **{root: root for root in by_value.values()},
            **{name: f"_find_tree_node({root}, {name})" for name, root in by_value.items()}})
        invocation = f"{target}({', '.join(call)})"
        result = f"_tree_node_value({invocation})" if value_returned else \
            (_convert(return_kind, "out", invocation) if return_kind else invocation)
        lines = [f"    {root} = {convert[root]}" for root in dict.fromkeys(by_value.values())]
        wrapper = "\n".join([f"def {MAIN_NAME}({signature}):", *lines, f"    return {result}"]) + "\n\n\n" + \
            BY_VALUE_HELPERS + "\n"
    elif in_place:  # LeetCode judges the first argument, changed in place
        signature, call = call_parts(method.args, skip_first=True, convert=convert)
        first, first_kind = params[0][0], kinds[params[0][0]]
        if first_kind:
            wrapper = (f"def {MAIN_NAME}({signature}):\n    arguments = [{', '.join(call)}]\n"
                       f"    {target}(*arguments)\n    return {_convert(first_kind, 'out', 'arguments[0]')}\n")
        else:
            wrapper = f"def {MAIN_NAME}({signature}):\n    {target}({', '.join(call)})\n    return {first}\n"
    else:
        wrapper = entry_wrapper(method.args, target, skip_first=True, convert=convert,
                                result=_convert(return_kind, "out", "{}") if return_kind else "{}")
    parts = judge_imports(tree)
    header = "\n".join(parts) + "\n\n" if parts else ""
    helpers = node_helpers(tree, [kind[0] for kind in kinds.values() if kind])
    main_code = f"{header}{helpers}{code.strip()}\n\n\n{wrapper}"
    meaning = {name: _meaning(kind) for name, kind in kinds.items() if kind}
    for name, root in by_value.items():
        meaning[name] = f"the value of a node of `{root}`: the node passed is the first with that value in level order"
    if value_returned:
        meaning["return"] = "the value of the node returned (null for none)"
    for name, statement_name in renamed.items():
        meaning[name] = meaning.get(name, f"the argument `{name}`") + f" (`{statement_name}` in the statement)"
    if in_place and not return_kind:
        meaning["return"] = f"`{params[0][0]}` after the method changed it in place"
    shown = {name: (None if name in by_value else "list" if kinds[name] else annotation) for name, annotation in params}
    shown_return = None if value_returned else "list" if return_kind else returns
    description = io_description([(name, shown[name]) for name, _ in params], shown_return, pairs,
                                 f"the signature of Solution.{method.name} and the examples of {problem.title}", meaning)
    statement = problem.statement
    statement += (f"\n\n(the statement of {problem.title}, its examples removed; the entry point main_solution calls "
                  f"Solution.{method.name}; read without an LLM)")
    return OfflineFunction(name=problem.title, kind=KIND, main_code=main_code, io_description=description,
                           problem_statement=statement, pairs=tuple(pairs))


def design_function(code: str, tree: ast.Module, text: str, problem: Problem, found: Extraction) -> Extraction:
    """A design problem: the class the examples construct, replayed by ``main_solution(operations, arguments)``."""
    sequences, whole, skipped = design.call_sequences(text)
    found.skipped.update(skipped)
    if not sequences:
        found.skipped["no_examples"] += 1
        return found
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    name = sequences[0]["input"]["operations"][0]
    cls = classes.get(name)
    if cls is None:
        found.skipped["design_class_not_defined"] += 1
        return found
    called = {op for sequence in whole for op in sequence[0][1:]} | {"__init__"}
    # only what the judge calls crosses the boundary (a helper method may take the solution's own Node)
    methods = {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name in called}
    flavour = node_flavour(code)
    converters: dict[str, tuple[list[str | None], str | None]] = {}
    used: list[str] = []  # node kinds crossing the boundary
    try:
        for method_name, method in methods.items():
            params = parameters(method.args, skip_first=True)
            returns = ast.unparse(method.returns) if method.returns is not None else None
            ins = [_boundary(annotation, flavour) for _, annotation in params]
            out = _boundary(returns, flavour)
            used += [kind[0] for kind in (*ins, out) if kind]
            converters[method_name] = ([_convert(k, "in", "{}") if k else None for k in ins],
                                       _convert(out, "out", "{}") if out else None)
    except Unsupported as error:
        found.skipped[str(error)] += 1
        return found
    pairs = [pair for pair in sequences if all(op in converters for op in pair["input"]["operations"][1:])]
    whole = [sequence for sequence in whole if all(op in converters for op in sequence[0][1:])]
    if len(pairs) < len(sequences):
        found.skipped["example_unknown_method"] += len(sequences) - len(pairs)
    if not pairs:
        found.skipped["no_examples"] += 1
        return found
    parts = judge_imports(tree)
    header = "\n".join(parts) + "\n\n" if parts else ""
    main_code = f"{header}{node_helpers(tree, used)}{code.strip()}\n\n\n{design.replay_wrapper(name, converters)}"
    description = design.io_description(name, whole, problem.title)
    statement = problem.statement + (f"\n\n(the statement of {problem.title}, its examples removed; the entry point "
                                     f"main_solution replays a sequence of calls on {name}; read without an LLM)")
    found.functions.append(OfflineFunction(name=problem.title, kind=KIND, main_code=main_code,
                                           io_description=description, problem_statement=statement,
                                           pairs=tuple(pairs), generator_code=design.input_generator(whole)))
    return found


def _mentions(tree: ast.Module, name: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(tree)) or \
        any(isinstance(n, ast.Constant) and isinstance(n.value, str) and name in n.value for n in ast.walk(tree))


# -- codecs: encode, then decode, as the judge does -------------------------------------------------------
@dataclass(frozen=True)
class Harness:
    """A codec's round trip: ``cls().outer(cls().inner(value))`` (``shared``: one instance for both)."""

    cls: str
    inner: str
    outer: str
    shared: bool


def codec_harness(code: str, tree: ast.Module) -> Harness | None:
    """The round trip the solution file's closing comment shows, on a class it defines, or None."""
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    instances = {m.group("obj"): m.group("cls") for m in HARNESS_INSTANCE.finditer(code) if m.group("cls") in classes}
    nested = HARNESS_NESTED.search(code)
    if nested is not None:
        outer_obj, inner_obj = nested.group("outer_obj"), nested.group("inner_obj")
        inner, outer = nested.group("inner"), nested.group("outer")
    else:
        steps = list(HARNESS_STEP.finditer(code))
        chained = next(((a, b) for a in steps for b in steps if b.group("arg") == a.group("target")), None)
        if chained is None:
            return None
        inner_obj, inner = chained[0].group("obj"), chained[0].group("method")
        outer_obj, outer = chained[1].group("obj"), chained[1].group("method")
    if inner_obj not in instances or instances.get(outer_obj) != instances[inner_obj]:
        return None
    return Harness(instances[inner_obj], inner, outer, shared=inner_obj == outer_obj)


def _annotation(method: ast.FunctionDef, name: str | None) -> str | None:
    """A parameter's (``name``) or the return's (None) annotation, else its docstring type."""
    if name is None:
        if method.returns is not None:
            return ast.unparse(method.returns)
        match = DOC_RETURN_TYPE.search(ast.get_docstring(method) or "")
    else:
        arg = next(a for a in method.args.args if a.arg == name)
        if arg.annotation is not None:
            return ast.unparse(arg.annotation)
        match = re.search(DOC_TYPE.format(name=re.escape(name)), ast.get_docstring(method) or "", re.M)
    return match.group("type") if match else None


def codec_function(code: str, tree: ast.Module, harness: Harness, examples: list[Example], problem: Problem,
                   found: Extraction) -> Extraction:
    """``main_solution(value)`` returning ``outer(inner(value))``: what the judge compares
    with the statement's output (the examples are round trips)."""
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == harness.cls)
    methods = {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}
    inner, outer = methods.get(harness.inner), methods.get(harness.outer)
    if inner is None or outer is None:
        found.skipped["no_entry_method"] += 1
        return found
    params = checked_parameters(inner.args, found.skipped, skip_first=True)
    if params is None:
        return found
    if len(params) != 1:
        found.skipped["codec_arguments"] += 1
        return found
    name = params[0][0]
    try:
        flavour = node_flavour(code)
        value_in = _boundary(_annotation(inner, name), flavour)
        value_out = _boundary(_annotation(outer, None), flavour)
    except Unsupported as error:
        found.skipped[str(error)] += 1
        return found
    renamed: dict[str, str] = {}
    pairs = _pairs(examples, [name], found, renamed)
    if not pairs:
        found.skipped["no_examples"] += 1
        return found
    argument = _convert(value_in, "in", name) if value_in else name
    second = "first" if harness.shared else f"{harness.cls}()"
    result = f"{second}.{harness.outer}(first.{harness.inner}({argument}))"
    wrapper = (f"def {MAIN_NAME}({name}):\n    first = {harness.cls}()\n"
               f"    return {_convert(value_out, 'out', result) if value_out else result}\n")
    parts = judge_imports(tree)
    header = "\n".join(parts) + "\n\n" if parts else ""
    helpers = node_helpers(tree, [kind[0] for kind in (value_in, value_out) if kind])
    main_code = f"{header}{helpers}{code.strip()}\n\n\n{wrapper}"
    trip = f"{harness.cls}.{harness.inner}, then {harness.cls}.{harness.outer}"
    meaning = {name: _meaning(value_in) if value_in else f"the value to encode with {harness.cls}.{harness.inner}",
               "return": f"the value after the round trip through {trip}"
               + (f": {_meaning(value_out)}" if value_out else "")}
    if name in renamed:
        meaning[name] += f" (`{renamed[name]}` in the statement)"
    description = io_description([(name, "list" if value_in else params[0][1])], "list" if value_out else None, pairs,
                                 f"the signatures of {harness.cls} and the examples of {problem.title}", meaning)
    statement = problem.statement + (f"\n\n(the statement of {problem.title}, its examples removed; the entry point "
                                     f"main_solution encodes with {harness.cls}.{harness.inner} and decodes the result "
                                     f"with {harness.cls}.{harness.outer}, as the judge does; read without an LLM)")
    found.functions.append(OfflineFunction(name=problem.title, kind=KIND, main_code=main_code, io_description=description,
                                           problem_statement=statement, pairs=tuple(pairs)))
    return found
