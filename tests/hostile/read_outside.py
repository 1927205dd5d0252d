def main_solution(paths):
    read = {}
    for path in paths:
        try:
            with open(path, "rb") as fh:
                read[path] = fh.read(200).decode("latin-1")
        except OSError:
            pass
    return read
