class Solution:
    def zerosLast(self, nums: List[int]) -> None:
        """
        Do not return anything, modify nums in-place instead.
        """
        kept = [x for x in nums if x != 0]
        nums[:] = kept + [0] * (len(nums) - len(kept))
