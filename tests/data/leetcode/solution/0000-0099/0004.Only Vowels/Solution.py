class Solution:
    def onlyVowels(self, s: str) -> bool:
        return all(c in 'aeiou' for c in s)
