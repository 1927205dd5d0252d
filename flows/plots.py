"""Plots for sweeps: response outcomes per revision round per branch (the paper's
Figure 7 view). matplotlib with the Agg backend: no display is ever needed."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

# Outcome order (bottom to top) and colours; every other status is drawn as "other".
OUTCOMES = ("success", "mismatch", "no_answer", "exception", "timeout")
OTHER = "other"
COLOURS = {
    "success": "#2e7d32", "mismatch": "#c62828", "no_answer": "#f9a825", "exception": "#6a1b9a",
    "timeout": "#1565c0", OTHER: "#9e9e9e",
}
BAR_WIDTH = 0.8
FIG_HEIGHT_IN = 4.8
FIG_WIDTH_PER_BAR_IN = 0.55
MIN_FIG_WIDTH_IN = 6.0
DPI = 120


def outcome_counts(statuses: Mapping[str, int]) -> dict[str, int]:
    """A round's verdict statuses folded onto OUTCOMES + other."""
    counts = {name: int(statuses.get(name, 0)) for name in OUTCOMES}
    counts[OTHER] = sum(int(n) for name, n in statuses.items() if name not in OUTCOMES)
    return counts


def outcomes_png(branches: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], title: str = "") -> bytes:
    """Stacked bars of verdict outcomes, one bar per revision round, grouped by branch.

    ``branches`` is ``[(branch name, summary["rounds"]), ...]``; each round item
    carries ``round`` and ``statuses``. Returns the PNG bytes."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure  # the OO API: no global pyplot state

    positions: list[float] = []
    labels: list[str] = []
    stacks: dict[str, list[int]] = {name: [] for name in (*OUTCOMES, OTHER)}
    group_centres: list[tuple[float, str]] = []
    x = 0.0
    for name, rounds in branches:
        start = x
        for item in rounds or [{"round": 1, "statuses": {}}]:
            counts = outcome_counts(item.get("statuses") or {})
            for outcome, n in counts.items():
                stacks[outcome].append(n)
            positions.append(x)
            labels.append(f"r{item.get('round', '?')}")
            x += 1.0
        group_centres.append(((start + x - 1.0) / 2, name))
        x += 0.8  # gap between branches
    width = max(MIN_FIG_WIDTH_IN, FIG_WIDTH_PER_BAR_IN * len(positions) + 2.5)
    figure = Figure(figsize=(width, FIG_HEIGHT_IN), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    bottoms = [0] * len(positions)
    for outcome in (*OUTCOMES, OTHER):
        values = stacks[outcome]
        if not any(values):
            continue
        axes.bar(positions, values, BAR_WIDTH, bottom=bottoms, label=outcome, color=COLOURS[outcome])
        bottoms = [b + v for b, v in zip(bottoms, values)]
    axes.set_xticks(positions, labels, fontsize=8)
    axes.set_ylabel("responses")
    axes.set_title(title or "response outcomes per revision round")
    secondary = axes.secondary_xaxis("bottom")
    secondary.set_xticks([c for c, _ in group_centres], [n for _, n in group_centres], rotation=20, ha="right",
                         fontsize=8)
    secondary.tick_params(length=0, pad=16)
    secondary.spines["bottom"].set_visible(False)
    if any(bottoms):
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")  # keeps the legend outside the axes
    return buffer.getvalue()
