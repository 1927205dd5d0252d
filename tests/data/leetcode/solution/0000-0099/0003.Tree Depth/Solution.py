class Solution:
    def treeDepth(self, root: Optional[TreeNode]) -> int:
        if root is None:
            return 0
        return 1 + max(self.treeDepth(root.left), self.treeDepth(root.right))
