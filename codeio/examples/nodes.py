"""LeetCode's judge node types, and how their values cross the ``main_solution`` boundary.

A solution written for LeetCode's judge takes and returns node objects the judge
builds from the statement's serialization. :data:`NODE_TYPES` names each
supported type, the class the judge defines (supplied with the code only when
the solution mentions it), the converters from/to the JSON form the statements
use, and what that form means:

- ``list_node``: ``ListNode(val, next)``, the list of its values from the head.
- ``tree_node``: ``TreeNode(val, left, right)``, level order with null for a missing child.
- ``graph_node``: ``Node(val, neighbors)`` (Clone Graph), the adjacency list of
  nodes 1..n (``[[2,4],[1,3],...]``); the node passed is node 1.
- ``random_list_node``: ``Node(x, next, random)`` (Copy List with Random
  Pointer), ``[[val, random index or null], ...]``.
- ``nary_node``: ``Node(val, children)`` (N-ary trees), level order with each
  node's children after a null (``[1,null,3,2,4,null,5,6]``).
- ``next_tree_node``: ``Node(val, left, right, next)`` (Populating Next Right
  Pointers), a binary tree in level order in; out, each level followed by ``"#"``
  along the ``next`` pointers (the statements' ``[1,#,2,3,#]``).
- ``nested_integer``: ``NestedInteger`` (Nested List Weight Sum, Mini Parser),
  an integer or a list of nested integers (``[[1,1],2,[1,1]]``).

The four ``Node`` types share one class name: which one a solution means is read
from the judge's definition that LeetCode shows above it (kept as a comment or
string in the solution file): the attributes it assigns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LIST_NODE, TREE_NODE, NODE, NESTED_INTEGER = "ListNode", "TreeNode", "Node", "NestedInteger"

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

# Level order (None: no node) -> binary tree, for the two binary-tree node classes.
LEVEL_ORDER_BUILDER = '''
def {function}(values):
    if not values or values[0] is None:
        return None
    root = {cls}(values[0])
    level, i = [root], 1
    while level and i < len(values):
        following = []
        for node in level:
            for side in ("left", "right"):
                if i < len(values):
                    if values[i] is not None:
                        child = {cls}(values[i])
                        setattr(node, side, child)
                        following.append(child)
                    i += 1
        level = following
    return root
'''.strip("\n")

TREE_HELPERS = '''
# LeetCode's binary-tree node, and converters from/to its level order (None: no node)
class TreeNode:
    def __init__(self, val=0, left=None, right=None):
        self.val = val
        self.left = left
        self.right = right


{tree_builder}


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
'''.strip("\n").replace("{tree_builder}", LEVEL_ORDER_BUILDER.format(function="_to_tree_node", cls="TreeNode"))

GRAPH_HELPERS = '''
# LeetCode's graph node (Clone Graph), and converters from/to the adjacency list of nodes 1..n
class Node:
    def __init__(self, val=0, neighbors=None):
        self.val = val
        self.neighbors = neighbors if neighbors is not None else []


def _to_graph_node(adjacency):
    if not adjacency:
        return None
    nodes = [Node(i + 1) for i in range(len(adjacency))]
    for node, neighbors in zip(nodes, adjacency):
        node.neighbors = [nodes[j - 1] for j in neighbors]
    return nodes[0]


def _from_graph_node(node, limit=10000):
    if node is None:
        return []
    seen, queue = {id(node): node}, [node]
    while queue and len(seen) < limit:
        current = queue.pop(0)
        for neighbor in current.neighbors:
            if id(neighbor) not in seen:
                seen[id(neighbor)] = neighbor
                queue.append(neighbor)
    ordered = sorted(seen.values(), key=lambda n: n.val)
    return [[neighbor.val for neighbor in n.neighbors] for n in ordered]
'''.strip("\n")

RANDOM_LIST_HELPERS = '''
# LeetCode's linked-list node with a random pointer, and converters from/to [[val, random index or None], ...]
class Node:
    def __init__(self, x=0, next=None, random=None):
        self.val = int(x)
        self.next = next
        self.random = random


def _to_random_list_node(pairs):
    nodes = [Node(val) for val, _ in pairs or []]
    for i, (_, target) in enumerate(pairs or []):
        if i + 1 < len(nodes):
            nodes[i].next = nodes[i + 1]
        nodes[i].random = nodes[target] if target is not None else None
    return nodes[0] if nodes else None


def _from_random_list_node(head, limit=10000):
    nodes = []
    while head is not None and len(nodes) < limit:
        nodes.append(head)
        head = head.next
    index = {id(n): i for i, n in enumerate(nodes)}
    return [[n.val, index.get(id(n.random)) if n.random is not None else None] for n in nodes]
'''.strip("\n")

NARY_HELPERS = '''
# LeetCode's N-ary tree node, and converters from/to its level order (children after a None)
class Node:
    def __init__(self, val=None, children=None):
        self.val = val
        self.children = children if children is not None else []


def _to_nary_node(values):
    if not values or values[0] is None:
        return None
    root = Node(values[0])
    parents, i = [root], 2
    for parent in parents:
        while i < len(values) and values[i] is not None:
            child = Node(values[i])
            parent.children.append(child)
            parents.append(child)
            i += 1
        i += 1
    return root


def _from_nary_node(root, limit=10000):
    if root is None:
        return []
    values, queue = [root.val, None], [root]
    while queue and len(values) < limit:
        node = queue.pop(0)
        for child in node.children:
            values.append(child.val)
            queue.append(child)
        values.append(None)
    while values and values[-1] is None:
        values.pop()
    return values
'''.strip("\n")

NEXT_TREE_HELPERS = '''
# LeetCode's binary-tree node with a next pointer, in as level order, out as levels along next ending in "#"
class Node:
    def __init__(self, val=0, left=None, right=None, next=None):
        self.val = val
        self.left = left
        self.right = right
        self.next = next


{next_builder}


def _from_next_tree_node(root, limit=10000):
    values, start = [], root
    while start is not None and len(values) < limit:
        node, following = start, None
        while node is not None and len(values) < limit:
            values.append(node.val)
            following = following or node.left or node.right
            node = node.next
        values.append("#")
        start = following
    return values
'''.strip("\n").replace("{next_builder}", LEVEL_ORDER_BUILDER.format(function="_to_next_tree_node", cls="Node"))


NESTED_INTEGER_HELPERS = '''
# LeetCode's nested integer (an integer, or a list of nested integers), and converters from/to its JSON form
class NestedInteger:
    def __init__(self, value=None):
        self._integer = value
        self._list = [] if value is None else None

    def isInteger(self):
        return self._list is None

    def add(self, elem):
        if self._list is None:
            self._integer, self._list = None, []
        self._list.append(elem)

    def setInteger(self, value):
        self._integer, self._list = value, None

    def getInteger(self):
        return self._integer

    def getList(self):
        return self._list


def _to_nested_integer(value):
    if isinstance(value, list):
        nested = NestedInteger()
        for item in value:
            nested.add(_to_nested_integer(item))
        return nested
    return NestedInteger(value)


def _from_nested_integer(nested):
    if nested is None:
        return None
    if nested.isInteger():
        return nested.getInteger()
    return [_from_nested_integer(item) for item in nested.getList()]
'''.strip("\n")


@dataclass(frozen=True)
class NodeType:
    kind: str
    class_name: str
    helpers: str  # the class and its converters, supplied with the code
    meaning: str  # the JSON form, for the I/O description

    @property
    def to_nodes(self) -> str:
        return f"_to_{self.kind}"

    @property
    def from_nodes(self) -> str:
        return f"_from_{self.kind}"


NODE_TYPES = {t.kind: t for t in (
    NodeType("list_node", LIST_NODE, LIST_HELPERS, "a linked list (ListNode), given as the list of its values from the head"),
    NodeType("tree_node", TREE_NODE, TREE_HELPERS, "a binary tree (TreeNode), given in level order with null for missing children"),
    NodeType("graph_node", NODE, GRAPH_HELPERS,
             "a graph (Node with neighbors), given as the adjacency list of nodes 1..n (the node passed is node 1)"),
    NodeType("random_list_node", NODE, RANDOM_LIST_HELPERS,
             "a linked list with random pointers (Node), given as [value, index of the random node or null] per node"),
    NodeType("nary_node", NODE, NARY_HELPERS,
             "an N-ary tree (Node with children), given in level order, each node's children after a null"),
    NodeType("next_tree_node", NODE, NEXT_TREE_HELPERS,
             "a binary tree with next pointers (Node), given in level order; returned as its levels along the next "
             "pointers, each ended by \"#\""),
    NodeType("nested_integer", NESTED_INTEGER, NESTED_INTEGER_HELPERS,
             "a nested integer (NestedInteger), given as an integer or a list of nested integers"),
)}

# Which Node the judge's definition (shown above the solution) means, by the attributes it sets; first match wins.
NODE_FLAVOURS = (
    ("graph_node", re.compile(r"self\.neighbors\b")),
    ("random_list_node", re.compile(r"self\.random\b")),
    ("nary_node", re.compile(r"self\.children\b")),
    ("next_tree_node", re.compile(r"self\.next\b(?=[\s\S]*self\.left\b)|self\.left\b(?=[\s\S]*self\.next\b)")),
)
# Definitions that set these are types we cannot build from a statement (multilevel lists, quad trees, ...).
NODE_UNSUPPORTED = re.compile(r"self\.(child|prev|isLeaf|topLeft|parent)\b")


def node_flavour(code: str) -> str | None:
    """The kind of ``Node`` the solution file's judge definition describes, or None."""
    if NODE_UNSUPPORTED.search(code):
        return None
    for kind, pattern in NODE_FLAVOURS:
        if pattern.search(code):
            return kind
    return None


def node_kind(annotation: str | None, flavour: str | None) -> tuple[str | None, bool]:
    """(node kind, plural) of a parameter or return annotation: ``List[ListNode]``
    -> ("list_node", True); plain JSON -> (None, False). ``Node`` takes the
    solution's flavour; a ``Node`` of no known flavour is raised by the caller."""
    if not annotation:
        return None, False
    plural = re.match(r"\s*[\"']?(List|list)\[", annotation) is not None
    if re.search(rf"\b{LIST_NODE}\b", annotation):
        return "list_node", plural
    if re.search(rf"\b{TREE_NODE}\b", annotation):
        return "tree_node", plural
    if re.search(rf"\b{NESTED_INTEGER}\b", annotation):
        return "nested_integer", plural
    if re.search(rf"\b{NODE}\b", annotation):
        return flavour or "unknown_node", plural
    return None, False
