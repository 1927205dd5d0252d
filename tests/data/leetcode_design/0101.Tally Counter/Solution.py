class TallyCounter:
    def __init__(self, start: int):
        self.start = start
        self.count = start

    def add(self, k: int) -> None:
        self.count += k

    def total(self) -> int:
        return self.count

    def reset(self) -> None:
        self.count = self.start


# Your TallyCounter object will be instantiated and called as such:
# obj = TallyCounter(start)
# obj.add(k)
# param_2 = obj.total()
