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
        with self.track_many([label], shards) as (advance,):
            yield advance

    @contextlib.contextmanager
    def track_many(self, labels: list[str], shards: int) -> Iterator[list[Callable[[int], None]]]:
        """One bar per stage of a lane; ``advances[i](records)`` marks a shard of stage i done."""
        if not self.enabled:
            yield [lambda records: None for _ in labels]
            return
        columns = (TextColumn("[bold]{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("shards  {task.fields[records]} records"), TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=False) as progress:
            yield [self._bar(progress, label, shards) for label in labels]

    @staticmethod
    def _bar(progress: Progress, label: str, shards: int) -> Callable[[int], None]:
        task_id = progress.add_task(label, total=shards, records=0)
        counted = 0

        def advance(records: int) -> None:
            nonlocal counted
            counted += records
            progress.update(task_id, advance=1, records=counted)

        return advance

    def done(self, label: str, shards: int) -> None:
        if self.enabled:
            self.console.print(f"[bold]{label:<16}[/bold] reused ({shards} shard(s) already in the store)")

    def note(self, message: str) -> None:
        if self.enabled:
            self.console.print(message)
