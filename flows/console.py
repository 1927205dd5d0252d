"""What every `codeio` command does to the terminal before Prefect or Dask start."""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, NoReturn

import typer
from rich.console import Console

PREFECT_LOGGERS = ("prefect", "prefect.flow_runs", "prefect.task_runs")


def quiet_logs() -> None:
    """Prefect's per-task INFO lines and the embedded Dask cluster's start/stop INFO
    lines drown the progress bars; the user can override either. (Set before
    Prefect or Dask is imported; the cluster's worker processes inherit it.)"""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    if os.environ["PREFECT_LOGGING_LEVEL"] == "WARNING":  # in case Prefect configured its loggers already
        for name in PREFECT_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    if "DASK_LOGGING__DISTRIBUTED" not in os.environ:
        os.environ["DASK_LOGGING__DISTRIBUTED"] = "warning"
        logging.getLogger("distributed").setLevel(logging.WARNING)  # in case Dask is imported already
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def fail(problems: list[str], code: int = 2) -> NoReturn:
    """One line per problem on stderr, then exit with ``code``."""
    err = Console(stderr=True)
    for line in problems:
        err.print(f"[red]error:[/red] {line}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def note(message: str) -> None:
    """A notice on stderr (the run's stop and start-up messages)."""
    Console(stderr=True).print(f"[yellow]{message}[/yellow]", highlight=False)


def supervised(command: str, check: Callable[[], None] | None = None, **overrides: Any) -> None:
    """Start ``codeio COMMAND`` (ingest, eval, sweep) as ``codeio run`` starts: under the
    run supervisor, with its embedded Prefect API (see flows/process.py), with the
    settings the command runs with (its grace period and lineage database); ``check``
    runs first in the process that does the work (see ``start_supervised``)."""
    from codeio.settings import load_settings
    from flows.process import start_supervised

    settings = load_settings(**{name: value for name, value in overrides.items() if value is not None})
    start_supervised(command, settings.cancel_grace_s, settings.database_url, say=note, check=check)
