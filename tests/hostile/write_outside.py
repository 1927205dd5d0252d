import os

def main_solution(paths):
    written = []
    for path in paths:
        try:
            with open(path, "w") as fh:
                fh.write("escaped")
            written.append(path)
        except OSError:
            pass
    with open("inside.txt", "w") as fh:  # the private work dir is writable
        fh.write("fine")
    return written
