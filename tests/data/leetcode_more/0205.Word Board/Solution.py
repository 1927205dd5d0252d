class WordBoard:
    def __init__(self, words: List[str]):
        self.words = set(words)

    def has(self, word: str) -> bool:
        return word in self.words
