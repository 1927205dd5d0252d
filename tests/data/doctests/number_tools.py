"""Number helpers with doctests (written for codeio's tests)."""

from math import gcd


def digit_sum(n: int) -> int:
    """Sum of the decimal digits of ``n``.

    >>> number = 1234
    >>> digit_sum(number)
    10
    >>> digit_sum(-907)
    16
    """
    return sum(int(d) for d in str(abs(n)))


def reduce_fraction(numerator: int, denominator: int) -> tuple:
    """The fraction in lowest terms, as a (numerator, denominator) tuple.

    >>> reduce_fraction(6, 8)
    (3, 4)
    >>> reduce_fraction(10, 5)
    (2, 1)
    """
    common = gcd(numerator, denominator)
    return numerator // common, denominator // common


def running_max(values: list) -> list:
    """The largest value seen so far, at each position.

    >>> running_max([3, 1, 4, 1, 5])
    [3, 3, 4, 4, 5]
    >>> running_max([2, 7]) == [2, 7]
    True
    """
    best, out = None, []
    for value in values:
        best = value if best is None or value > best else best
        out.append(best)
    return out


def unique_count(items: set) -> int:
    """Sets have no JSON form: not a pair.

    >>> unique_count({1, 2, 2})
    2
    """
    return len(items)


def wrong_doc(x):
    """This doctest is wrong: the run does not reproduce it.

    >>> wrong_doc(2)
    5
    >>> wrong_doc(3)
    7
    """
    return x * 2
