class Solution:
    def readNested(self, s: str) -> NestedInteger:
        if not s.startswith("["):
            return NestedInteger(int(s))
        stack = [NestedInteger()]
        number = ""
        for ch in s[1:]:
            if ch == "[":
                stack.append(NestedInteger())
            elif ch in ",]":
                if number:
                    stack[-1].add(NestedInteger(int(number)))
                    number = ""
                if ch == "]" and len(stack) > 1:
                    inner = stack.pop()
                    stack[-1].add(inner)
            else:
                number += ch
        return stack[0]
