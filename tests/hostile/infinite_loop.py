def main_solution(x):
    while True:
        x += 1
