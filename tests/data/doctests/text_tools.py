"""Small text helpers with doctests (written for codeio's tests). The module example
is wrong on purpose (the text has 8 vowels): the sandbox run must drop it.

>>> count_vowels("Doctests double as data")
7
"""

VOWELS = frozenset("aeiouAEIOU")


def count_vowels(text: str) -> int:
    """Count the vowels of ``text``.

    >>> count_vowels("banana")
    3
    >>> count_vowels("")
    0
    """
    return sum(1 for char in text if char in VOWELS)


def rotate_letters(text: str, shift: int = 1) -> str:
    """Shift each lower-case letter ``shift`` places along the alphabet.

    >>> rotate_letters("abc")
    'bcd'
    >>> rotate_letters("xyz", shift=3)
    'abc'
    >>> rotate_letters("a-b", 2)
    'c-d'
    """
    out = []
    for char in text:
        if "a" <= char <= "z":
            out.append(chr((ord(char) - ord("a") + shift) % 26 + ord("a")))
        else:
            out.append(char)
    return "".join(out)


def shout(text):
    """Print the text in capitals (its doctest shows printed text: not a pair).

    >>> shout("hi")
    HI
    """
    print(text.upper())


def first_word(text):
    """The first word; an empty text raises.

    >>> first_word("alpha beta")
    'alpha'
    >>> first_word("")
    Traceback (most recent call last):
    ...
    IndexError: list index out of range
    """
    return text.split()[0]


if __name__ == "__main__":
    import doctest

    doctest.testmod()
