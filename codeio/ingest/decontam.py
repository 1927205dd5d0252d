"""Decontamination against evaluation sets given as files.

An evaluation set is a JSONL, JSON (list) or Parquet file of rows in any of the
usual shapes: CRUXEval (``code``, ``input``, ``output``), HumanEval (``prompt``,
``canonical_solution``, ``entry_point``), MBPP (``text``, ``code``), LeetCode
problems (``title``/``slug``, ``content``/``description`` in HTML, solution
code). A corpus file is contaminated by an item when it holds at least
``min_overlap`` of the item's code n-grams (``code_ngram`` tokens) or of its
statement's word n-grams (``text_ngram`` words) -- 10 to 13-grams as code-model
reports use -- or, for LeetCode items, when its path or a leetcode.com link names
the problem's slug.
"""

from __future__ import annotations

import html
import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from codeio.ingest.dedup import shingle_hashes, token_hashes, tokens

CODE_FIELDS = ("code", "canonical_solution", "solution", "refcode", "python", "completion")
PROMPT_FIELDS = ("prompt",)  # HumanEval: a signature plus the statement as docstring (code and text)
TEXT_FIELDS = ("text", "description", "content", "question", "problem_description", "statement",
               "problem_statement")
TITLE_FIELDS = ("slug", "titleSlug", "title_slug", "title", "question_title")
ID_FIELDS = ("task_id", "id", "question_id", "problem_id", "slug", "titleSlug", "title")
WORD_PATTERN = re.compile(r"[a-z0-9]+")
TAG_PATTERN = re.compile(r"<[^>]+>")
LEETCODE_LINK = re.compile(r"leetcode(?:\.cn|\.com)/problems/([a-z0-9-]+)", re.IGNORECASE)


@dataclass(frozen=True)
class DecontamConfig:
    eval_sets: tuple[tuple[str, str], ...] = ()  # (name, path or URL) of each evaluation set file
    fingerprints: tuple[str, ...] = ()  # content hashes of those files (the dataset key follows them)
    code_ngram: int = 10
    text_ngram: int = 13
    min_overlap: float = 0.5  # share of one eval item's n-grams found in the file
    match_slugs: bool = True


def slugify(name: str) -> str:
    name = re.sub(r"^\d+\s*[._-]?\s*", "", name.strip())
    return "-".join(WORD_PATTERN.findall(name.lower().replace("_", " ")))


def statement_words(text: str) -> list[str]:
    return WORD_PATTERN.findall(html.unescape(TAG_PATTERN.sub(" ", text)).lower())


@dataclass
class EvalItem:
    eval_set: str
    item_id: str
    code: str = ""
    text: str = ""
    slug: str = ""


def items_from_rows(eval_set: str, rows: Iterable[dict[str, Any]]) -> list[EvalItem]:
    items = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            continue
        item_id = next((str(row[k]) for k in ID_FIELDS if row.get(k) not in (None, "")), f"row{index + 1}")
        code = "\n".join(str(row[k]) for k in PROMPT_FIELDS + CODE_FIELDS if isinstance(row.get(k), str))
        text = "\n".join(str(row[k]) for k in PROMPT_FIELDS + TEXT_FIELDS if isinstance(row.get(k), str))
        title = next((str(row[k]) for k in TITLE_FIELDS if isinstance(row.get(k), str) and row[k].strip()), "")
        items.append(EvalItem(eval_set, item_id, code, text, slugify(title) if title else ""))
    return items


def rows_of_file(path: str, data: bytes) -> list[dict[str, Any]]:
    name = path.lower()
    if name.endswith(".parquet"):
        import polars as pl

        return pl.read_parquet(io.BytesIO(data)).to_dicts()
    text = data.decode("utf-8")
    if name.endswith(".json"):
        value = json.loads(text)
        return value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@dataclass
class EvalIndex:
    """n-gram -> items, per kind; plus LeetCode slugs."""

    config: DecontamConfig
    items: list[EvalItem] = field(default_factory=list)
    code_index: dict[int, list[int]] = field(default_factory=dict)
    text_index: dict[int, list[int]] = field(default_factory=dict)
    code_sizes: list[int] = field(default_factory=list)
    text_sizes: list[int] = field(default_factory=list)
    slugs: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, config: DecontamConfig, read: Callable[[str], bytes]) -> "EvalIndex":
        index = cls(config)
        for name, path in config.eval_sets:
            for item in items_from_rows(name, rows_of_file(path, read(path))):
                index.add(item)
        return index

    def add(self, item: EvalItem) -> None:
        number = len(self.items)
        self.items.append(item)
        code = self._code_ngrams(item.code)
        text = self._text_ngrams(item.text)
        for gram in code:
            self.code_index.setdefault(int(gram), []).append(number)
        for gram in text:
            self.text_index.setdefault(int(gram), []).append(number)
        self.code_sizes.append(len(code))
        self.text_sizes.append(len(text))
        if item.slug and self.config.match_slugs:
            self.slugs.setdefault(item.slug, number)

    def _code_ngrams(self, code: str) -> np.ndarray:
        found = tokens(code)
        return shingle_hashes(token_hashes(found), self.config.code_ngram) if len(found) >= self.config.code_ngram \
            else np.empty(0, dtype=np.uint64)

    def _text_ngrams(self, text: str) -> np.ndarray:
        words = statement_words(text)
        return shingle_hashes(token_hashes(words), self.config.text_ngram) if len(words) >= self.config.text_ngram \
            else np.empty(0, dtype=np.uint64)

    def _overlap(self, grams: np.ndarray, index: dict[int, list[int]], sizes: list[int]) -> tuple[int, float]:
        hits: Counter[int] = Counter()
        for gram in grams.tolist():
            for number in index.get(gram, ()):
                hits[number] += 1
        best, share = -1, 0.0
        for number, count in hits.items():
            value = count / sizes[number] if sizes[number] else 0.0
            if value > share:
                best, share = number, value
        return best, share

    def check(self, content: str, path: str = "") -> tuple[str, str] | None:
        """(eval set, detail) of the first match, or None for a clean file."""
        if not self.items:
            return None
        if self.slugs:
            parts = [p for p in re.split(r"[\\/]", path) if p][-2:]
            names = [slugify(re.sub(r"\.py$", "", part)) for part in parts]
            names += [m.group(1).lower() for m in LEETCODE_LINK.finditer(content)]
            for name in names:
                if name in self.slugs:
                    item = self.items[self.slugs[name]]
                    return item.eval_set, f"names LeetCode problem {item.item_id!r} (slug {name!r})"
        for kind, grams, index, sizes, n in (
                ("code", self._code_ngrams(content), self.code_index, self.code_sizes, self.config.code_ngram),
                ("statement", self._text_ngrams(content), self.text_index, self.text_sizes, self.config.text_ngram)):
            if not index or grams.size == 0:
                continue
            best, share = self._overlap(grams, index, sizes)
            if best >= 0 and share >= self.config.min_overlap:
                item = self.items[best]
                return item.eval_set, (f"holds {share:.0%} of the {n}-grams of the {kind} of "
                                       f"{item.eval_set} item {item.item_id!r}")
        return None
