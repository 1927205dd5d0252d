"""Scores from judgements: pass@k per task, per category, per difficulty, per problem.

With n samples per question and c of them right, pass@k is the unbiased
estimator 1 - C(n-c, k) / C(n, k) (Chen et al. 2021), averaged over questions;
pass@1 is then the mean fraction right. A problem (all questions of one item,
e.g. a LeetCode-O problem) is solved by a sample when every one of its
questions is right in that sample; problem pass@k uses the same estimator.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence

TASKS = ("output", "input")
ALL = "all"
UNPARSEABLE = "no_answer"
FAILED = "llm_failed"


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one question with ``c`` right out of ``n`` samples."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n; got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def default_ks(n: int) -> tuple[int, ...]:
    return tuple(k for k in (1, 5, 10, 100) if k <= n) or (1,)


def _group(judgements: Sequence[Mapping[str, Any]], samples: int, ks: Sequence[int]) -> dict[str, Any]:
    right: dict[str, int] = defaultdict(int)
    seen: dict[str, int] = defaultdict(int)
    statuses: dict[str, int] = defaultdict(int)
    for row in judgements:
        seen[row["question_id"]] += 1
        right[row["question_id"]] += int(bool(row["correct"]))
        statuses[row["status"]] += 1
    incomplete = [q for q, n in seen.items() if n != samples]
    if incomplete:
        raise ValueError(f"{len(incomplete)} question(s) do not have {samples} judged samples, e.g. {incomplete[0]}")
    questions = len(seen)
    out: dict[str, Any] = {"questions": questions, "answers": sum(seen.values())}
    for k in ks:
        out[f"pass@{k}"] = round(sum(pass_at_k(samples, right[q], k) for q in seen) / questions, 6) if questions else None
    out["unparseable"] = statuses.get(UNPARSEABLE, 0)
    out["failed"] = statuses.get(FAILED, 0)
    out["statuses"] = dict(sorted(statuses.items()))
    return out


def _problems(judgements: Sequence[Mapping[str, Any]], samples: int, ks: Sequence[int]) -> dict[str, Any]:
    """Per item: the samples in which all its questions are right."""
    solved: dict[str, list[bool]] = {}
    for row in judgements:
        flags = solved.setdefault(row["item_id"], [True] * samples)
        flags[int(row["sample"])] = flags[int(row["sample"])] and bool(row["correct"])
    problems = len(solved)
    out: dict[str, Any] = {"problems": problems, "solved_by_every_sample": sum(all(f) for f in solved.values())}
    for k in ks:
        out[f"pass@{k}"] = round(sum(pass_at_k(samples, sum(f), k) for f in solved.values()) / problems, 6) \
            if problems else None
    return out


def score(judgements: Iterable[Mapping[str, Any]], samples: int, ks: Sequence[int] | None = None) -> dict[str, Any]:
    """The whole score report of one evaluation (plain data, JSON-ready)."""
    rows = list(judgements)
    ks = tuple(ks or default_ks(samples))
    if any(k > samples for k in ks):
        raise ValueError(f"pass@k needs k <= samples ({samples}); got {ks}")
    by_task = {task: [r for r in rows if r["task"] == task] for task in TASKS}
    report: dict[str, Any] = {
        "samples": samples, "ks": list(ks),
        "tasks": {task: _group(by_task[task], samples, ks) for task in TASKS if by_task[task]},
        "problems": {**{task: _problems(by_task[task], samples, ks) for task in TASKS if by_task[task]},
                     ALL: _problems(rows, samples, ks)},
    }
    report["tasks"][ALL] = _group(rows, samples, ks)
    for field, name in (("category", "by_category"), ("difficulty", "by_difficulty")):
        values = sorted({str(r[field]) for r in rows})
        report[name] = {value: {task: _group([r for r in by_task[task] if str(r[field]) == value], samples, ks)
                                for task in TASKS if any(str(r[field]) == value for r in by_task[task])}
                        for value in values}
    return report


def flat_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (group, task): what tables, plots and comparisons show."""
    ks = report["ks"]
    rows = []

    def add(group: str, task: str, item: Mapping[str, Any], unit: str) -> None:
        rows.append({"group": group, "task": task, "unit": unit, "count": item.get(unit, 0),
                     **{f"pass@{k}": item.get(f"pass@{k}") for k in ks},
                     "unparseable": item.get("unparseable", 0)})

    for task, item in report["tasks"].items():
        add(ALL, task, item, "questions")
    for task, item in report["problems"].items():
        add("problems", task, item, "problems")
    for field in ("by_category", "by_difficulty"):
        prefix = field.removeprefix("by_")
        for value, tasks in report[field].items():
            for task, item in tasks.items():
                add(f"{prefix}:{value}", task, item, "questions")
    return rows


def compare(current: Mapping[str, Any], previous: Mapping[str, Any]) -> list[dict[str, Any]]:
    """pass@1 of both runs side by side, per (group, task), with the difference."""
    before = {(r["group"], r["task"]): r for r in flat_rows(previous)}
    now = {(r["group"], r["task"]): r for r in flat_rows(current)}
    rows = []
    for key in list(now) + [k for k in before if k not in now]:
        a, b = before.get(key, {}).get("pass@1"), now.get(key, {}).get("pass@1")
        rows.append({"group": key[0], "task": key[1], "previous": a, "current": b,
                     "delta": round(b - a, 6) if a is not None and b is not None else None})
    return rows
