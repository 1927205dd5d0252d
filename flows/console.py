"""What every `codeio` command does to the terminal before Prefect or Dask start."""

from __future__ import annotations

import logging
import os
from typing import Callable, NoReturn

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


API_STARTUP_TIMEOUT_S = 60  # Prefect waits 20 s by default: too short on a loaded machine
STARTUP_TIMEOUT_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


def fail(problems: list[str], code: int = 2) -> NoReturn:
    """One line per problem on stderr, then exit with ``code``."""
    err = Console(stderr=True)
    for line in problems:
        err.print(f"[red]error:[/red] {line}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def start_api() -> None:
    """Start the embedded Prefect API before a command's flow (see ``start_prefect_api``);
    a second failure is one line and exit 1."""
    err = Console(stderr=True)
    try:
        start_prefect_api(lambda line: err.print(f"[yellow]{line}[/yellow]", highlight=False, soft_wrap=True))
    except RuntimeError as error:
        fail([f"the embedded Prefect API server did not start: {str(error).splitlines()[0][:300]} "
              "(set PREFECT_API_URL to use a running server)"], code=1)


def start_prefect_api(say: Callable[[str], None]) -> None:
    """Start the embedded Prefect API before a flow needs it (the flow then uses it),
    when no PREFECT_API_URL is configured: wait for it longer than Prefect does (or as
    long as the user set), and when it still does not answer, stop it, say so
    and try once more, waiting twice as long. A second failure raises."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return
    configured = os.environ.get(STARTUP_TIMEOUT_SETTING, "")
    timeout = int(configured) if configured.isdigit() and int(configured) > 0 else API_STARTUP_TIMEOUT_S
    try:
        SubprocessASGIServer().start(timeout=timeout)
    except RuntimeError as error:
        SubprocessASGIServer().stop()
        retry = max(2 * timeout, API_STARTUP_TIMEOUT_S)
        say(f"the embedded Prefect API server did not start within {timeout} s "
            f"({str(error).splitlines()[0][:200]}); retrying once, waiting up to {retry} s")
        SubprocessASGIServer().start(timeout=retry)
