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
``ListNode``/``TreeNode`` classes with converters, and a ``main_solution`` that
converts JSON lists to linked lists/trees at the boundary and back, and returns
the first argument when the method works in place (``-> None``).
"""

from __future__ import annotations

import ast
import builtins
import html
import importlib
import re
from pathlib import Path
from typing import Any

from codeio.examples.base import Extraction, OfflineFunction, parse_module
from codeio.examples.literals import NotJSON, read_literal
from codeio.examples.wrapping import MAIN_NAME, Unsupported, call_parts, entry_wrapper, io_description, parameters

KIND = "leetcode"
FORMAT = "leetcode"  # the "format" of a problem record's payload
STATEMENT_FILE = "README_EN.md"
SOLUTION_FILE = "Solution.py"
SOLUTION_CLASS = "Solution"

DESCRIPTION_SPAN = re.compile(r"<!--\s*description:start\s*-->(.*?)<!--\s*description:end\s*-->", re.S)
DESCRIPTION_HEADING = re.compile(r"^##\s+Description\s*$(.*?)(?=^##\s)", re.S | re.M)
TITLE_LINE = re.compile(r"^#\s+\[(?P<title>[^\]]+)\]\((?P<url>[^)]*)\)", re.M)
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

# Modules whose names LeetCode's judge pre-imports, in the order a name is looked up.
JUDGE_MODULES = ("collections", "heapq", "bisect", "itertools", "functools", "math", "string", "operator",
                 "typing", "re", "random")
LIST_NODE, TREE_NODE = "ListNode", "TreeNode"
# Custom judge types we cannot build from JSON (random pointers, N-ary nodes, interactive APIs).
UNSUPPORTED_TYPES = ("Node", "NestedInteger", "Employee", "ImmutableListNode", "MountainArray", "Master",
                     "Robot", "Sea", "ArrayReader", "BinaryMatrix", "CustomFunction", "GridMaster", "HtmlParser")

LIST_HELPERS = '''
# LeetCode's linked-list node, and converters from/to the JSON list of its values
class ListNode:
    def __init__(self, val=0, next=None):
        self.val = val
        self.next = next


def _to_list_node(values):
    head = None
    for value in reversed(values or []):
        head = ListNode(value, head)
    return head


def _from_list_node(node, limit=10000):
    values = []
    while node is not None and len(values) < limit:
        values.append(node.val)
        node = node.next
    return values
'''.strip("\n")

TREE_HELPERS = '''
# LeetCode's binary-tree node, and converters from/to its level order (None: no node)
class TreeNode:
    def __init__(self, val=0, left=None, right=None):
        self.val = val
        self.left = left
        self.right = right


def _to_tree_node(values):
    if not values or values[0] is None:
        return None
    root = TreeNode(values[0])
    level, i = [root], 1
    while level and i < len(values):
        following = []
        for node in level:
            for side in ("left", "right"):
                if i < len(values):
                    if values[i] is not None:
                        child = TreeNode(values[i])
                        setattr(node, side, child)
                        following.append(child)
                    i += 1
        level = following
    return root


def _from_tree_node(root, limit=10000):
    values, queue = [], [root]
    while queue and len(values) < limit:
        node = queue.pop(0)
        if node is None:
            values.append(None)
            continue
        values.append(node.val)
        queue.append(node.left)
        queue.append(node.right)
    while values and values[-1] is None:
        values.pop()
    return values
'''.strip("\n")


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
    return {"format": FORMAT, "title": title.group("title").strip() if title else "",
            "url": title.group("url").strip() if title else "",
            "difficulty": difficulty.group(1) if difficulty else None, "statement_html": span.group(1).strip()}


def problem_folders(root: Path) -> list[Path]:
    """Every folder under ``root`` (or ``root`` itself) with a README_EN.md, sorted."""
    return sorted({p.parent for p in root.rglob(STATEMENT_FILE) if p.is_file()})


def statement_text(payload: dict[str, Any], with_examples: bool = True) -> str:
    """The statement as plain text, optionally without its examples (they are the pairs)."""
    text = html_to_text(payload.get("statement_html") or "")
    if not with_examples:
        start = EXAMPLES_START.search(text)
        if start is not None:
            end = CONSTRAINTS_START.search(text, start.end())
            text = (text[:start.start()].rstrip() + ("\n\n" + text[end.start():].lstrip() if end else "")).strip()
    return text


def statement_for_normalization(payload: dict[str, Any], code: str) -> str:
    """What the normalization LLM reads for a problem: the statement as a comment
    block above the solution, so the one normalize template serves both."""
    title = payload.get("title") or "problem"
    lines = [f"# Problem statement ({title}):"]
    lines += [f"# {line}".rstrip() for line in statement_text(payload).split("\n")]
    return "\n".join(lines) + "\n\n" + code


# -- examples ------------------------------------------------------------------------------------------
def split_arguments(text: str) -> dict[str, str] | None:
    """``a = [1,2], s = "x,y"`` -> {"a": "[1,2]", "s": '"x,y"'} (split at depth 0 outside strings)."""
    text = " ".join(text.split())
    starts: list[tuple[int, int, str]] = []  # (name start, value start, name)
    depth, quote, escaped = 0, "", False
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif depth == 0 and (i == 0 or text[:i].rstrip().endswith(",")) and (i == 0 or text[i - 1] in ", "):
            match = ARGUMENT_NAME.match(text, i)
            if match is not None:
                starts.append((i, match.end(), match.group(0)[:-1].strip()))
                i = match.end()
                continue
        i += 1
    if not starts:
        return None
    values: dict[str, str] = {}
    for n, (_, value_start, name) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(text)
        values[name] = text[value_start:end].strip().rstrip(",").strip()
    return values


def statement_examples(payload: dict[str, Any]) -> tuple[list[tuple[dict[str, Any] | str, Any]], list[str]]:
    """([(arguments by name, or the bare value text), output], reasons of skipped examples)."""
    found: list[tuple[dict[str, Any] | str, Any]] = []
    skipped: list[str] = []
    for match in EXAMPLE.finditer(statement_text(payload)):
        try:
            output = read_literal(match.group("output"), json_words=True)
        except NotJSON:
            skipped.append("example_output_not_json")
            continue
        raw_input = match.group("input").strip()
        arguments = split_arguments(raw_input)
        if arguments is None:
            found.append((raw_input, output))  # a single unnamed value: matched to the only parameter later
            continue
        try:
            found.append(({name: read_literal(value, json_words=True) for name, value in arguments.items()}, output))
        except NotJSON:
            skipped.append("example_argument_not_json")
    return found, skipped


# -- the function ---------------------------------------------------------------------------------------
def _entry_method(cls: ast.ClassDef, names: set[str]) -> ast.FunctionDef | None:
    methods = [n for n in cls.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")
               and not any(isinstance(d, ast.Name) and d.id in ("staticmethod", "classmethod") for d in n.decorator_list)]
    for method in methods:
        params = {a.arg for a in [*method.args.posonlyargs, *method.args.args][1:]}
        if names and params == names:
            return method
    return methods[0] if len(methods) == 1 else None


def _node_kind(annotation: str | None) -> str | None:
    """How a value of this annotation crosses the boundary: list_node, tree_node,
    list_of_list_nodes, list_of_tree_nodes, or None (plain JSON)."""
    if not annotation:
        return None
    for name in UNSUPPORTED_TYPES:
        if re.search(rf"\b{name}\b", annotation):
            raise Unsupported(f"custom_type:{name}")
    plural = re.match(r"\s*(List|list)\[", annotation) is not None
    if re.search(rf"\b{LIST_NODE}\b", annotation):
        return "list_of_list_nodes" if plural else "list_node"
    if re.search(rf"\b{TREE_NODE}\b", annotation):
        return "list_of_tree_nodes" if plural else "tree_node"
    return None


TO_NODES = {"list_node": "_to_list_node({})", "tree_node": "_to_tree_node({})",
            "list_of_list_nodes": "[_to_list_node(v) for v in {}]", "list_of_tree_nodes": "[_to_tree_node(v) for v in {}]"}
FROM_NODES = {"list_node": "_from_list_node({})", "tree_node": "_from_tree_node({})",
              "list_of_list_nodes": "[_from_list_node(v) for v in {}]",
              "list_of_tree_nodes": "[_from_tree_node(v) for v in {}]"}
NODE_MEANING = {"list_node": "a linked list (ListNode), given as the list of its values from the head",
                "tree_node": "a binary tree (TreeNode), given in level order with null for missing children",
                "list_of_list_nodes": "linked lists (ListNode), each given as the list of its values",
                "list_of_tree_nodes": "binary trees (TreeNode), each given in level order"}


def judge_imports(tree: ast.Module) -> list[str]:
    """The import lines LeetCode's judge supplies for the names the solution uses
    and does not define (looked up in :data:`JUDGE_MODULES`; the standard library
    is imported here to look names up, the solution never is)."""
    defined = {name for node in ast.walk(tree) for name in _bound(node)}
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    used |= {ast.unparse(a.value) for a in ast.walk(tree) if isinstance(a, ast.Attribute) and isinstance(a.value, ast.Name)}
    missing = sorted(used - defined - set(dir(builtins)) - {LIST_NODE, TREE_NODE})
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
    """The unified function of a problem folder, or the reason there is none."""
    found = Extraction()
    tree = parse_module(code, found)
    if tree is None:
        return found
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == SOLUTION_CLASS), None)
    if cls is None:
        found.skipped["no_solution_class"] += 1  # design problems (a class per problem) are not read yet
        return found
    examples, skipped = statement_examples(payload)
    found.skipped.update(skipped)
    names = set().union(*(set(args) for args, _ in examples if isinstance(args, dict))) if examples else set()
    method = _entry_method(cls, names)
    if method is None:
        found.skipped["no_entry_method"] += 1
        return found
    try:
        params = parameters(method.args, skip_first=True)
        kinds = {name: _node_kind(annotation) for name, annotation in params}
        returns = ast.unparse(method.returns) if method.returns is not None else None
        return_kind = _node_kind(returns)
    except Unsupported as error:
        found.skipped[str(error)] += 1
        return found
    if not params:
        found.skipped["no_parameters"] += 1
        return found
    renamed: dict[str, str] = {}
    pairs = _pairs(examples, [name for name, _ in params], found, renamed)
    if not pairs:
        found.skipped["no_examples"] += 1
        return found
    found.functions.append(_function(code, tree, payload, method, params, kinds, returns, return_kind, pairs, renamed))
    return found


def _pairs(examples: list[tuple[dict[str, Any] | str, Any]], names: list[str], found: Extraction,
           renamed: dict[str, str]) -> list[dict[str, Any]]:
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


def _function(code: str, tree: ast.Module, payload: dict[str, Any], method: ast.FunctionDef,
              params: list[tuple[str, str | None]], kinds: dict[str, str | None], returns: str | None,
              return_kind: str | None, pairs: list[dict[str, Any]], renamed: dict[str, str]) -> OfflineFunction:
    convert = {name: TO_NODES[kind].format(name) for name, kind in kinds.items() if kind}
    in_place = returns == "None"
    target = f"Solution().{method.name}"
    if in_place:  # LeetCode judges the first argument, changed in place
        signature, call = call_parts(method.args, skip_first=True, convert=convert)
        first, first_kind = params[0][0], kinds[params[0][0]]
        if first_kind:
            wrapper = (f"def {MAIN_NAME}({signature}):\n    arguments = [{', '.join(call)}]\n"
                       f"    {target}(*arguments)\n    return {FROM_NODES[first_kind].format('arguments[0]')}\n")
        else:
            wrapper = f"def {MAIN_NAME}({signature}):\n    {target}({', '.join(call)})\n    return {first}\n"
    else:
        wrapper = entry_wrapper(method.args, target, skip_first=True, convert=convert,
                                result=FROM_NODES[return_kind] if return_kind else "{}")
    parts = judge_imports(tree)
    header = "\n".join(parts) + "\n\n" if parts else ""
    helpers = "".join(text + "\n\n\n" for name, text in ((LIST_NODE, LIST_HELPERS), (TREE_NODE, TREE_HELPERS))
                      if _mentions(tree, name))
    main_code = f"{header}{helpers}{code.strip()}\n\n\n{wrapper}"
    title = payload.get("title") or "a LeetCode problem"
    meaning = {name: NODE_MEANING[kind] for name, kind in kinds.items() if kind}
    for name, statement_name in renamed.items():
        meaning[name] = meaning.get(name, f"the argument `{name}`") + f" (`{statement_name}` in the statement)"
    if return_kind:
        meaning["return"] = NODE_MEANING[return_kind]
    elif in_place:
        meaning["return"] = f"`{params[0][0]}` after the method changed it in place"
    shown = {name: ("list" if kind else annotation) for (name, annotation), kind in zip(params, kinds.values())}
    description = io_description([(name, shown[name]) for name, _ in params],
                                 "list" if return_kind else returns, pairs,
                                 f"the signature of Solution.{method.name} and the examples of {title}", meaning)
    statement = statement_text(payload, with_examples=False)
    statement += (f"\n\n(the statement of {title}, its examples removed; the entry point main_solution calls "
                  f"Solution.{method.name}; read without an LLM)")
    return OfflineFunction(name=title, kind=KIND, main_code=main_code, io_description=description,
                           problem_statement=statement, pairs=tuple(pairs))


def _mentions(tree: ast.Module, name: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(tree)) or \
        any(isinstance(n, ast.Constant) and isinstance(n.value, str) and name in n.value for n in ast.walk(tree))
