class Solution:
    def anyPeak(self, nums: List[int]) -> int:
        return nums.index(max(nums))
