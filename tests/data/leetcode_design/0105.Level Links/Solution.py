"""
# Definition for a Node.
class Node:
    def __init__(self, val: int = 0, left: "Node" = None, right: "Node" = None, next: "Node" = None):
        self.val = val
        self.left = left
        self.right = right
        self.next = next
"""


class Solution:
    def levelLinks(self, root: "Optional[Node]") -> "Optional[Node]":
        level = [root] if root else []
        while level:
            for left, right in zip(level, level[1:]):
                left.next = right
            level = [child for node in level for child in (node.left, node.right) if child]
        return root
