def main_solution(x):
    line = "x" * 1023
    for _ in range(200 * 1024):
        print(line)
    return x
