"""`codeio sweep GRID.yaml` (registered on the main CLI): check the grid, run the
sweep flow (flows/sweep.py), print the comparison table."""

from __future__ import annotations

from typing import Optional

import typer

from flows.console import fail, note, quiet_logs, supervised


def sweep(
    grid: str = typer.Argument(..., help="YAML grid of ablation axes"),
    out_dir: Optional[str] = typer.Option(None, help="where the comparison table and plot go"),
) -> None:
    """Run an ablation sweep: every branch of the grid, sharing upstream datasets."""
    quiet_logs()
    import fsspec
    import yaml
    from rich.console import Console
    from rich.table import Table

    from codeio.settings import load_settings
    from flows.preflight import check_inputs
    from flows.spec import EndpointURL
    from flows.sweep import (AXES, TERMINAL_HIDDEN, GridError, check_endpoint, codeio_ablation_sweep, format_cell,
                             parse_grid)

    console = Console()
    try:
        with fsspec.open(grid, "r", encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
        parsed = parse_grid(data)
        settings = load_settings(store=parsed.store, llm_base_url=parsed.llm_base_url)
        check_endpoint(parsed, settings)
    except (OSError, GridError, yaml.YAMLError) as error:
        fail([str(error)])
    problems = check_inputs(parsed.base.sources, None, settings, sources_name="sources")
    if problems:
        fail(problems)
    supervised("sweep", store=parsed.store, llm_base_url=parsed.llm_base_url)
    from flows.process import exit_when_interrupted

    # the endpoint travels as a parameter that Prefect stores with its password redacted
    endpoint = data.get("llm_base_url")
    with exit_when_interrupted(say=note):
        result = codeio_ablation_sweep(grid={k: v for k, v in data.items() if k != "llm_base_url"}, out_dir=out_dir,
                                       llm_base_url=EndpointURL(endpoint) if endpoint else None)
    table = Table(title=f"sweep {parsed.name}")
    columns = [c for c in (result["rows"][0] if result["rows"] else {})
               if c not in AXES and c not in TERMINAL_HIDDEN]
    for column in columns:
        table.add_column(column)
    for row in result["rows"]:
        table.add_row(*(format_cell(row[c]) for c in columns))
    console.print(table)
    for item in result["shared"]:
        console.print(f"shared {item['stage']:<13} {item['key']}  {len(item['branches'])} branches, "
                      f"computed {item['lineage_computations']}/{item['parts']} shard(s)")
    for kind, path in result["files"].items():
        console.print(f"written {kind}: {path}")
