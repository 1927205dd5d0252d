import re
from collections import namedtuple

Token = namedtuple("Token", "kind text line column")

TOKEN_SPEC = [
    ("NUMBER", r"\d+(?:\.\d*)?"),
    ("IDENT", r"[A-Za-z_]\w*"),
    ("STRING", r'"(?:\\.|[^"\\])*"'),
    ("OP", r"==|!=|<=|>=|[+\-*/=<>(){};,]"),
    ("NEWLINE", r"\n"),
    ("SKIP", r"[ \t]+"),
    ("COMMENT", r"#[^\n]*"),
    ("MISMATCH", r"."),
]
KEYWORDS = {"if", "else", "while", "let", "print", "fn", "return"}
MASTER = re.compile("|".join("(?P<%s>%s)" % pair for pair in TOKEN_SPEC))


class LexError(Exception):
    pass


class Lexer:
    def __init__(self, source):
        self.source = source

    def tokens(self):
        line, line_start = 1, 0
        for match in MASTER.finditer(self.source):
            kind, text = match.lastgroup, match.group()
            column = match.start() - line_start + 1
            if kind == "NEWLINE":
                line, line_start = line + 1, match.end()
                continue
            if kind in ("SKIP", "COMMENT"):
                continue
            if kind == "MISMATCH":
                raise LexError("unexpected %r at %d:%d" % (text, line, column))
            if kind == "IDENT" and text in KEYWORDS:
                kind = text.upper()
            yield Token(kind, text, line, column)


def count_kinds(source):
    counts = {}
    for tok in Lexer(source).tokens():
        counts[tok.kind] = counts.get(tok.kind, 0) + 1
    return counts


if __name__ == "__main__":
    program = 'let x = 3.5; # comment\nwhile (x >= 1) { print "hi"; x = x - 1; }\n'
    for tok in Lexer(program).tokens():
        print(tok)
    print(count_kinds(program))
