# -*- coding: utf-8 -*-
# Rational number class, old style (Python 2)
from __future__ import division


def gcd(a, b):
    while b:
        a, b = b, a % b
    return abs(a)


class Frac(object):
    def __init__(self, num, den=1):
        if den == 0:
            raise ZeroDivisionError, "denominator is zero"
        g = gcd(num, den)
        sign = -1 if den < 0 else 1
        self.num = sign * num // g
        self.den = sign * den // g

    def __add__(self, other):
        return Frac(self.num * other.den + other.num * self.den, self.den * other.den)

    def __sub__(self, other):
        return Frac(self.num * other.den - other.num * self.den, self.den * other.den)

    def __mul__(self, other):
        return Frac(self.num * other.num, self.den * other.den)

    def __div__(self, other):
        return Frac(self.num * other.den, self.den * other.num)

    def __cmp__(self, other):
        return cmp(self.num * other.den, other.num * self.den)

    def __repr__(self):
        return "%d/%d" % (self.num, self.den)


def harmonic(n):
    total = Frac(0)
    for k in range(1, n + 1):
        total = total + Frac(1, k)
    return total


def egyptian(frac):
    """Greedy Egyptian fraction decomposition."""
    parts = []
    while frac.num != 0:
        d = -(-frac.den // frac.num)
        parts.append(Frac(1, d))
        frac = frac - Frac(1, d)
    return parts


if __name__ == "__main__":
    print harmonic(10)
    print egyptian(Frac(4, 13))
