"""Candidate inputs for a function without an input generator, from its examples.

Each argument's shape is read from the example values (JSON only): ints and
floats with their range, strings with their alphabet and lengths, lists with
their item shape, lengths, and whether every example was sorted, had distinct
items or was a binary search tree in LeetCode's level order (so that a
"kth smallest in a BST" never meets a tree that is no BST: its answer would
contradict the statement shown with it), dicts with their keys, nulls with
their share. Between arguments, an order that every example keeps (at least two
of them) is kept too: an int at most, or below, the length of a list or string
(``1 <= k <= nums.length``, an index), an int at most another (``lo <= hi``). Candidates are drawn from
a seeded ``random.Random`` (the same function and seed give the same inputs):
half change one argument of an example (cross-argument constraints such as
``k <= len(nums)`` mostly survive), half draw every argument afresh within
bounds widened around the examples. They are data only; collect_io runs them
in the sandbox and keeps what the function answers, size-checked like any pair.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from typing import Any, Sequence

from codeio.answers import canonical_json
from codeio.sandbox.sizecheck import MAX_ENTRIES, MAX_STR_CHARS, size_violation

MAX_LIST_LEN = MAX_ENTRIES - 1  # the size check's bound on entries (lists of 20+ fail it)
MAX_TEXT_LEN = MAX_STR_CHARS - 1
SMALL_ALPHABET = 6  # at most this many distinct characters: keep exactly those
MAX_DRAWS_PER_CANDIDATE = 8


@dataclass
class Shape:
    """What the example values of one argument (or of the items of a list) look like."""

    kind: str  # bool | int | float | str | list | dict | choice | null
    low: float = 0
    high: float = 0
    decimals: int = 0
    alphabet: str = ""
    min_len: int = 0
    max_len: int = 0
    item: "Shape | None" = None
    keys: tuple[str, ...] = ()
    values: dict[str, "Shape"] = field(default_factory=dict)
    ordered: bool = False  # every example list was sorted (and had 2+ items somewhere)
    distinct: bool = False  # every example list had distinct items (nulls aside: the gaps of a level-order tree)
    bst: bool = False  # every example list was a BST in level order (one with 3+ nodes somewhere)
    null_share: float = 0.0
    seen: list[Any] = field(default_factory=list)


def _decimals(value: float) -> int:
    text = repr(value)
    return min(len(text.split(".", 1)[1]), 4) if "." in text and "e" not in text else 2


def infer(values: Sequence[Any]) -> Shape:
    """The shape of a set of JSON values."""
    present = [v for v in values if v is not None]
    null_share = (len(values) - len(present)) / len(values) if values else 0.0
    if not present:
        return Shape("null", null_share=1.0)
    if all(isinstance(v, bool) for v in present):
        shape = Shape("bool")
    elif all(_is_int(v) for v in present):
        shape = Shape("int", low=min(present), high=max(present))
    elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        shape = Shape("float", low=min(present), high=max(present),
                      decimals=max(_decimals(float(v)) for v in present))
    elif all(isinstance(v, str) for v in present):
        chars = sorted(set("".join(present)))
        shape = Shape("str", alphabet=_alphabet(chars), min_len=min(map(len, present)), max_len=max(map(len, present)))
    elif all(isinstance(v, list) for v in present):
        items = [item for v in present for item in v]
        lengths = [len(v) for v in present]
        multi = [v for v in present if len(v) >= 2]
        shape = Shape("list", item=infer(items) if items else Shape("int", low=0, high=9),
                      min_len=min(lengths), max_len=max(lengths),
                      ordered=bool(multi) and all(_is_sorted(v) for v in multi),
                      distinct=all(_distinct(v) for v in present),
                      bst=_all_search_trees(present))
    elif all(isinstance(v, dict) for v in present):
        key_sets = {tuple(v) for v in present}
        if len(key_sets) == 1:
            keys = next(iter(key_sets))
            shape = Shape("dict", keys=keys, values={k: infer([v[k] for v in present]) for k in keys})
        else:
            shape = Shape("choice")
    else:
        shape = Shape("choice")
    shape.null_share = null_share
    shape.seen = list(present)
    return shape


def _alphabet(chars: list[str]) -> str:
    if len(chars) <= SMALL_ALPHABET:
        return "".join(chars)
    pool = ""
    for group in (string.ascii_lowercase, string.ascii_uppercase, string.digits):
        if any(c in group for c in chars):
            pool += group
    pool += "".join(c for c in chars if c not in pool)
    return pool


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _distinct(items: list[Any]) -> bool:
    present = [canonical_json(item) for item in items if item is not None]
    return len(set(present)) == len(present)


def _is_sorted(items: list[Any]) -> bool:
    try:
        return all(a <= b for a, b in zip(items, items[1:]))
    except TypeError:
        return False


def _tree_links(level_order: list[Any]) -> dict[int, list[int | None]]:
    """Node index -> [left child index, right child index] of a LeetCode level-order list
    (None: no node), the way the judge builds the tree."""
    if not level_order or level_order[0] is None:
        return {}
    links: dict[int, list[int | None]] = {0: [None, None]}
    level, i = [0], 1
    while level and i < len(level_order):
        following = []
        for node in level:
            for side in (0, 1):
                if i < len(level_order):
                    if level_order[i] is not None:
                        links[node][side] = i
                        links[i] = [None, None]
                        following.append(i)
                    i += 1
        level = following
    return links


def _in_order(level_order: list[Any]) -> list[Any]:
    links = _tree_links(level_order)
    out: list[Any] = []
    stack: list[int] = []
    node = 0 if links else None
    while stack or node is not None:
        while node is not None:
            stack.append(node)
            node = links[node][0]
        node = stack.pop()
        out.append(level_order[node])
        node = links[node][1]
    return out


def _is_search_tree(level_order: list[Any]) -> bool:
    if not all(v is None or _is_int(v) for v in level_order):
        return False
    values = _in_order(level_order)
    return all(a < b for a, b in zip(values, values[1:]))


def _all_search_trees(lists: list[list[Any]]) -> bool:
    """Every list is a BST in level order and one has 3+ nodes (fewer say nothing)."""
    return any(sum(v is not None for v in values) >= 3 for values in lists) \
        and all(_is_search_tree(values) for values in lists)


def _search_tree(values: list[Any]) -> list[Any]:
    """The BST built by inserting ``values`` (ints, repeats and None dropped) in their
    order, in level order without trailing nulls."""
    keys = list(dict.fromkeys(v for v in values if v is not None))
    if not keys:
        return []
    children: dict[Any, list[Any]] = {keys[0]: [None, None]}
    for key in keys[1:]:
        node = keys[0]
        while True:
            side = 0 if key < node else 1
            if children[node][side] is None:
                children[node][side] = key
                children[key] = [None, None]
                break
            node = children[node][side]
    out: list[Any] = []
    level: list[Any] = [keys[0]]
    while any(v is not None for v in level):
        out.extend(level)
        level = [child for v in level if v is not None for child in children[v]]
    while out and out[-1] is None:
        out.pop()
    return out


def draw(shape: Shape, rng: random.Random, depth: int = 0) -> Any:
    """A fresh value of the shape, within bounds widened around the examples."""
    if shape.null_share and rng.random() < shape.null_share:
        return None
    if shape.kind == "bool":
        return rng.random() < 0.5
    if shape.kind == "int":
        low, high = _widened(int(shape.low), int(shape.high))
        return rng.randint(low, high)
    if shape.kind == "float":
        low, high = _widened(shape.low, shape.high)
        return round(rng.uniform(low, high), shape.decimals)
    if shape.kind == "str":
        if not shape.alphabet:
            return ""
        length = rng.randint(shape.min_len, min(MAX_TEXT_LEN, shape.max_len + max(1, shape.max_len // 2)))
        return "".join(rng.choice(shape.alphabet) for _ in range(length))
    if shape.kind == "list" and shape.item is not None and depth < 4:
        length = rng.randint(shape.min_len, min(MAX_LIST_LEN, shape.max_len + 2))
        if shape.item.kind == "list" and shape.item.item is not None:  # a matrix keeps its rows equally long
            width = rng.randint(max(shape.item.min_len, 1), min(MAX_LIST_LEN, shape.item.max_len + 1))
            items = [_fixed_row(shape.item, width, rng, depth) for _ in range(length)]
        else:
            items = [draw(shape.item, rng, depth + 1) for _ in range(length)]
        return _arranged(items, shape)
    if shape.kind == "dict":
        return {key: draw(value, rng, depth + 1) for key, value in shape.values.items()}
    if shape.kind == "choice" and shape.seen:
        return rng.choice(shape.seen)
    return None


def _fixed_row(row: Shape, width: int, rng: random.Random, depth: int) -> list[Any]:
    items = [draw(row.item, rng, depth + 2) for _ in range(width)] if row.item is not None else []
    return _arranged(items, row)


def _arranged(items: list[Any], shape: Shape) -> list[Any]:
    if shape.bst:  # the items' order is the insertion order: random when drawn, the example's when mutated
        return _search_tree(items)
    if shape.distinct:
        seen: set[str | None] = set()
        kept = []
        for item in items:
            key = canonical_json(item)
            if item is None or key not in seen:
                kept.append(item)
                seen.add(key)
        items = kept
    if shape.ordered and _is_sorted(sorted(items, key=_order_key)):
        items = sorted(items, key=_order_key)
    return items


def _order_key(value: Any) -> Any:
    return (value is None, value if not isinstance(value, (list, dict)) else canonical_json(value))


def _widened(low: float, high: float) -> tuple[Any, Any]:
    """Bounds half a span wider on each side, never crossing 0 or 1 when the examples do not."""
    span = max(high - low, 2)
    new_low, new_high = low - span / 2, high + span / 2
    for floor in (0, 1):
        if low >= floor > new_low:
            new_low = floor
    if isinstance(low, int) and isinstance(high, int):
        return int(new_low), int(new_high)
    return new_low, new_high


def mutate(value: Any, shape: Shape, rng: random.Random) -> Any:
    """A small change of an example value: one item changed, added or removed (never below
    the examples' shortest length), or a fresh draw."""
    if shape.kind == "list" and isinstance(value, list) and shape.item is not None:
        items = list(value)
        # never shorter than every example (draw keeps that bound too): "1 <= nums.length"
        move = rng.choice(("change", "add", "drop") if len(items) > shape.min_len else ("change", "add")) \
            if items else "add"
        if shape.item.kind == "list" and items and isinstance(items[0], list):  # a matrix row as wide as the others
            fresh = _fixed_row(shape.item, len(items[0]), rng, 1)
        else:
            fresh = draw(shape.item, rng, 1)
        if move == "change":
            items[rng.randrange(len(items))] = fresh
        elif move == "add" and len(items) < MAX_LIST_LEN:
            items.insert(rng.randint(0, len(items)), fresh)
        elif items:
            del items[rng.randrange(len(items))]
        return _arranged(items, shape)
    if shape.kind == "str" and isinstance(value, str) and shape.alphabet:
        chars = list(value)
        move = rng.choice(("change", "add", "drop") if len(chars) > shape.min_len else ("change", "add")) \
            if chars else "add"
        if move == "change":
            chars[rng.randrange(len(chars))] = rng.choice(shape.alphabet)
        elif move == "add" and len(chars) < MAX_TEXT_LEN:
            chars.insert(rng.randint(0, len(chars)), rng.choice(shape.alphabet))
        elif chars:
            del chars[rng.randrange(len(chars))]
        return "".join(chars)
    if shape.kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        low, high = _widened(int(shape.low), int(shape.high))
        return min(high, max(low, value + rng.choice((-2, -1, 1, 2))))
    return draw(shape, rng)


Relation = tuple[str, str, str]  # (int argument, other argument, "<=" | "<" | "len<=" | "len<")


def _holds(relation: Relation, values: dict[str, Any]) -> bool:
    left, right, op = relation
    a, b = values.get(left), values.get(right)
    if not _is_int(a):
        return False
    if op.startswith("len"):
        if not isinstance(b, (list, str)):
            return False
        b = len(b)
    elif not _is_int(b):
        return False
    return a < b if op.endswith("<") else a <= b


def relations(names: Sequence[str], examples: Sequence[dict[str, Any]]) -> list[Relation]:
    """The order relations between two arguments that every example keeps (none from a
    single example: one pair of values says nothing about an order)."""
    if len(examples) < 2:
        return []
    found: list[Relation] = []
    for left in names:
        if not all(_is_int(example.get(left)) for example in examples):
            continue
        for right in names:
            if right == left:
                continue
            for strict, loose in (("len<", "len<="), ("<", "<=")):
                if all(_holds((left, right, strict), example) for example in examples):
                    found.append((left, right, strict))
                    break
                if all(_holds((left, right, loose), example) for example in examples):
                    found.append((left, right, loose))
                    break
    return found


def candidate_inputs(names: Sequence[str], examples: Sequence[dict[str, Any]], count: int, seed: int,
                     avoid: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """Up to ``count`` new inputs (keyword dicts) that pass the size check,
    smallest first. Arguments the examples never give are left out."""
    names = [name for name in names if any(name in example for example in examples)]
    if not names or not examples or count <= 0:
        return []
    shapes = {name: infer([example[name] for example in examples if name in example]) for name in names}
    kept_relations = relations(names, examples)
    rng = random.Random(seed)
    seen = {canonical_json(example) for example in (*examples, *avoid)}
    found: list[dict[str, Any]] = []
    for attempt in range(count * MAX_DRAWS_PER_CANDIDATE):
        if len(found) >= count:
            break
        if attempt % 2 == 0:
            base = rng.choice(list(examples))
            candidate = {name: base[name] for name in names if name in base}
            target = rng.choice(names)
            candidate[target] = mutate(candidate.get(target), shapes[target], rng)
        else:
            candidate = {name: draw(shapes[name], rng) for name in names}
        key = canonical_json(candidate)
        if key is None or key in seen or size_violation(candidate) is not None \
                or not all(_holds(relation, candidate) for relation in kept_relations):
            continue
        seen.add(key)
        found.append(candidate)
    return sorted(found, key=lambda c: len(canonical_json(c) or ""))
