"""Regenerate ``unified.jsonl``, the sample corpus shipped with codeio.

Every function below was written for this project (Apache-2.0, "codeio
project"). The pairs are not typed by hand: this script runs each
``input_generator`` with a fixed seed and each ``main_solution`` on the inputs,
keeps the first ``PAIRS_PER_FUNCTION`` distinct inputs whose input and output
pass the METHOD.md size check, and writes one unified row per function.

The functions are our own trusted code, so they run in this process (each in a
fresh namespace); the test suite re-runs every pair through the sandbox.

    .venv/bin/python -m codeio.corpus.build_corpus          # rewrite unified.jsonl
    .venv/bin/python -m codeio.corpus.build_corpus --check  # fail if it would change
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CORPUS_DIR = Path(__file__).resolve().parent
UNIFIED_PATH = CORPUS_DIR / "unified.jsonl"
PAIRS_PER_FUNCTION = 5
MAX_GENERATOR_CALLS = 200
LICENSE = "Apache-2.0"
AUTHOR = "codeio project"
SEED_PREFIX = "codeio-sample-corpus"


@dataclass(frozen=True)
class Spec:
    name: str
    category: str
    problem: str
    io: str
    code: str
    generator: str


SPECS: list[Spec] = []


def spec(name: str, category: str, problem: str, io: str, code: str, generator: str) -> None:
    SPECS.append(Spec(name, category, problem.strip(), io.strip("\n"), code.strip("\n") + "\n", generator.strip("\n") + "\n"))


# ---------------------------------------------------------------------------
# strings

spec(
    "caesar_cipher", "strings",
    """A courier encodes short notes by shifting every letter of the alphabet a fixed number of places,
keeping the case of each letter and leaving spaces and punctuation untouched. Given the note `text`
and the shift `shift`, what encoded note does the courier hand over?""",
    """Input:
  `text` (str): the note, letters, spaces and punctuation, at most 40 characters.
  `shift` (int): how many places each letter moves forward in the alphabet, between -25 and 25.

Output:
  `return` (str): the encoded note, same length as `text`.""",
    '''
# import necessary packages
import string

# all class and function definitions in the code file, if any
def shift_letter(ch, shift):
    if ch in string.ascii_lowercase:
        base = ord("a")
    elif ch in string.ascii_uppercase:
        base = ord("A")
    else:
        return ch
    return chr(base + (ord(ch) - base + shift) % 26)

# main function
def main_solution(text, shift):
    encoded = []
    for ch in text:
        encoded.append(shift_letter(ch, shift))
    return "".join(encoded)
''',
    '''
import random

def input_generator():
    words = ["attack", "at", "dawn", "Meet", "me", "by", "the", "old", "Bridge", "noon", "Zebra", "quiz"]
    text = " ".join(random.choice(words) for _ in range(random.randint(1, 4)))
    if random.random() < 0.4:
        text += random.choice(["!", "?", "."])
    return {"text": text, "shift": random.randint(-25, 25)}
''',
)

spec(
    "run_length_encoding", "strings",
    """A telemetry link compresses status strings by replacing each run of identical characters with the
character followed by the length of the run. Given the status string `s`, what compressed string is sent
over the link?""",
    """Input:
  `s` (str): the status string, lowercase letters only, at most 30 characters (may be empty).

Output:
  `return` (str): the run-length encoding: for each maximal run, its character followed by its length
  written in decimal (for example "aaabcc" becomes "a3b1c2").""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any
def runs(s):
    result = []
    i = 0
    while i < len(s):
        j = i
        while j < len(s) and s[j] == s[i]:
            j += 1
        result.append((s[i], j - i))
        i = j
    return result

# main function
def main_solution(s):
    return "".join(f"{ch}{count}" for ch, count in runs(s))
''',
    '''
import random

def input_generator():
    letters = random.sample("abcdxyz", random.randint(1, 4))
    s = "".join(random.choice(letters) * random.randint(1, 5) for _ in range(random.randint(0, 6)))
    return {"s": s[:30]}
''',
)

spec(
    "longest_palindromic_substring", "strings",
    """A genetics student looks for the longest stretch of a DNA fragment that reads the same forwards and
backwards. Given the fragment `sequence`, which longest palindromic stretch does the student find (the
leftmost one when several have the same length)?""",
    """Input:
  `sequence` (str): the fragment, letters A, C, G, T, between 1 and 40 characters.

Output:
  `return` (str): the longest contiguous substring that is a palindrome; on ties the one that starts
  first.""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any
def expand(s, left, right):
    while left >= 0 and right < len(s) and s[left] == s[right]:
        left -= 1
        right += 1
    return left + 1, right

# main function
def main_solution(sequence):
    best_start, best_end = 0, 1
    for center in range(len(sequence)):
        for left, right in ((center, center), (center, center + 1)):
            start, end = expand(sequence, left, right)
            if end - start > best_end - best_start:
                best_start, best_end = start, end
    return sequence[best_start:best_end]
''',
    '''
import random

def input_generator():
    n = random.randint(1, 24)
    return {"sequence": "".join(random.choice("ACGT") for _ in range(n))}
''',
)

spec(
    "top_words", "strings",
    """An editor wants to know which words a short review repeats most. Words are compared in lowercase and
punctuation is ignored. Given the review `sentence` and a number `k`, which `k` words occur most often,
with their counts (more frequent first, ties in alphabetical order)?""",
    """Input:
  `sentence` (str): the review, words separated by spaces, may contain , . ! ?; at most 90 characters.
  `k` (int): how many words to report, between 1 and 4.

Output:
  `return` (list of [str, int]): up to `k` pairs [word, count], sorted by count descending then word
  ascending.""",
    '''
# import necessary packages
import re
from collections import Counter

# all class and function definitions in the code file, if any
def tokenize(sentence):
    return re.findall(r"[a-z']+", sentence.lower())

# main function
def main_solution(sentence, k):
    counts = Counter(tokenize(sentence))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [[word, count] for word, count in ranked[:k]]
''',
    '''
import random

def input_generator():
    words = ["good", "bad", "Great", "food", "the", "service", "slow", "good!", "food,", "nice"]
    sentence = " ".join(random.choice(words) for _ in range(random.randint(3, 12)))
    return {"sentence": sentence[:90], "k": random.randint(1, 4)}
''',
)

