"""Progress bars per stage (rich), quiet when disabled or not on a terminal."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class StageProgress:
    def __init__(self, enabled: bool = True, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.enabled = enabled

    @contextlib.contextmanager
    def track(self, label: str, shards: int) -> Iterator[Callable[[int], None]]:
        if not self.enabled:
            yield lambda records: None
            return
        columns = (TextColumn("[bold]{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("shards  {task.fields[records]} records"), TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=False) as progress:
            task_id = progress.add_task(label, total=shards, records=0)
            counted = 0

            def advance(records: int) -> None:
                nonlocal counted
                counted += records
                progress.update(task_id, advance=1, records=counted)

            yield advance

    def done(self, label: str, shards: int) -> None:
        if self.enabled:
            self.console.print(f"[bold]{label:<16}[/bold] reused ({shards} shard(s) already in the store)")

    def note(self, message: str) -> None:
        if self.enabled:
            self.console.print(message)
