"""Plain-Python matrix helpers (no numpy), with doctests.

>>> multiply([[1, 2], [3, 4]], [[5, 6], [7, 8]])
[[19, 22], [43, 50]]
>>> determinant([[2, 0], [1, 3]])
6
"""


def transpose(m):
    return [list(row) for row in zip(*m)]


def multiply(a, b):
    bt = transpose(b)
    return [[sum(x * y for x, y in zip(row, col)) for col in bt] for row in a]


def identity(n):
    return [[1 if i == j else 0 for j in range(n)] for i in range(n)]


def power(m, k):
    result = identity(len(m))
    base = m
    while k:
        if k & 1:
            result = multiply(result, base)
        base = multiply(base, base)
        k >>= 1
    return result


def determinant(m):
    if len(m) == 1:
        return m[0][0]
    if len(m) == 2:
        return m[0][0] * m[1][1] - m[0][1] * m[1][0]
    total = 0
    for col, value in enumerate(m[0]):
        minor = [row[:col] + row[col + 1:] for row in m[1:]]
        total += (-1) ** col * value * determinant(minor)
    return total


def fibonacci(n):
    """n-th Fibonacci number via matrix power."""
    return power([[1, 1], [1, 0]], n)[0][1]


if __name__ == "__main__":
    import doctest

    doctest.testmod()
    print([fibonacci(i) for i in range(15)])