spec(
    "is_balanced_brackets", "strings",
    """A code reviewer checks that brackets in a snippet are balanced: every (, [ and { is closed by the
matching bracket in the right order; other characters do not matter. Given the snippet `snippet`, is it
balanced, and if not, at which position does the first problem show up?""",
    """Input:
  `snippet` (str): the text to check, at most 40 characters.

Output:
  `return` (dict): {"balanced": bool, "error_index": int}; `error_index` is the 0-based index of the first
  unexpected closing bracket, or the length of the snippet when openings stay unclosed, or -1 when
  balanced.""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any
PAIRS = {")": "(", "]": "[", "}": "{"}

# main function
def main_solution(snippet):
    stack = []
    for index, ch in enumerate(snippet):
        if ch in "([{":
            stack.append(ch)
        elif ch in PAIRS:
            if not stack or stack[-1] != PAIRS[ch]:
                return {"balanced": False, "error_index": index}
            stack.pop()
    if stack:
        return {"balanced": False, "error_index": len(snippet)}
    return {"balanced": True, "error_index": -1}
''',
    '''
import random

def input_generator():
    pieces = ["(", ")", "[", "]", "{", "}", "x", "+", "f(", "a[i]", "{k}"]
    return {"snippet": "".join(random.choice(pieces) for _ in range(random.randint(1, 10)))}
''',
)

# ---------------------------------------------------------------------------
# lists

spec(
    "merge_intervals", "lists",
    """A meeting-room planner receives booked time slots as [start, end] pairs and wants to know which
periods the room is busy. Overlapping or touching slots form one busy period. Given the slots
`intervals`, what are the busy periods in order of time?""",
    """Input:
  `intervals` (list of [int, int]): between 1 and 8 slots, each [start, end] with 0 <= start <= end <= 48.

Output:
  `return` (list of [int, int]): the merged busy periods sorted by start; periods that overlap or touch
  (end == next start) are merged.""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any

# main function
def main_solution(intervals):
    ordered = sorted([list(slot) for slot in intervals])
    merged = []
    for start, end in ordered:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged
''',
    '''
import random

def input_generator():
    slots = []
    for _ in range(random.randint(1, 8)):
        start = random.randint(0, 44)
        slots.append([start, start + random.randint(0, 6)])
    return {"intervals": slots}
''',
)

spec(
    "two_sum_indices", "lists",
    """A cashier wants two different items whose prices add up exactly to a voucher's value. Given the item
prices `prices` and the voucher value `target`, which pair of positions (the first pair found when
scanning left to right) does the cashier pick?""",
    """Input:
  `prices` (list of int): between 2 and 12 prices, each between 1 and 50.
  `target` (int): the voucher value, between 2 and 100.

Output:
  `return` (list of int): [i, j] with i < j and prices[i] + prices[j] == target, where j is as small as
  possible and then i is the earliest such index; [] when no pair exists.""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any

# main function
def main_solution(prices, target):
    seen = {}
    for j, price in enumerate(prices):
        need = target - price
        if need in seen:
            return [seen[need], j]
        if price not in seen:
            seen[price] = j
    return []
''',
    '''
import random

def input_generator():
    prices = [random.randint(1, 50) for _ in range(random.randint(2, 12))]
    if random.random() < 0.7:
        i, j = random.sample(range(len(prices)), 2)
        target = prices[i] + prices[j]
    else:
        target = random.randint(2, 100)
    return {"prices": prices, "target": target}
''',
)

spec(
    "spiral_order", "lists",
    """A warehouse robot reads the labels of a rectangular shelf grid by walking around the outside
clockwise from the top-left corner and then spiralling inwards. Given the shelf labels `matrix`, in which
order does the robot read them?""",
    """Input:
  `matrix` (list of list of int): a rectangular grid with 1 to 4 rows and 1 to 4 columns of integers.

Output:
  `return` (list of int): the values in clockwise spiral order starting at the top-left corner.""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any

# main function
def main_solution(matrix):
    result = []
    top, bottom = 0, len(matrix) - 1
    left, right = 0, len(matrix[0]) - 1
    while top <= bottom and left <= right:
        for col in range(left, right + 1):
            result.append(matrix[top][col])
        for row in range(top + 1, bottom + 1):
            result.append(matrix[row][right])
        if top < bottom and left < right:
            for col in range(right - 1, left - 1, -1):
                result.append(matrix[bottom][col])
            for row in range(bottom - 1, top, -1):
                result.append(matrix[row][left])
        top, bottom, left, right = top + 1, bottom - 1, left + 1, right - 1
    return result
''',
    '''
import random

def input_generator():
    rows, cols = random.randint(1, 4), random.randint(1, 4)
    return {"matrix": [[random.randint(0, 99) for _ in range(cols)] for _ in range(rows)]}
''',
)

spec(
    "kth_largest_stream", "lists",
    """A leaderboard keeps only the k best scores seen so far and after each new score announces the k-th
best one (or nothing while fewer than k scores have arrived). Given the incoming `scores` and `k`, what
sequence of announcements does the leaderboard make?""",
    """Input:
  `scores` (list of int): between 1 and 12 scores, each between 0 and 100, in arrival order.
  `k` (int): between 1 and 4.

Output:
  `return` (list of int or null): one entry per score: the k-th largest score so far, or null while fewer
  than k scores have been seen.""",
    '''
# import necessary packages
import heapq

# all class and function definitions in the code file, if any
class Leaderboard:
    def __init__(self, k):
        self.k = k
        self.heap = []

    def add(self, score):
        heapq.heappush(self.heap, score)
        if len(self.heap) > self.k:
            heapq.heappop(self.heap)
        return self.heap[0] if len(self.heap) == self.k else None

# main function
def main_solution(scores, k):
    board = Leaderboard(k)
    return [board.add(score) for score in scores]
''',
    '''
import random

def input_generator():
    return {"scores": [random.randint(0, 100) for _ in range(random.randint(1, 12))], "k": random.randint(1, 4)}
''',
)

# ---------------------------------------------------------------------------
# dicts

spec(
    "inventory_orders", "dicts",
    """A corner shop starts the day with the stock `stock` (item -> units) and processes the orders
`orders` in sequence, each asking for some units of one item. An order is filled only when enough units
remain. What stock is left at the end of the day, and which orders (by position) had to be refused?""",
    """Input:
  `stock` (dict): item name (str) -> units in stock (int, 0 to 10); at most 5 items.
  `orders` (list of [str, int]): up to 8 orders [item, units], units between 1 and 6; an item may be
  missing from the stock.

Output:
  `return` (dict): {"stock": dict item -> units left (same keys and order as the input stock),
  "refused": list of int (0-based positions of refused orders)}.""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any
def fill(stock, item, units):
    if stock.get(item, 0) >= units:
        stock[item] -= units
        return True
    return False

# main function
def main_solution(stock, orders):
    remaining = dict(stock)
    refused = []
    for position, (item, units) in enumerate(orders):
        if not fill(remaining, item, units):
            refused.append(position)
    return {"stock": remaining, "refused": refused}
''',
    '''
import random

def input_generator():
    items = ["apple", "bread", "milk", "eggs", "tea", "rice"]
    chosen = random.sample(items, random.randint(1, 5))
    stock = {item: random.randint(0, 10) for item in chosen}
    orders = [[random.choice(items), random.randint(1, 6)] for _ in range(random.randint(1, 8))]
    return {"stock": stock, "orders": orders}
''',
)

spec(
    "group_anagrams", "dicts",
    """A word-game judge groups the submitted words that are anagrams of each other (same letters in any
order). Given the list `words`, what groups does the judge form, keyed by the sorted letters?""",
    """Input:
  `words` (list of str): between 1 and 10 lowercase words of 2 to 6 letters.

Output:
  `return` (dict): sorted letters of the group (str) -> the words of that group (list of str) in
  alphabetical order; keys in alphabetical order.""",
    '''
# import necessary packages
from collections import defaultdict

# all class and function definitions in the code file, if any

# main function
def main_solution(words):
    groups = defaultdict(list)
    for word in words:
        groups["".join(sorted(word))].append(word)
    return {key: sorted(groups[key]) for key in sorted(groups)}
''',
    '''
import random

def input_generator():
    pool = ["listen", "silent", "enlist", "stone", "notes", "onset", "rat", "tar", "art", "dog", "god", "cat", "act", "pea"]
    return {"words": random.sample(pool, random.randint(1, 10))}
''',
)

spec(
    "invert_grades", "dicts",
    """A teacher has each student's letter grade in `grades` and wants the class list per grade instead.
Given `grades`, which students got each grade?""",
    """Input:
  `grades` (dict): student name (str) -> grade (str, one of "A", "B", "C", "D", "F"); 1 to 8 students.

Output:
  `return` (dict): grade -> list of student names with that grade in alphabetical order; only grades that
  occur, keys in the order A, B, C, D, F.""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any
GRADE_ORDER = ["A", "B", "C", "D", "F"]

# main function
def main_solution(grades):
    by_grade = {}
    for student, grade in grades.items():
        by_grade.setdefault(grade, []).append(student)
    return {grade: sorted(by_grade[grade]) for grade in GRADE_ORDER if grade in by_grade}
''',
    '''
import random

def input_generator():
    names = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fay", "Gus", "Hana", "Ivo"]
    chosen = random.sample(names, random.randint(1, 8))
    return {"grades": {name: random.choice("ABCDF") for name in chosen}}
''',
)

