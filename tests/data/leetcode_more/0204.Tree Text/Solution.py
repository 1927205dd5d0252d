# Definition for a binary tree node.
# class TreeNode(object):
#     def __init__(self, x):
#         self.val = x
#         self.left = None
#         self.right = None


class Codec:
    def serialize(self, root):
        """Encodes a tree to a single string.

        :type root: TreeNode
        :rtype: str
        """
        if root is None:
            return "-"
        return f"({root.val} {self.serialize(root.left)} {self.serialize(root.right)})"

    def deserialize(self, data):
        """Decodes your encoded data to tree.

        :type data: str
        :rtype: TreeNode
        """
        tokens = data.replace("(", " ( ").replace(")", " ) ").split()

        def build(i):
            if tokens[i] == "-":
                return None, i + 1
            node = TreeNode(int(tokens[i + 1]))
            node.left, i = build(i + 2)
            node.right, i = build(i)
            return node, i + 1

        return build(0)[0]


# Your Codec object will be instantiated and called as such:
# ser = Codec()
# deser = Codec()
# text = ser.serialize(root)
# ans = deser.deserialize(text)
