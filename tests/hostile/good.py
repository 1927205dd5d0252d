def main_solution(x):
    return x * 2