spec(
    "flatten_settings", "dicts",
    """An application stores its settings as nested dictionaries, but its log prints them as flat
dotted keys such as "db.port". Given the nested settings `settings`, what flat mapping does the log
print?""",
    """Input:
  `settings` (dict): nested dict with string keys, at most 3 levels deep and at most 4 keys per level;
  leaves are int, str or bool.

Output:
  `return` (dict): dotted key path (str) -> leaf value, keys in depth-first order of the input; an empty
  nested dict produces no key.""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any
def walk(node, prefix, out):
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            walk(value, path, out)
        else:
            out[path] = value
    return out

# main function
def main_solution(settings):
    return walk(settings, "", {})
''',
    '''
import random

def input_generator():
    def build(depth):
        node = {}
        for key in random.sample(["db", "port", "host", "debug", "cache", "ttl", "name"], random.randint(1, 3)):
            if depth < 2 and random.random() < 0.4:
                node[key] = build(depth + 1)
            else:
                node[key] = random.choice([random.randint(1, 9000), random.choice(["on", "off", "x"]), random.random() < 0.5])
        return node
    return {"settings": build(0)}
''',
)

# ---------------------------------------------------------------------------
# math with floats

spec(
    "newton_sqrt", "math",
    """An old calculator computes square roots with Newton's method: it starts from the guess x / 2 (or 1
when x < 1) and repeats guess = (guess + x / guess) / 2 a fixed number of times. Given the number `x` and
the number of repetitions `steps`, what value does the calculator display (rounded to 6 decimals), and
how far is it from the true square root?""",
    """Input:
  `x` (float): a positive number between 0.1 and 1000.
  `steps` (int): number of Newton steps, between 1 and 6.

Output:
  `return` (dict): {"estimate": float rounded to 6 decimals, "error": float, absolute difference from
  math.sqrt(x), rounded to 6 decimals}.""",
    '''
# import necessary packages
import math

# all class and function definitions in the code file, if any
def newton_step(guess, x):
    return (guess + x / guess) / 2

# main function
def main_solution(x, steps):
    guess = x / 2 if x >= 1 else 1.0
    for _ in range(steps):
        guess = newton_step(guess, x)
    return {"estimate": round(guess, 6), "error": round(abs(guess - math.sqrt(x)), 6)}
''',
    '''
import random

def input_generator():
    return {"x": round(random.uniform(0.1, 1000), 2), "steps": random.randint(1, 6)}
''',
)

spec(
    "compound_interest", "math",
    """A savings account pays the yearly interest rate `rate` (in percent), compounded `periods` times a
year. Given the deposit `principal` and the number of `years`, what balance is reached (rounded to cents)
and how much of it is interest?""",
    """Input:
  `principal` (float): the deposit, between 100 and 10000.
  `rate` (float): yearly rate in percent, between 0.5 and 12.
  `years` (int): between 1 and 30.
  `periods` (int): compounding periods per year, one of 1, 4, 12.

Output:
  `return` (dict): {"balance": float rounded to 2 decimals, "interest": float rounded to 2 decimals}.""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any

# main function
def main_solution(principal, rate, years, periods):
    balance = principal
    per_period = rate / 100 / periods
    for _ in range(years * periods):
        balance *= 1 + per_period
    return {"balance": round(balance, 2), "interest": round(balance - principal, 2)}
''',
    '''
import random

def input_generator():
    return {
        "principal": round(random.uniform(100, 10000), 2),
        "rate": round(random.uniform(0.5, 12), 2),
        "years": random.randint(1, 30),
        "periods": random.choice([1, 4, 12]),
    }
''',
)

spec(
    "trapezoid_area", "math",
    """A surveyor estimates the area under a polynomial curve with the trapezoid rule. The polynomial has
coefficients `coefficients` (constant term first). Given the interval from `a` to `b` and the number of
trapezoids `n`, what area estimate does the surveyor get (rounded to 4 decimals)?""",
    """Input:
  `coefficients` (list of float): 1 to 4 coefficients c0, c1, ... of c0 + c1*x + c2*x^2 + ...
  `a` (float): left end, between -5 and 5.
  `b` (float): right end, greater than `a`, at most 10.
  `n` (int): number of trapezoids, between 1 and 16.

Output:
  `return` (float): the trapezoid-rule estimate of the integral, rounded to 4 decimals.""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any
def evaluate(coefficients, x):
    total = 0.0
    for power, c in enumerate(coefficients):
        total += c * x ** power
    return total

# main function
def main_solution(coefficients, a, b, n):
    h = (b - a) / n
    area = (evaluate(coefficients, a) + evaluate(coefficients, b)) / 2
    for i in range(1, n):
        area += evaluate(coefficients, a + i * h)
    return round(area * h, 4)
''',
    '''
import random

def input_generator():
    a = round(random.uniform(-5, 5), 1)
    return {
        "coefficients": [round(random.uniform(-3, 3), 1) for _ in range(random.randint(1, 4))],
        "a": a,
        "b": round(a + random.uniform(0.5, 5), 1),
        "n": random.randint(1, 16),
    }
''',
)

spec(
    "summary_statistics", "math",
    """A lab technician summarises a short series of measurements `values` by their mean, population
standard deviation, median and range. What summary does the technician write down (each rounded to 3
decimals)?""",
    """Input:
  `values` (list of float): between 1 and 12 measurements, each between -100 and 100.

Output:
  `return` (dict): {"mean": float, "std": float, "median": float, "range": float}, each rounded to 3
  decimals; std is the population standard deviation.""",
    '''
# import necessary packages
import math

# all class and function definitions in the code file, if any
def median(sorted_values):
    n = len(sorted_values)
    mid = n // 2
    if n % 2:
        return sorted_values[mid]
    return (sorted_values[mid - 1] + sorted_values[mid]) / 2

# main function
def main_solution(values):
    n = len(values)
    mean = sum(values) / n
    variance = sum((v - mean) ** 2 for v in values) / n
    ordered = sorted(values)
    return {
        "mean": round(mean, 3),
        "std": round(math.sqrt(variance), 3),
        "median": round(median(ordered), 3),
        "range": round(ordered[-1] - ordered[0], 3),
    }
''',
    '''
import random

def input_generator():
    return {"values": [round(random.uniform(-100, 100), 2) for _ in range(random.randint(1, 12))]}
''',
)

