"""LeetCode design problems: a class of its own, examples as call sequences.

A design statement's example is two lists and a result list::

    Input
    ["MinStack","push","push","getMin"]
    [[],[-2],[0],[]]
    Output
    [null,null,null,-2]

The first call constructs the class the statement names; each later call is a
method with its arguments; the output holds each call's result (null for the
constructor and for methods that return nothing). The unified function is
``main_solution(operations, arguments)``, which replays the calls and returns
the list of results (node types crossing the boundary are converted as for
``class Solution``, see :mod:`.nodes`).

The size check of METHOD.md bounds an input to 1 KiB (deep size), about five
calls: each example gives its whole sequence and its prefixes (a prefix of a
call sequence is a call sequence, its output the prefix of the results), longest
first, and the ones over the size check are left to collect_io to drop as it
drops any pair (it still runs them to vet the function). More inputs come from
an ``input_generator`` built from the examples: the constructor call of an
example (a list argument sometimes cut to a random part of it, so that examples
over the size check still lead to small inputs), then a few calls drawn from the
methods the examples call, with arguments taken from theirs and varied a little;
it runs in the sandbox like any row's generator, and calls that raise (``pop``
on an empty stack) only cost a draw.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from codeio.examples.literals import NotJSON, outside_strings, read_literal
from codeio.examples.wrapping import MAIN_NAME, OFFLINE_LABEL
from codeio.sandbox.sizecheck import size_violation

# "Input" (colon optional), then a list whose first item is a string: the call names.
DESIGN_INPUT = re.compile(r"Input\s*:?\s*(?=\[\s*\")")
OUTPUT_LABEL = re.compile(r"\s*Output\s*:?\s*")
PREFIXES_PER_EXAMPLE = 3  # the sequence and its longest prefixes that pass the size check
MIN_PREFIX_CALLS = 2  # the constructor and one call
GENERATED_MAX_CALLS = 5  # calls after the constructor in a generated sequence (the size check allows about that)

GENERATOR = '''
import json
import random

# the call sequences of the statement's examples: [[operations, arguments], ...]
_EXAMPLES = json.loads({examples!r})
_MAX_CALLS = {max_calls}


def _vary(value, strings):
    """An example argument, kept or changed a little (ints by a few, strings to another seen one)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if random.random() < 0.5:
            return value
        shifted = value + random.randint(-3, 3)
        return shifted if shifted >= 0 or value < 0 else value
    if isinstance(value, str):
        return random.choice(strings) if strings and random.random() < 0.5 else value
    if isinstance(value, list):
        return [_vary(item, strings) for item in value]
    return value


