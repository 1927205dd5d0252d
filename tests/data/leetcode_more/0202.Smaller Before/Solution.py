class Solution:
    def smallerBefore(self, nums: List[int]) -> List[int]:
        seen = SortedList()
        counts = []
        for x in nums:
            counts.append(seen.bisect_left(x))
            seen.add(x)
        return counts
