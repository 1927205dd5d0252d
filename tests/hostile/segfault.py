import ctypes

def main_solution(x):
    return ctypes.string_at(0)