def _shrink(value):
    """A constructor's list argument, or half the time a random part of it in order
    (an example's is often what puts it over the size check)."""
    if isinstance(value, list) and len(value) > 1 and random.random() < 0.5:
        keep = sorted(random.sample(range(len(value)), random.randint(1, max(1, len(value) // 2))))
        return [value[i] for i in keep]
    return value


def input_generator():
    operations, arguments = random.choice(_EXAMPLES)
    calls, strings = {{}}, []
    for ops, args in _EXAMPLES:
        for name, values in zip(ops[1:], args[1:]):
            calls.setdefault(name, []).append(values)
            strings += [v for v in values if isinstance(v, str)]
    names = sorted(calls)
    new_operations, new_arguments = [operations[0]], [[_shrink(_vary(v, [])) for v in arguments[0]]]
    for _ in range(random.randint(1, random.randint(1, _MAX_CALLS))):  # short sequences more often
        name = random.choice(names)
        new_operations.append(name)
        new_arguments.append(_vary(random.choice(calls[name]), strings))
    # as JSON builds them: lists grown by append carry spare slots that the deep size counts
    return json.loads(json.dumps({{"operations": new_operations, "arguments": new_arguments}}))
'''.strip("\n")

WRAPPER = '''
# each method: (converters of its arguments, converter of its result); None: plain JSON
_CALLS = {{
{calls}
}}


def {main}(operations, arguments):
    if not operations or operations[0] != {name!r} or len(arguments) != len(operations):
        raise ValueError("operations start with {name!r}, one argument list per operation")
    instance, results = None, []
    for index, (operation, values) in enumerate(zip(operations, arguments)):
        method = "__init__" if index == 0 else operation
        if method not in _CALLS:
            raise ValueError(f"{name} has no method {{operation!r}}")
        converters, result = _CALLS[method]
        values = [f(v) if f else v for f, v in zip(converters, values)] + list(values[len(converters):])
        if index == 0:
            instance = {name}(*values)
            results.append(None)
        else:
            value = getattr(instance, operation)(*values)
            results.append(result(value) if result else value)
    return results
'''.strip("\n")


def _balanced(text: str, start: int) -> int | None:
    """The end (exclusive) of the bracketed list opening at ``start``, strings respected; None if unclosed."""
    depth = 0
    for index, char in outside_strings(text, start):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return index + 1
    return None


def _lists(text: str, start: int, count: int) -> tuple[list[str], int] | None:
    """``count`` bracketed lists from ``start`` (whitespace between them), and where they end."""
    found, position = [], start
    for _ in range(count):
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text) or text[position] != "[":
            return None
        end = _balanced(text, position)
        if end is None:
            return None
        found.append(text[position:end])
        position = end
    return found, position


def call_sequences(text: str) -> tuple[list[dict[str, Any]], list[list[Any]], list[str]]:
    """The design examples of a statement as pairs ``{"input": {"operations", "arguments"}, "output"}``
    (each with its prefixes that pass the size check), the whole ``[operations, arguments]``
    of each, and the reasons examples were skipped."""
    pairs: list[dict[str, Any]] = []
    sequences: list[list[Any]] = []
    skipped: list[str] = []
    for match in DESIGN_INPUT.finditer(text):
        inputs = _lists(text, match.end(), 2)
        label = OUTPUT_LABEL.match(text, inputs[1]) if inputs else None
        output = _lists(text, label.end(), 1) if label else None
        if inputs is None or output is None:
            skipped.append("design_example_malformed")
            continue
        try:
            operations, arguments = (read_literal(part, json_words=True) for part in inputs[0])
            results = read_literal(output[0][0], json_words=True)
        except NotJSON:
            skipped.append("design_example_not_json")
            continue
        if not (operations and all(isinstance(op, str) for op in operations) and isinstance(arguments, list)
                and all(isinstance(a, list) for a in arguments) and isinstance(results, list)
                and len(operations) == len(arguments) == len(results)):
            skipped.append("design_example_malformed")
            continue
        pairs += _prefixes(operations, arguments, results, {pair_key(p) for p in pairs})
        sequences.append([operations, arguments])
    return pairs, sequences, skipped


def _prefixes(operations: list[str], arguments: list[Any], results: list[Any], seen: set[str]) -> list[dict[str, Any]]:
    """The sequence and its longest prefixes (at least the constructor and one call) that pass
    the size check; the whole sequence when none does (collect_io names the drop)."""
    def pair(length: int) -> dict[str, Any]:
        return {"input": {"operations": operations[:length], "arguments": arguments[:length]},
                "output": results[:length]}

    fitting: list[dict[str, Any]] = []
    for length in range(len(operations), MIN_PREFIX_CALLS - 1, -1):
        candidate = pair(length)
        if pair_key(candidate) not in seen and size_violation(candidate["input"]) is None:
            fitting.append(candidate)
            seen.add(pair_key(candidate))
            if len(fitting) >= PREFIXES_PER_EXAMPLE:
                break
    whole = pair(len(operations))
    if not fitting and pair_key(whole) not in seen:
        seen.add(pair_key(whole))
        return [whole]
    return fitting


def pair_key(pair: dict[str, Any]) -> str:
    return json.dumps(pair["input"], sort_keys=True)


def is_design(text: str, tree: ast.Module) -> bool:
    """Whether the statement's examples are call sequences constructing a class the code defines."""
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    for match in DESIGN_INPUT.finditer(text):
        first = re.match(r'\[\s*"([A-Za-z_]\w*)"', text[match.end():])
        if first and first.group(1) in classes:
            return True
    return False


def replay_wrapper(name: str, converters: dict[str, tuple[list[str | None], str | None]]) -> str:
    """``main_solution(operations, arguments)`` replaying the calls on class ``name``.
    ``converters``: per method, the argument and result conversions as ``"_to_x({})"`` texts."""
    def function(text: str | None) -> str:
        return f"lambda value: {text.format('value')}" if text else "None"

    table = dict(converters)
    table.setdefault("__init__", ([], None))
    lines = [f"    {method!r}: ([{', '.join(function(c) for c in ins)}], {function(out)}),"
             for method, (ins, out) in table.items()]
    return WRAPPER.format(calls="\n".join(lines), main=MAIN_NAME, name=name) + "\n"


def input_generator(sequences: list[list[Any]]) -> str:
    """The ``input_generator`` of a design problem, from its examples' call sequences."""
    return GENERATOR.format(examples=json.dumps(sequences), max_calls=GENERATED_MAX_CALLS) + "\n"


def io_description(name: str, sequences: list[list[Any]], title: str) -> str:
    methods = sorted({op for operations, _ in sequences for op in operations[1:]})
    return "\n".join([
        f"({OFFLINE_LABEL.format(what=f'the call sequences in the examples of {title}')})",
        "Input:",
        f"  `operations` (list of str): the calls in order; the first, \"{name}\", constructs the object, "
        f"then its methods ({', '.join(methods)})",
        "  `arguments` (list of list): the arguments of each call, in order",
        "Output:",
        "  `return` (list): each call's result in order (null for the constructor and for methods that "
        "return nothing)",
    ])
