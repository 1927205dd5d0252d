"""
# Definition for a Node.
class Node:
    def __init__(self, val=None, children=None):
        self.val = val
        self.children = children
"""


class Solution:
    def naryDepth(self, root: "Node") -> int:
        if root is None:
            return 0
        return 1 + max((self.naryDepth(child) for child in root.children), default=0)
