import os

def main_solution(x):
    chunk = b"y" * (1 << 20)
    for _ in range(200):
        os.write(1, chunk)
    return x
