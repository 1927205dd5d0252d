# """
# The judge's interface for nested lists (do not implement it).
# """
# class NestedInteger:
#    def isInteger(self):
#    def getInteger(self):
#    def getList(self):
class Solution:
    def depthTotal(self, items: List[NestedInteger]) -> int:
        def walk(level, depth):
            return sum(x.getInteger() * depth if x.isInteger() else walk(x.getList(), depth + 1) for x in level)

        return walk(items, 1)
