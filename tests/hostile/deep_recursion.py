import sys

def down(n):
    # Through a C builtin (map), so each level also takes C stack: overflows it.
    return sum(map(down, [n + 1]))

def main_solution(x):
    sys.setrecursionlimit(10 ** 8)
    return down(0)