spec(
    "projectile_flight", "math",
    """A ball is launched from the ground with speed `speed` (m/s) at angle `angle` (degrees) above the
horizontal, without air resistance and with g = 9.81 m/s^2. How long does it fly, how far does it land,
and how high does it get (each rounded to 3 decimals)?""",
    """Input:
  `speed` (float): launch speed in m/s, between 1 and 50.
  `angle` (float): launch angle in degrees, between 5 and 85.

Output:
  `return` (dict): {"time": float seconds, "range": float metres, "height": float metres}, each rounded to
  3 decimals.""",
    '''
# import necessary packages
import math

# all class and function definitions in the code file, if any
G = 9.81

# main function
def main_solution(speed, angle):
    theta = math.radians(angle)
    vx = speed * math.cos(theta)
    vy = speed * math.sin(theta)
    time = 2 * vy / G
    return {"time": round(time, 3), "range": round(vx * time, 3), "height": round(vy ** 2 / (2 * G), 3)}
''',
    '''
import random

def input_generator():
    return {"speed": round(random.uniform(1, 50), 1), "angle": round(random.uniform(5, 85), 1)}
''',
)

# ---------------------------------------------------------------------------
# graph search

spec(
    "grid_shortest_path", "graph search",
    """A delivery robot moves on a floor plan `grid` where '#' marks a wall and '.' free floor; it moves one
cell up, down, left or right per step. How many steps does the shortest route from the top-left corner to
the bottom-right corner take, or is the target unreachable?""",
    """Input:
  `grid` (list of str): 2 to 6 rows of equal length (2 to 6), characters '.' or '#'; the corners are '.'.

Output:
  `return` (int): the minimum number of steps, or -1 when the bottom-right corner cannot be reached.""",
    '''
# import necessary packages
from collections import deque

# all class and function definitions in the code file, if any
MOVES = [(1, 0), (-1, 0), (0, 1), (0, -1)]

def neighbours(grid, row, col):
    for dr, dc in MOVES:
        r, c = row + dr, col + dc
        if 0 <= r < len(grid) and 0 <= c < len(grid[0]) and grid[r][c] == ".":
            yield r, c

# main function
def main_solution(grid):
    target = (len(grid) - 1, len(grid[0]) - 1)
    queue = deque([(0, 0, 0)])
    seen = {(0, 0)}
    while queue:
        row, col, dist = queue.popleft()
        if (row, col) == target:
            return dist
        for cell in neighbours(grid, row, col):
            if cell not in seen:
                seen.add(cell)
                queue.append((cell[0], cell[1], dist + 1))
    return -1
''',
    '''
import random

def input_generator():
    rows, cols = random.randint(2, 6), random.randint(2, 6)
    grid = [[("#" if random.random() < 0.3 else ".") for _ in range(cols)] for _ in range(rows)]
    grid[0][0] = "."
    grid[-1][-1] = "."
    return {"grid": ["".join(row) for row in grid]}
''',
)

spec(
    "dijkstra_distances", "graph search",
    """A small rail network has one-way connections `edges`, each [from, to, minutes]. Starting at station
`start`, what is the shortest travel time to every station that can be reached?""",
    """Input:
  `edges` (list of [str, str, int]): up to 10 one-way connections between stations named "A" to "F",
  travel times between 1 and 20.
  `start` (str): the starting station, one of "A" to "F".

Output:
  `return` (dict): station (str) -> shortest travel time (int) for every reachable station including
  `start` (0), keys in alphabetical order.""",
    '''
# import necessary packages
import heapq

# all class and function definitions in the code file, if any
def build_graph(edges):
    graph = {}
    for source, target, minutes in edges:
        graph.setdefault(source, []).append((target, minutes))
    return graph

# main function
def main_solution(edges, start):
    graph = build_graph(edges)
    best = {start: 0}
    heap = [(0, start)]
    while heap:
        dist, node = heapq.heappop(heap)
        if dist > best.get(node, float("inf")):
            continue
        for target, minutes in graph.get(node, []):
            candidate = dist + minutes
            if candidate < best.get(target, float("inf")):
                best[target] = candidate
                heapq.heappush(heap, (candidate, target))
    return {node: best[node] for node in sorted(best)}
''',
    '''
import random

def input_generator():
    stations = "ABCDEF"
    edges = []
    for _ in range(random.randint(2, 10)):
        a, b = random.sample(stations, 2)
        edges.append([a, b, random.randint(1, 20)])
    return {"edges": edges, "start": random.choice([e[0] for e in edges])}
''',
)

spec(
    "course_order", "graph search",
    """A student must take courses whose prerequisites are given in `prerequisites` as pairs [course,
required_course]. Always taking the alphabetically first course that is available, in what order does
the student take all courses in `courses`, or is it impossible because of a cycle?""",
    """Input:
  `courses` (list of str): 2 to 7 distinct course codes.
  `prerequisites` (list of [str, str]): up to 8 pairs [course, required_course] using those codes.

Output:
  `return` (list of str): the order of courses (Kahn's algorithm, alphabetical tie-break), or [] when the
  prerequisites contain a cycle.""",
    '''
# import necessary packages
import heapq

# all class and function definitions in the code file, if any

# main function
def main_solution(courses, prerequisites):
    indegree = {course: 0 for course in courses}
    unlocks = {course: [] for course in courses}
    for course, required in prerequisites:
        indegree[course] += 1
        unlocks[required].append(course)
    ready = [course for course in courses if indegree[course] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        course = heapq.heappop(ready)
        order.append(course)
        for nxt in unlocks[course]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                heapq.heappush(ready, nxt)
    return order if len(order) == len(courses) else []
''',
    '''
import random

def input_generator():
    courses = random.sample(["MATH1", "MATH2", "PHYS1", "CS1", "CS2", "BIO1", "CHEM1"], random.randint(2, 7))
    pairs = []
    for _ in range(random.randint(0, 8)):
        a, b = random.sample(courses, 2)
        if [a, b] not in pairs:
            pairs.append([a, b])
    return {"courses": courses, "prerequisites": pairs}
''',
)

