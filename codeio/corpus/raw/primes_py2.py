#!/usr/bin/env python
# Sieve of Eratosthenes and a few prime utilities (written for Python 2.7)
import sys
import math

def sieve(limit):
    is_prime = [True] * (limit + 1)
    is_prime[0] = is_prime[1] = False
    for i in xrange(2, int(math.sqrt(limit)) + 1):
        if is_prime[i]:
            for j in xrange(i * i, limit + 1, i):
                is_prime[j] = False
    return [i for i in xrange(limit + 1) if is_prime[i]]

def factorize(n):
    factors = {}
    d = 2
    while d * d <= n:
        while n % d == 0:
            factors[d] = factors.get(d, 0) + 1
            n /= d
        d += 1
    if n > 1:
        factors[n] = factors.get(n, 0) + 1
    return factors

def goldbach(n):
    primes = set(sieve(n))
    for p in sorted(primes):
        if n - p in primes:
            return p, n - p
    return None

if __name__ == '__main__':
    n = int(raw_input("limit: ")) if len(sys.argv) < 2 else int(sys.argv[1])
    print "primes up to %d:" % n, sieve(n)
    print "factors:", factorize(n)
    if n % 2 == 0:
        print "goldbach:", goldbach(n)
