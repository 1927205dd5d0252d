"""`codeio sweep GRID.yaml` (registered on the main CLI). Implemented in flows/sweep.py."""

from __future__ import annotations

from typing import Optional

import typer


def sweep(
    grid: str = typer.Argument(..., help="YAML grid of ablation axes"),
    out_dir: Optional[str] = typer.Option(None, help="where the comparison table and plot go"),
) -> None:
    """Run an ablation sweep: every branch of the grid, sharing upstream datasets."""
    from flows.sweep import sweep_command

    sweep_command(grid, out_dir)
