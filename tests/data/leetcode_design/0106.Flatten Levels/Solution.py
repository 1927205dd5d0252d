"""
# Definition for a Node.
class Node:
    def __init__(self, val, prev, next, child):
        self.val = val
        self.prev = prev
        self.next = next
        self.child = child
"""


class Solution:
    def flattenLevels(self, head: "Optional[Node]") -> "Optional[Node]":
        return head
