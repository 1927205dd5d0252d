class Solution:
    def sumEvens(self, nums: List[int]) -> int:
        return sum(x for x in nums if x % 2 == 0)