spec(
    "count_islands", "graph search",
    """A satellite photo `photo` marks land with '1' and water with '0'. Land cells that touch horizontally
or vertically belong to the same island. How many islands are there, and how large is the biggest one?""",
    """Input:
  `photo` (list of str): 1 to 6 rows of equal length (1 to 8), characters '0' or '1'.

Output:
  `return` (dict): {"islands": int, "largest": int} where largest is the number of cells of the biggest
  island (0 when there is no land).""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any
def flood(photo, seen, row, col):
    stack = [(row, col)]
    seen.add((row, col))
    size = 0
    while stack:
        r, c = stack.pop()
        size += 1
        for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if 0 <= nr < len(photo) and 0 <= nc < len(photo[0]) and photo[nr][nc] == "1" and (nr, nc) not in seen:
                seen.add((nr, nc))
                stack.append((nr, nc))
    return size

# main function
def main_solution(photo):
    seen = set()
    sizes = []
    for row in range(len(photo)):
        for col in range(len(photo[0])):
            if photo[row][col] == "1" and (row, col) not in seen:
                sizes.append(flood(photo, seen, row, col))
    return {"islands": len(sizes), "largest": max(sizes, default=0)}
''',
    '''
import random

def input_generator():
    rows, cols = random.randint(1, 6), random.randint(1, 8)
    return {"photo": ["".join(random.choice("0001") if random.random() < 0.5 else random.choice("01") for _ in range(cols)) for _ in range(rows)]}
''',
)

# ---------------------------------------------------------------------------
# simulation

spec(
    "game_of_life", "simulation",
    """Conway's Game of Life runs on a small board `board` ('#' alive, '.' dead) whose edges are walls
(cells outside the board are dead). A live cell survives with 2 or 3 live neighbours, a dead cell comes
alive with exactly 3. What does the board look like after `generations` generations?""",
    """Input:
  `board` (list of str): 3 to 6 rows of equal length (3 to 6), characters '#' or '.'.
  `generations` (int): between 1 and 5.

Output:
  `return` (list of str): the board after the given number of generations, same format.""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any
def live_neighbours(cells, row, col):
    count = 0
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if (dr or dc) and 0 <= row + dr < len(cells) and 0 <= col + dc < len(cells[0]):
                count += cells[row + dr][col + dc]
    return count

def step(cells):
    nxt = []
    for row in range(len(cells)):
        line = []
        for col in range(len(cells[0])):
            n = live_neighbours(cells, row, col)
            line.append(1 if n == 3 or (cells[row][col] and n == 2) else 0)
        nxt.append(line)
    return nxt

# main function
def main_solution(board, generations):
    cells = [[1 if ch == "#" else 0 for ch in row] for row in board]
    for _ in range(generations):
        cells = step(cells)
    return ["".join("#" if cell else "." for cell in row) for row in cells]
''',
    '''
import random

def input_generator():
    rows, cols = random.randint(3, 6), random.randint(3, 6)
    board = ["".join("#" if random.random() < 0.35 else "." for _ in range(cols)) for _ in range(rows)]
    return {"board": board, "generations": random.randint(1, 5)}
''',
)

spec(
    "robot_commands", "simulation",
    """A rover on an unbounded grid starts at (0, 0) facing north. It reads the command string `commands`:
'L' and 'R' turn it 90 degrees, 'F' moves it one cell forward, and a digit d moves it d cells forward.
Obstacles at the cells `obstacles` stop a move at the cell before them. Where does the rover end, which
way does it face, and how many times was it blocked?""",
    """Input:
  `commands` (str): 1 to 20 characters from "LRF" and digits 1-9.
  `obstacles` (list of [int, int]): up to 6 blocked cells [x, y], not including [0, 0].

Output:
  `return` (dict): {"x": int, "y": int, "facing": one of "N", "E", "S", "W", "blocked": int, the number of
  single steps that were refused}.""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any
HEADINGS = ["N", "E", "S", "W"]
DELTAS = {"N": (0, 1), "E": (1, 0), "S": (0, -1), "W": (-1, 0)}

class Rover:
    def __init__(self, obstacles):
        self.x, self.y, self.heading = 0, 0, 0
        self.obstacles = {tuple(cell) for cell in obstacles}
        self.blocked = 0

    def turn(self, direction):
        self.heading = (self.heading + (1 if direction == "R" else -1)) % 4

    def forward(self, cells):
        dx, dy = DELTAS[HEADINGS[self.heading]]
        for _ in range(cells):
            if (self.x + dx, self.y + dy) in self.obstacles:
                self.blocked += 1
                continue
            self.x, self.y = self.x + dx, self.y + dy

# main function
def main_solution(commands, obstacles):
    rover = Rover(obstacles)
    for command in commands:
        if command in "LR":
            rover.turn(command)
        elif command == "F":
            rover.forward(1)
        else:
            rover.forward(int(command))
    return {"x": rover.x, "y": rover.y, "facing": HEADINGS[rover.heading], "blocked": rover.blocked}
''',
    '''
import random

def input_generator():
    commands = "".join(random.choice("LRFF123") for _ in range(random.randint(1, 20)))
    obstacles = []
    for _ in range(random.randint(0, 6)):
        cell = [random.randint(-3, 3), random.randint(-3, 3)]
        if cell != [0, 0] and cell not in obstacles:
            obstacles.append(cell)
    return {"commands": commands, "obstacles": obstacles}
''',
)

spec(
    "josephus_circle", "simulation",
    """Children stand in a circle numbered 1 to `n`. Counting starts at child 1, and every `k`-th child
counted leaves the circle; counting continues with the next child. In which order do the children leave,
and who is the last one standing?""",
    """Input:
  `n` (int): number of children, between 1 and 15.
  `k` (int): the counting step, between 1 and 7.

Output:
  `return` (dict): {"order": list of int, the numbers of the children in the order they leave (all but the
  last), "survivor": int}.""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any

# main function
def main_solution(n, k):
    circle = list(range(1, n + 1))
    order = []
    index = 0
    while len(circle) > 1:
        index = (index + k - 1) % len(circle)
        order.append(circle.pop(index))
    return {"order": order, "survivor": circle[0]}
''',
    '''
import random

def input_generator():
    return {"n": random.randint(1, 15), "k": random.randint(1, 7)}
''',
)

spec(
    "elementary_automaton", "simulation",
    """A one-dimensional cellular automaton evolves a row of cells `cells` ('1' on, '0' off) by Wolfram's
rule number `rule`: each new cell depends on itself and its two neighbours, with cells beyond the edges
counted as off. What rows appear over `steps` steps?""",
    """Input:
  `cells` (str): the starting row, 3 to 15 characters '0' or '1'.
  `rule` (int): the Wolfram rule number, between 0 and 255.
  `steps` (int): between 1 and 6.

Output:
  `return` (list of str): the rows after each step (length `steps`), same width as `cells`.""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any
def next_row(row, rule):
    padded = "0" + row + "0"
    out = []
    for i in range(1, len(padded) - 1):
        pattern = int(padded[i - 1:i + 2], 2)
        out.append("1" if (rule >> pattern) & 1 else "0")
    return "".join(out)

# main function
def main_solution(cells, rule, steps):
    history = []
    row = cells
    for _ in range(steps):
        row = next_row(row, rule)
        history.append(row)
    return history
''',
    '''
import random

def input_generator():
    width = random.randint(3, 15)
    return {
        "cells": "".join(random.choice("01") for _ in range(width)),
        "rule": random.choice([30, 90, 110, 184, random.randint(0, 255)]),
        "steps": random.randint(1, 6),
    }
''',
)

spec(
    "predator_prey", "simulation",
    """An ecologist models rabbits and foxes with a discrete Lotka-Volterra model: each day
rabbits += a*rabbits - b*rabbits*foxes and foxes += c*rabbits*foxes - d*foxes (both updates use the
previous day's numbers, and populations never go below 0). Starting from `rabbits` and `foxes`, what are
the populations after `days` days (rounded to 2 decimals)?""",
    """Input:
  `rabbits` (float): starting rabbits, between 10 and 100.
  `foxes` (float): starting foxes, between 1 and 20.
  `days` (int): between 1 and 15.
  `a`, `b`, `c`, `d` (float): model rates; a in [0.05, 0.2], b in [0.001, 0.01], c in [0.0005, 0.005],
  d in [0.05, 0.2].

Output:
  `return` (dict): {"rabbits": float, "foxes": float}, each rounded to 2 decimals.""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any
def day(rabbits, foxes, a, b, c, d):
    new_rabbits = rabbits + a * rabbits - b * rabbits * foxes
    new_foxes = foxes + c * rabbits * foxes - d * foxes
    return max(new_rabbits, 0.0), max(new_foxes, 0.0)

# main function
def main_solution(rabbits, foxes, days, a, b, c, d):
    for _ in range(days):
        rabbits, foxes = day(rabbits, foxes, a, b, c, d)
    return {"rabbits": round(rabbits, 2), "foxes": round(foxes, 2)}
''',
    '''
import random

def input_generator():
    return {
        "rabbits": round(random.uniform(10, 100), 1),
        "foxes": round(random.uniform(1, 20), 1),
        "days": random.randint(1, 15),
        "a": round(random.uniform(0.05, 0.2), 3),
        "b": round(random.uniform(0.001, 0.01), 4),
        "c": round(random.uniform(0.0005, 0.005), 4),
        "d": round(random.uniform(0.05, 0.2), 3),
    }
''',
)

