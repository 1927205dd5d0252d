def main_solution(x):
    block = bytearray(6 * 1024 ** 3)
    return len(block)
