"""Input/output pairs that a source already carries, found without an LLM.

Corpus code is never run here: doctests, LeetCode statements and dataset rows' tests are parsed
with ``ast``/``doctest`` parsers and values read with ``ast.literal_eval``.
What comes out is a unified function (``main_solution`` + given pairs + a
description derived from the source and labelled as such); collect_io then
re-validates every pair in the sandbox like the pairs of any unified row, and
adds pairs from inputs the type-driven generator (:mod:`.typegen`) proposes.

- :mod:`.literals`: JSON-representable literals (the only values accepted).
- :mod:`.wrapping`: slicing a function out of its file, the ``main_solution``
  wrapper, the signature-derived I/O description.
- :mod:`.doctests`: each doctest-bearing function of a file.
- :mod:`.leetcode`: a problem folder (statement + ``class Solution``).
- :mod:`.nodes`: the judge's node types and their JSON forms.
- :mod:`.design`: design problems, replayed as call sequences.
- :mod:`.rows`: dataset rows (LeetCodeDataset, HumanEval, MBPP layouts).
- :mod:`.typegen`: candidate inputs from the signature and the example values.
"""

from codeio.examples.base import Extraction, OfflineFunction

# What the extractors find is part of normalize's dataset key when it runs without an LLM:
# bump this whenever a change here finds other functions or pairs in the same source
# (2: design problems, custom node types, dataset rows; doctest and literal fixes;
# 3: premium locks out of titles, globals updated with += kept in the slice, tree nodes
# given by value, sortedcontainers as a judge module, codec round trips, design
# generators that cut the constructor's lists and favour short sequences, round()/float() doctests;
# 4: the judge's NestedInteger; 5: list()/tuple()/sorted() around a doctest call).
EXTRACTION_VERSION = "5"

__all__ = ["EXTRACTION_VERSION", "Extraction", "OfflineFunction"]