spec(
    "bank_queue", "simulation",
    """A bank with `tellers` tellers serves customers in arrival order; customer i arrives at minute
`arrivals[i]` and needs `durations[i]` minutes. A customer goes to the teller that becomes free first
(lowest number on ties) and waits if all are busy. What is each customer's waiting time, and when does
the last customer leave?""",
    """Input:
  `arrivals` (list of int): 1 to 10 non-decreasing arrival minutes between 0 and 60.
  `durations` (list of int): service minutes (1 to 15), same length as `arrivals`.
  `tellers` (int): between 1 and 3.

Output:
  `return` (dict): {"waits": list of int, one waiting time per customer, "finish": int, the minute the
  last customer leaves}.""",
    '''
# import necessary packages
import heapq

# all class and function definitions in the code file, if any

# main function
def main_solution(arrivals, durations, tellers):
    free_at = [(0, teller) for teller in range(tellers)]
    heapq.heapify(free_at)
    waits = []
    finish = 0
    for arrival, duration in zip(arrivals, durations):
        available, teller = heapq.heappop(free_at)
        start = max(arrival, available)
        waits.append(start - arrival)
        done = start + duration
        finish = max(finish, done)
        heapq.heappush(free_at, (done, teller))
    return {"waits": waits, "finish": finish}
''',
    '''
import random

def input_generator():
    n = random.randint(1, 10)
    return {
        "arrivals": sorted(random.randint(0, 60) for _ in range(n)),
        "durations": [random.randint(1, 15) for _ in range(n)],
        "tellers": random.randint(1, 3),
    }
''',
)

# ---------------------------------------------------------------------------
# dynamic programming

spec(
    "edit_distance", "dynamic programming",
    """A spell checker measures how far a typed word `typed` is from a dictionary word `word`: the least
number of single-letter insertions, deletions and substitutions turning one into the other. What distance
does it compute?""",
    """Input:
  `typed` (str): lowercase word, 0 to 10 letters.
  `word` (str): lowercase word, 1 to 10 letters.

Output:
  `return` (int): the Levenshtein distance between the two words.""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any

# main function
def main_solution(typed, word):
    previous = list(range(len(word) + 1))
    for i, a in enumerate(typed, start=1):
        current = [i]
        for j, b in enumerate(word, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return previous[-1]
''',
    '''
import random

def input_generator():
    words = ["kitten", "sitting", "flaw", "lawn", "intent", "execute", "house", "horse", "ros", "banana"]
    word = random.choice(words)
    typed = list(random.choice(words) if random.random() < 0.3 else word)
    for _ in range(random.randint(0, 3)):
        if typed and random.random() < 0.5:
            typed[random.randrange(len(typed))] = random.choice("abcdeiou")
        else:
            typed.insert(random.randint(0, len(typed)), random.choice("xyz"))
    return {"typed": "".join(typed)[:10], "word": word}
''',
)

spec(
    "coin_change", "dynamic programming",
    """A vending machine must return `amount` cents using coins of the values in `coins` (unlimited supply
of each). What is the smallest number of coins it can use, and how many coins of each value does one
optimal way use?""",
    """Input:
  `coins` (list of int): 1 to 4 distinct coin values between 1 and 50.
  `amount` (int): between 0 and 99.

Output:
  `return` (dict): {"count": int, the minimum number of coins or -1 when impossible, "used": dict coin
  value as str -> number of such coins in the optimal way found (empty when impossible or amount is
  0)}.""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any
INF = float("inf")

# main function
def main_solution(coins, amount):
    best = [0] + [INF] * amount
    last = [0] * (amount + 1)
    for value in range(1, amount + 1):
        for coin in sorted(coins):
            if coin <= value and best[value - coin] + 1 < best[value]:
                best[value] = best[value - coin] + 1
                last[value] = coin
    if best[amount] == INF:
        return {"count": -1, "used": {}}
    used = {}
    value = amount
    while value > 0:
        used[str(last[value])] = used.get(str(last[value]), 0) + 1
        value -= last[value]
    return {"count": best[amount], "used": dict(sorted(used.items(), key=lambda item: int(item[0])))}
''',
    '''
import random

def input_generator():
    coins = random.sample([1, 2, 3, 5, 7, 10, 20, 25, 50], random.randint(1, 4))
    return {"coins": coins, "amount": random.randint(0, 99)}
''',
)

spec(
    "longest_increasing_run", "dynamic programming",
    """A climber records the altitudes `altitudes` of successive checkpoints and wants the longest
sequence of checkpoints, not necessarily consecutive but in order, with strictly rising altitude. How long
is it, and which altitudes form the first such sequence found?""",
    """Input:
  `altitudes` (list of int): 1 to 12 altitudes between 0 and 3000.

Output:
  `return` (dict): {"length": int, "sequence": list of int, a strictly increasing subsequence of maximum
  length (O(n^2) DP, predecessor kept on the first improvement, ending at the earliest index with the
  maximum length)}.""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any

# main function
def main_solution(altitudes):
    n = len(altitudes)
    length = [1] * n
    parent = [-1] * n
    for i in range(n):
        for j in range(i):
            if altitudes[j] < altitudes[i] and length[j] + 1 > length[i]:
                length[i] = length[j] + 1
                parent[i] = j
    end = max(range(n), key=lambda i: (length[i], -i))
    sequence = []
    while end != -1:
        sequence.append(altitudes[end])
        end = parent[end]
    return {"length": len(sequence), "sequence": sequence[::-1]}
''',
    '''
import random

def input_generator():
    return {"altitudes": [random.randint(0, 3000) for _ in range(random.randint(1, 12))]}
''',
)

