def main_solution(words):
    return list(set(words))
