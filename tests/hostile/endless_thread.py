import threading

def spin():
    while True:
        pass

def main_solution(x):
    threading.Thread(target=spin).start()
    return x + 1