spec(
    "knapsack", "dynamic programming",
    """A hiker can carry at most `capacity` kilograms and chooses among items with weights `weights` and
values `values`, taking each item at most once. What is the largest total value that fits, and which items
(by position) give it?""",
    """Input:
  `weights` (list of int): 1 to 8 item weights between 1 and 10.
  `values` (list of int): item values between 1 and 30, same length as `weights`.
  `capacity` (int): between 1 and 25.

Output:
  `return` (dict): {"value": int, the best total value, "items": list of int, the 0-based positions of the
  chosen items in increasing order (the table-reconstruction choice, preferring to skip an item when both
  choices are optimal)}.""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any

# main function
def main_solution(weights, values, capacity):
    n = len(weights)
    table = [[0] * (capacity + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        for c in range(capacity + 1):
            table[i][c] = table[i - 1][c]
            if weights[i - 1] <= c:
                table[i][c] = max(table[i][c], table[i - 1][c - weights[i - 1]] + values[i - 1])
    items = []
    c = capacity
    for i in range(n, 0, -1):
        if table[i][c] != table[i - 1][c]:
            items.append(i - 1)
            c -= weights[i - 1]
    return {"value": table[n][capacity], "items": sorted(items)}
''',
    '''
import random

def input_generator():
    n = random.randint(1, 8)
    return {
        "weights": [random.randint(1, 10) for _ in range(n)],
        "values": [random.randint(1, 30) for _ in range(n)],
        "capacity": random.randint(1, 25),
    }
''',
)

spec(
    "unique_paths_obstacles", "dynamic programming",
    """A mouse in a maze `maze` ('x' blocked, '.' open) may only move right or down. In how many different
ways can it go from the top-left cell to the bottom-right cell?""",
    """Input:
  `maze` (list of str): 2 to 6 rows of equal length (2 to 6), characters '.' or 'x'.

Output:
  `return` (int): the number of monotone (right/down) paths avoiding blocked cells; 0 when the start or
  the end is blocked.""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any

# main function
def main_solution(maze):
    rows, cols = len(maze), len(maze[0])
    ways = [[0] * cols for _ in range(rows)]
    for r in range(rows):
        for c in range(cols):
            if maze[r][c] == "x":
                continue
            if r == 0 and c == 0:
                ways[r][c] = 1
                continue
            ways[r][c] = (ways[r - 1][c] if r else 0) + (ways[r][c - 1] if c else 0)
    return ways[-1][-1]
''',
    '''
import random

def input_generator():
    rows, cols = random.randint(2, 6), random.randint(2, 6)
    cells = [["x" if random.random() < 0.15 else "." for _ in range(cols)] for _ in range(rows)]
    if random.random() < 0.9:
        cells[0][0] = cells[-1][-1] = "."
    return {"maze": ["".join(row) for row in cells]}
''',
)

# ---------------------------------------------------------------------------
# parsing

spec(
    "evaluate_expression", "parsing",
    """A pocket calculator evaluates an arithmetic expression `expression` with integers, + - * /,
parentheses and the usual precedence, where / is exact division. What value does it display (rounded to
4 decimals)?""",
    """Input:
  `expression` (str): an expression of non-negative integers, operators + - * / and parentheses, with or
  without spaces, at most 40 characters; no division by zero.

Output:
  `return` (float): the value of the expression rounded to 4 decimals.""",
    '''
# import necessary packages
import re

# all class and function definitions in the code file, if any
TOKEN = re.compile(r"\\s*(\\d+|[-+*/()])")
PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}

def tokenize(expression):
    return TOKEN.findall(expression)

def apply(operator, right, left):
    if operator == "+":
        return left + right
    if operator == "-":
        return left - right
    if operator == "*":
        return left * right
    return left / right

def evaluate(tokens):
    values, operators = [], []
    for token in tokens:
        if token.isdigit():
            values.append(float(token))
        elif token == "(":
            operators.append(token)
        elif token == ")":
            while operators[-1] != "(":
                values.append(apply(operators.pop(), values.pop(), values.pop()))
            operators.pop()
        else:
            while operators and operators[-1] != "(" and PRECEDENCE[operators[-1]] >= PRECEDENCE[token]:
                values.append(apply(operators.pop(), values.pop(), values.pop()))
            operators.append(token)
    while operators:
        values.append(apply(operators.pop(), values.pop(), values.pop()))
    return values[0]

# main function
def main_solution(expression):
    return round(evaluate(tokenize(expression)), 4)
''',
    '''
import random

def input_generator():
    def number():
        return str(random.randint(1, 20))
    def expr(nested):
        parts = [number() if nested or random.random() < 0.6 else "(" + expr(True) + ")"]
        for _ in range(random.randint(1, 2)):
            operator = random.choice(["+", "-", "*", "/"])
            parts.append(operator)
            # never divide by a parenthesised group: it could be zero
            parts.append(number() if nested or operator == "/" or random.random() < 0.6 else "(" + expr(True) + ")")
        return random.choice(["", " "]).join(parts)
    expression = expr(False)
    while len(expression) > 40:
        expression = expr(True)
    return {"expression": expression}
''',
)

spec(
    "parse_key_values", "parsing",
    """A device reports its status as a line `record` of key=value fields separated by semicolons. Numbers
should become numbers, "true"/"false" booleans, and everything else stays text; a field without '=' is
counted as malformed. What structured status does the parser produce?""",
    """Input:
  `record` (str): fields separated by ';', each "key=value" (spaces around keys and values are ignored),
  at most 90 characters.

Output:
  `return` (dict): {"fields": dict key -> int, float, bool or str in the order of the record (a repeated
  key keeps its last value), "malformed": int, the number of non-empty fields without '='}.""",
    '''
# import necessary packages
import re

# all class and function definitions in the code file, if any
INT_PATTERN = re.compile(r"^-?\\d+$")
FLOAT_PATTERN = re.compile(r"^-?\\d+\\.\\d+$")

def convert(text):
    if INT_PATTERN.match(text):
        return int(text)
    if FLOAT_PATTERN.match(text):
        return float(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text

# main function
def main_solution(record):
    fields = {}
    malformed = 0
    for part in record.split(";"):
        if not part.strip():
            continue
        if "=" not in part:
            malformed += 1
            continue
        key, value = part.split("=", 1)
        fields[key.strip()] = convert(value.strip())
    return {"fields": fields, "malformed": malformed}
''',
    '''
import random

def input_generator():
    keys = ["temp", "mode", "ok", "fan", "volt", "id"]
    values = ["21", "-4", "3.75", "true", "FALSE", "eco", "on", "0.5"]
    parts = []
    for _ in range(random.randint(1, 6)):
        if random.random() < 0.15:
            parts.append(random.choice(["oops", "?"]))
        else:
            parts.append(random.choice(keys) + random.choice(["=", " = "]) + random.choice(values))
    return {"record": ";".join(parts)[:90]}
''',
)

spec(
    "roman_numerals", "parsing",
    """An archivist transcribes year numbers written in Roman numerals, such as those on old building
plaques. Given the numeral `numeral`, what number does it stand for, and what is the canonical way to write
that number in Roman numerals?""",
    """Input:
  `numeral` (str): a Roman numeral of the letters I, V, X, L, C, D, M, value between 1 and 3999; it may
  use non-canonical additive forms such as "IIII" or "VIIII".

Output:
  `return` (dict): {"value": int, "canonical": str, the standard subtractive form of the value}.""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any
VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
SYMBOLS = [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
           (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]

def parse_roman(numeral):
    total = 0
    for i, letter in enumerate(numeral):
        value = VALUES[letter]
        if i + 1 < len(numeral) and VALUES[numeral[i + 1]] > value:
            total -= value
        else:
            total += value
    return total

def to_roman(number):
    parts = []
    for value, symbol in SYMBOLS:
        count, number = divmod(number, value)
        parts.append(symbol * count)
    return "".join(parts)

# main function
def main_solution(numeral):
    value = parse_roman(numeral)
    return {"value": value, "canonical": to_roman(value)}
''',
    '''
import random

def input_generator():
    number = random.randint(1, 3999)
    symbols = [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
               (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]
    parts = []
    for value, symbol in symbols:
        count, number = divmod(number, value)
        parts.append(symbol * count)
    numeral = "".join(parts)
    if random.random() < 0.3:
        numeral = numeral.replace("IV", "IIII").replace("IX", "VIIII")
    return {"numeral": numeral}
''',
)

