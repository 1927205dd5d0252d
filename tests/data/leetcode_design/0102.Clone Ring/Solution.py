"""
# Definition for a Node.
class Node:
    def __init__(self, val = 0, neighbors = None):
        self.val = val
        self.neighbors = neighbors if neighbors is not None else []
"""


class Solution:
    def cloneRing(self, node: Optional["Node"]) -> Optional["Node"]:
        copies = {}

        def copy(original):
            if original is None:
                return None
            if original in copies:
                return copies[original]
            clone = Node(original.val)
            copies[original] = clone
            clone.neighbors = [copy(n) for n in original.neighbors]
            return clone

        return copy(node)
