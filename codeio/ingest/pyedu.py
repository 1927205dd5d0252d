"""PyEdu-R selection: Python-Edu files that centre on reasoning (STEM, system
modelling, simulation, logic puzzles), not pure algorithm implementations
(METHOD.md section 2).

Two rules, each counted: the row's educational score (``int_score``, 0-5, as
Python-Edu rows carry it) must reach ``min_int_score``; then a transparent
reasoning-focus score, a weighted sum of features read from the imports,
identifiers, docstrings/comments and structure, must reach ``min_reasoning``.
Every feature and the score are recorded with the file, so a selection can be
audited and re-thresholded without re-reading the corpus.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from codeio.ingest.facts import CodeFacts, code_facts, parse

STEM_IMPORTS = frozenset({
    "math", "cmath", "statistics", "fractions", "decimal", "random", "numpy", "scipy", "sympy", "networkx",
    "simpy", "astropy", "pandas", "itertools", "datetime", "calendar", "collections", "heapq", "bisect",
})
IO_IMPORTS = frozenset({
    "flask", "django", "requests", "urllib", "socket", "subprocess", "tkinter", "pygame", "boto3", "sqlite3",
    "selenium", "http", "smtplib", "telebot", "discord", "PyQt5", "PyQt6", "kivy", "turtle", "os", "shutil",
})
# words of domains the paper's PyEdu-R keeps (matched in identifiers and docstrings/comments)
REASONING_WORDS = frozenset("""
simulate simulation simulator model modelling modeling physics velocity acceleration force mass energy momentum
gravity orbit planet particle temperature pressure population growth decay probability expected variance
distribution random walk monte carlo markov stochastic bank account inventory queue elevator traffic vending
customer schedule scheduler election voting game board puzzle sudoku chess maze nqueens queens knight tictactoe
tic tac toe logic constraint solver solve equation polynomial matrix vector integral derivative geometry triangle
circle area volume interest loan mortgage compound finance portfolio chemistry molecule reaction cell genetic
dna protein epidemic sir infection ecosystem predator prey weather climate circuit voltage current resistance
automaton cellular life conway lottery dice cards poker blackjack budget salary tax recipe calendar date time
""".split())
ALGORITHM_WORDS = frozenset("""
sort sorted sorting bubble quicksort mergesort heapsort insertion selection binary search bfs dfs dijkstra
kruskal prim traversal linkedlist linked list node stack heap trie hashmap hashtable fibonacci factorial gcd
palindrome anagram reverse leetcode solution
""".split())
IDENTIFIER_PATTERN = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True)
class PyEduConfig:
    min_int_score: int = 3  # Python-Edu's educational classifier scale 0-5
    require_int_score: bool = False  # rows without int_score: rejected (True) or judged by reasoning alone
    min_reasoning: float = 2.0
    weights: tuple[tuple[str, float], ...] = field(default=(
        ("stem_imports", 1.0),  # per distinct STEM/data import, at most 3
        ("reasoning_words", 0.5),  # per distinct domain word in identifiers and text, at most 6
        ("algorithm_words", -0.5),  # per distinct pure-algorithm word, at most 4
        ("io_imports", -1.0),  # per distinct I/O, UI or network import, at most 3
        ("classes_with_state", 1.0),  # classes whose methods assign attributes (system models), at most 2
        ("docstrings", 0.25),  # documented functions/classes, at most 4
        ("loops_with_state", 0.5),  # loops that update a variable over steps, at most 2
    ))


CAPS = {"stem_imports": 3, "reasoning_words": 6, "algorithm_words": 4, "io_imports": 3, "classes_with_state": 2,
        "docstrings": 4, "loops_with_state": 2}


def _words(text: str) -> set[str]:
    """Lower-case words, with snake_case and CamelCase split."""
    words: set[str] = set()
    for token in IDENTIFIER_PATTERN.findall(re.sub(r"([a-z])([A-Z])", r"\1 \2", text)):
        words.add(token.lower())
    return words


def reasoning_features(facts: CodeFacts, text: str) -> dict[str, int]:
    comments = " ".join(line.split("#", 1)[1] for line in text.splitlines() if "#" in line)
    words = _words(" ".join(facts.identifiers)) | _words(" ".join(facts.docstrings) + " " + comments)
    return {
        "stem_imports": len(facts.imports & STEM_IMPORTS),
        "io_imports": len(facts.imports & IO_IMPORTS),
        "reasoning_words": len(words & REASONING_WORDS),
        "algorithm_words": len(words & ALGORITHM_WORDS),
        "classes_with_state": facts.classes_with_state,
        "docstrings": len(facts.docstrings),
        "loops_with_state": facts.loops_with_state,
    }


def reasoning_score(features: dict[str, int], config: PyEduConfig) -> float:
    return round(sum(weight * min(features.get(name, 0), CAPS.get(name, 10 ** 9)) for name, weight in config.weights), 3)


@dataclass(frozen=True)
class PyEduVerdict:
    reason: str | None
    detail: str
    features: dict[str, Any]


def check_pyedu(text: str, int_score: Any, config: PyEduConfig, facts: CodeFacts | None = None) -> PyEduVerdict:
    """Rule 1: int_score; rule 2: reasoning focus (``facts``: the file's AST facts when
    the CodeMix filters already parsed it). Files that do not parse score 0 here."""
    features: dict[str, Any] = {"int_score": int_score}
    if int_score is None:
        if config.require_int_score:
            return PyEduVerdict("no_int_score", "the row has no int_score and require_int_score is set", features)
    elif not isinstance(int_score, (int, float)) or int_score < config.min_int_score:
        return PyEduVerdict("low_edu_score", f"int_score {int_score!r} < {config.min_int_score}", features)
    if facts is None:
        tree = parse(text)
        facts = code_facts(tree) if tree is not None else CodeFacts()
    features.update(reasoning_features(facts, text))
    score = reasoning_score(features, config)
    features["reasoning_score"] = score
    if score < config.min_reasoning:
        top = ", ".join(f"{k}={features[k]}" for k in CAPS if features.get(k))
        return PyEduVerdict("low_reasoning_focus", f"reasoning score {score} < {config.min_reasoning} ({top or 'no features'})",
                            features)
    return PyEduVerdict(None, "", features)
