class Solution:
    def mostCommonLetter(self, word: str) -> str:
        counts = Counter(word)
        return min(counts, key=lambda c: (-counts[c], c))
