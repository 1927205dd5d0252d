#!/usr/bin/env python3
"""Count words in text files, like a small `wc -w` with a frequency table."""

import argparse
import collections
import re
import sys

WORD = re.compile(r"[A-Za-z']+")


def count_words(stream, ignore_case=True):
    counts = collections.Counter()
    for line in stream:
        for word in WORD.findall(line):
            counts[word.lower() if ignore_case else word] += 1
    return counts


def format_table(counts, top):
    width = max((len(w) for w, _ in counts.most_common(top)), default=4)
    rows = ["%-*s %6s" % (width, "word", "count")]
    for word, n in counts.most_common(top):
        rows.append("%-*s %6d" % (width, word, n))
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="*", help="files to read (stdin when none)")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--case-sensitive", action="store_true")
    args = parser.parse_args(argv)
    total = collections.Counter()
    if not args.files:
        total = count_words(sys.stdin, not args.case_sensitive)
    for name in args.files:
        with open(name, encoding="utf-8") as handle:
            total += count_words(handle, not args.case_sensitive)
    print(format_table(total, args.top))
    print("total words:", sum(total.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
