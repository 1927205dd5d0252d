#!/usr/bin/env python3
# Reverse Polish notation calculator: reads expressions line by line from stdin.
import math
import operator
import sys

BINARY = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
          "^": operator.pow, "%": operator.mod}
UNARY = {"sqrt": math.sqrt, "neg": operator.neg, "abs": abs, "ln": math.log}


def rpn(expression):
    stack = []
    for token in expression.split():
        if token in BINARY:
            if len(stack) < 2:
                raise ValueError("stack underflow at %r" % token)
            b, a = stack.pop(), stack.pop()
            stack.append(BINARY[token](a, b))
        elif token in UNARY:
            stack.append(UNARY[token](stack.pop()))
        elif token == "dup":
            stack.append(stack[-1])
        elif token == "swap":
            stack[-1], stack[-2] = stack[-2], stack[-1]
        else:
            stack.append(float(token))
    if len(stack) != 1:
        raise ValueError("malformed expression: %d values left" % len(stack))
    return stack[0]


def to_infix(expression):
    stack = []
    for token in expression.split():
        if token in BINARY:
            b, a = stack.pop(), stack.pop()
            stack.append("(%s %s %s)" % (a, token, b))
        elif token in UNARY:
            stack.append("%s(%s)" % (token, stack.pop()))
        else:
            stack.append(token)
    return stack[-1]


if __name__ == "__main__":
    for line in sys.stdin:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            print("%s = %g" % (to_infix(line), rpn(line)))
        except (ValueError, IndexError, ZeroDivisionError) as err:
            print("error:", err)
