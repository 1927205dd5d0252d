"""A scripted model for evaluation tests, answering from a benchmark file's own key.

It finds the question's row by the code in the prompt (and, for LeetCode-O, the
given value), and answers right, wrong, half right (a seeded half of the
prompts), right on the first request of a prompt only (so sample 1 of 2 is
right and sample 2 wrong), or without any parseable answer. It records which
prompts it answered right, so tests can check scores exactly.
"""

from __future__ import annotations

import ast
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from llm_server import AttemptInfo, Reply, last_user_message

INPUT_FORMAT = '{"input": ...}'
OUTPUT_FORMAT = '{"output": ...}'
MODES = ("right", "wrong", "half", "first_right", "garbage")


class EvalTeacher:
    def __init__(self, path: Path, kind: str, mode: str = "right", seed: int = 0) -> None:
        if mode not in MODES:
            raise ValueError(mode)
        self.rows = [json.loads(line) for line in path.open() if line.strip()]
        self.kind, self.mode, self.seed = kind, mode, seed
        self.lock = threading.Lock()
        self.right: list[str] = []  # prompt keys answered right, one entry per request
        self.wrong: list[str] = []
        self.unknown = 0

    def __call__(self, body: dict[str, Any], info: AttemptInfo) -> Reply:
        prompt = last_user_message(body)
        task = "input" if prompt.rfind(INPUT_FORMAT) > prompt.rfind(OUTPUT_FORMAT) else "output"
        right = self._right_answer(prompt, task)
        if right is None:
            with self.lock:
                self.unknown += 1
            return Reply("I do not recognise this question.")
        if self.mode == "garbage":
            return Reply("I think the answer is probably something, but I cannot say.")
        good = {"right": True, "wrong": False, "first_right": info.attempt == 1,
                "half": int(hashlib.sha256(f"{self.seed}:{info.prompt_key}".encode()).hexdigest(), 16) % 2 == 0}[self.mode]
        with self.lock:
            (self.right if good else self.wrong).append(info.prompt_key)
        answer = right if good else ('{"input": {}}' if task == "input" else '{"output": "__surely_wrong__"}')
        return Reply(f"Let me follow the code step by step.\nSo the final answer is:\n{answer}")

    def _right_answer(self, prompt: str, task: str) -> str | None:
        for row in self.rows:
            if self.kind == "cruxeval":
                if row["code"].strip() not in prompt:
                    continue
                if task == "output":
                    return '{"output": ' + row["output"] + "}"
                function = next(n for n in ast.parse(row["code"]).body if isinstance(n, ast.FunctionDef))
                source = "_(" + row["input"] + ")"
                call = ast.parse(source, mode="eval").body
                pieces = [f"{arg.arg!r}: {ast.get_source_segment(source, node)}"
                          for arg, node in zip(function.args.args, call.args)]
                return '{"input": {' + ", ".join(pieces) + "}}"
            if row["refcode"].strip() not in prompt:
                continue
            for example in row.get("examples") or row.get("ios"):
                given = json.dumps(example["output"] if task == "input" else example["input"])
                if f"Given the following {'output' if task == 'input' else 'input'}:\n\n{given}\n" in prompt:
                    return json.dumps({task: example[task]})
        return None
