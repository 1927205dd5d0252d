"""A scripted teacher for the fake OpenAI server, built from the authors' toy data.

Normalization requests carry a raw file verbatim: when the toy set has that
file's unified form, the reply is the four-heading answer (with an input
generator that draws from the published inputs), else an unusable reply.
Prediction requests are answered from the published pairs: wrong first and
right on revision (``mode="wrong_first"``), always right, or always wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llm_server import AttemptInfo, Reply

INPUT_FORMAT = '{"input": ...}'
OUTPUT_FORMAT = '{"output": ...}'


def load_toy(toy: Path) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    raw = [json.loads(line) for line in (toy / "raw_code.jsonl").open()]
    unified = {}
    for line in (toy / "unified_with_ios.jsonl").open():
        row = json.loads(line)
        unified[int(row["meta"]["msgidx"])] = row
    return raw, unified


def normalization_reply(row: dict[str, Any]) -> str:
    inputs = [pair["input"] for pair in row["ios"]]
    generator = (
        "import random\n\n"
        "def input_generator():\n"
        f"    choices = {json.dumps(inputs)!r}\n"
        "    import json as _json\n"
        "    return random.choice(_json.loads(choices))\n"
    )
    return (
        "Here is the converted code.\n\n"
        f"## Main Function\n```python\n{row['refcode']}\n```\n\n"
        f"## Input Output Description\n{row['io_requirements']}\n\n"
        f"## Input Generator\n```python\n{generator}```\n\n"
        f"## Problem Statement\n{row['problem_description']}\n"
    )


class ToyTeacher:
    def __init__(self, toy: Path, mode: str = "wrong_first"):
        self.raw, self.unified = load_toy(toy)
        self.mode = mode
        self.normalize_requests = 0
        self.prediction_requests = 0

    def __call__(self, body: dict[str, Any], info: AttemptInfo) -> Reply:
        messages = body["messages"]
        first = messages[0]["content"]
        if "input_generator" in first and "main_solution" in first and "Given the following" not in first:
            self.normalize_requests += 1
            for index, row in enumerate(self.raw):
                if row["content"] in first:
                    if index in self.unified:
                        return Reply(normalization_reply(self.unified[index]))
                    return Reply("I am sorry, this file cannot be turned into a self-contained function.")
            return Reply("no match")
        self.prediction_requests += 1
        return Reply(self._predict(first, revision=len(messages) > 1))

    def _predict(self, prompt: str, revision: bool) -> str:
        task = "input" if prompt.rfind(INPUT_FORMAT) > prompt.rfind(OUTPUT_FORMAT) else "output"
        for row in self.unified.values():
            if row["refcode"].strip() not in prompt:
                continue
            for pair in row["ios"]:
                given = json.dumps(pair["output"] if task == "input" else pair["input"])
                if f"Given the following {'output' if task == 'input' else 'input'}:\n\n{given}\n" in prompt:
                    right = {"input": pair["input"]} if task == "input" else {"output": pair["output"]}
                    wrong = {"input": {}} if task == "input" else {"output": "__surely_wrong__"}
                    answer = right
                    if self.mode == "wrong" or (self.mode == "wrong_first" and not revision):
                        answer = wrong
                    return f"Let me reason step by step about the code.\nThe final answer is:\n{json.dumps(answer)}"
        return "I could not work it out."