spec(
    "sexpr_evaluate", "parsing",
    """A teaching interpreter reads arithmetic written as S-expressions, for example "(+ 1 (* 2 3))", with
the operators +, -, *, max and min taking any number of integer arguments (- with one argument negates).
Given the program `program`, what value does the interpreter print, and how deeply are its parentheses
nested?""",
    """Input:
  `program` (str): one well-formed S-expression of integers and the operators + - * max min, at most 60
  characters.

Output:
  `return` (dict): {"value": int, "depth": int, the maximum nesting depth of parentheses}.""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any
def tokenize(program):
    return program.replace("(", " ( ").replace(")", " ) ").split()

def parse(tokens, position):
    token = tokens[position]
    if token == "(":
        node = []
        position += 1
        while tokens[position] != ")":
            child, position = parse(tokens, position)
            node.append(child)
        return node, position + 1
    try:
        return int(token), position + 1
    except ValueError:
        return token, position + 1

def evaluate(node):
    if isinstance(node, int):
        return node
    operator, args = node[0], [evaluate(child) for child in node[1:]]
    if operator == "+":
        return sum(args)
    if operator == "-":
        return -args[0] if len(args) == 1 else args[0] - sum(args[1:])
    if operator == "*":
        result = 1
        for value in args:
            result *= value
        return result
    if operator == "max":
        return max(args)
    return min(args)

def depth(node):
    if not isinstance(node, list):
        return 0
    return 1 + max((depth(child) for child in node), default=0)

# main function
def main_solution(program):
    tree, _ = parse(tokenize(program), 0)
    return {"value": evaluate(tree), "depth": depth(tree)}
''',
    '''
import random

def input_generator():
    def build(level):
        if level > 2 or random.random() < 0.35:
            return str(random.randint(-9, 20))
        operator = random.choice(["+", "-", "*", "max", "min"])
        args = [build(level + 1) for _ in range(random.randint(1, 3))]
        return "(" + " ".join([operator] + args) + ")"
    program = build(0)
    while len(program) > 60 or not program.startswith("("):
        program = "(+ " + str(random.randint(0, 9)) + " " + str(random.randint(0, 9)) + ")"
    return {"program": program}
''',
)

spec(
    "version_compare", "parsing",
    """A package manager compares release versions such as "1.10.2" and "1.9" component by component
(missing components count as 0; a suffix like "-rc1" marks a pre-release that sorts before the release).
Given the list `versions`, in which order does it sort them, and which is the newest?""",
    """Input:
  `versions` (list of str): 2 to 8 versions "MAJOR.MINOR[.PATCH][-rcN]" with numbers 0-20.

Output:
  `return` (dict): {"sorted": list of str, the versions from oldest to newest (stable for equal versions),
  "newest": str}.""",
    '''
# import necessary packages

# all class and function definitions in the code file, if any
def version_key(version):
    core, _, suffix = version.partition("-")
    numbers = [int(part) for part in core.split(".")]
    while len(numbers) < 3:
        numbers.append(0)
    release_rank = (0, int(suffix[2:])) if suffix.startswith("rc") else (1, 0)
    return tuple(numbers) + release_rank

# main function
def main_solution(versions):
    ordered = sorted(versions, key=version_key)
    return {"sorted": ordered, "newest": ordered[-1]}
''',
    '''
import random

def input_generator():
    versions = []
    for _ in range(random.randint(2, 8)):
        parts = [str(random.randint(0, 3)), str(random.randint(0, 12))]
        if random.random() < 0.6:
            parts.append(str(random.randint(0, 20)))
        version = ".".join(parts)
        if random.random() < 0.25:
            version += "-rc" + str(random.randint(1, 3))
        versions.append(version)
    return {"versions": versions}
''',
)


# ---------------------------------------------------------------------------
# building


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    return True


def _size_violation(value: Any) -> str | None:
    from codeio.sandbox.sizecheck import size_violation  # the same check the pipeline applies

    return size_violation(value)


def build_row(item: Spec) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": f"codeio_corpus_{item.name}"}
    exec(compile(item.code, f"<corpus:{item.name}>", "exec"), namespace)  # our own code, see module docstring
    generator_ns: dict[str, Any] = {"__name__": f"codeio_corpus_gen_{item.name}"}
    exec(compile(item.generator, f"<corpus-gen:{item.name}>", "exec"), generator_ns)
    random.seed(f"{SEED_PREFIX}:{item.name}")
    seen: set[str] = set()
    ios: list[dict[str, Any]] = []
    for _ in range(MAX_GENERATOR_CALLS):
        kwargs = json.loads(json.dumps(generator_ns["input_generator"]()))
        key = _canonical(kwargs)
        if key in seen or _size_violation(kwargs):
            continue
        seen.add(key)
        output = namespace["main_solution"](**json.loads(json.dumps(kwargs)))
        output = json.loads(json.dumps(output))
        if output is None or not _finite(output) or _size_violation(output):
            continue
        ios.append({"input": kwargs, "output": output})
        if len(ios) == PAIRS_PER_FUNCTION:
            break
    if len(ios) < PAIRS_PER_FUNCTION:
        raise RuntimeError(f"{item.name}: only {len(ios)} valid pairs")
    return {
        "problem_description": item.problem,
        "io_requirements": item.io,
        "refcode": item.code,
        "funcname": "main_solution",
        "ios": ios,
        "category": item.category,
        "input_generator": item.generator,
        "meta": {"name": item.name, "license": LICENSE, "author": AUTHOR},
    }


def render() -> str:
    names = [item.name for item in SPECS]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise RuntimeError(f"duplicate corpus names: {sorted(duplicates)}")
    return "".join(json.dumps(build_row(item), ensure_ascii=False) + "\n" for item in SPECS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when unified.jsonl is not up to date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = UNIFIED_PATH.read_text(encoding="utf-8") if UNIFIED_PATH.exists() else ""
        if current != text:
            print(f"{UNIFIED_PATH} is out of date; rerun python -m codeio.corpus.build_corpus", file=sys.stderr)
            return 1
        return 0
    UNIFIED_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {len(SPECS)} functions to {UNIFIED_PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
