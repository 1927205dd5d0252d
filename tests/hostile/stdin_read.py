import sys

def main_solution(x):
    return sys.stdin.read()
