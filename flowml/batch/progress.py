"""What ``flowml batch`` shows: a progress bar (files done, frames per second, ETA) on a
terminal, a line per finished input elsewhere, and a summary table at the end."""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table

from .ledger import Summary
from .runner import FileResult

__all__ = ["BatchProgress", "summary_table"]


class BatchProgress:
    """A ``Reporter`` for the drivers. Use as a context manager."""

    def __init__(self, console: Console, total: int, skipped: int = 0, name: str = "batch"):
        self.console = console
        self.total, self.skipped = total, skipped
        self.frames = 0
        self.t0 = time.perf_counter()
        self.bar: Progress | None = None
        if console.is_terminal:
            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[fps]} fps"), TimeElapsedColumn(),
                                TextColumn("ETA"), TimeRemainingColumn(), console=console)
            self.task = self.bar.add_task(name, total=total, completed=skipped, fps="-")

    def __enter__(self) -> "BatchProgress":
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def finished(self, result: FileResult) -> None:
        self.frames += result.frames
        fps = self.frames / max(1e-9, time.perf_counter() - self.t0)
        if result.status == "done":
            line = (f"done {escape(result.input)}: {result.frames} frames in {result.seconds:.2f} s"
                    + (f" -> {escape(', '.join(result.outputs))}" if result.outputs else ""))
        else:
            line = f"[red]failed[/red] {escape(result.input)}: {escape(result.error or '?')}"
        if self.bar is not None:
            self.bar.update(self.task, advance=1, fps=f"{fps:.1f}")
            if result.status != "done":
                self.bar.console.print(line)
        else:
            self.console.print(line, soft_wrap=True)

    def note(self, text: str) -> None:
        self.console.print(f"[yellow]{escape(text)}[/yellow]", soft_wrap=True)


def summary_table(s: Summary, title: str = "flowml batch") -> Table:
    t = Table(title=title, title_justify="left")
    t.add_column("files")
    t.add_column("count", justify="right")
    rows = [("done", s.done), ("failed", s.failed), ("skipped (done before)", s.skipped),
            ("not finished", s.not_finished), ("total", s.total)]
    for name, n in rows:
        t.add_row(name, str(n))
    t.add_section()
    t.add_row("frames", str(s.frames))
    t.add_row("seconds", f"{s.seconds:.1f}")
    t.add_row("files per minute", f"{s.files_per_minute:.1f}")
    t.add_row("frames per second", f"{s.fps:.1f}")
    t.add_row("workers", str(s.workers))
    if s.retries or s.restarts:
        t.add_row("retries / workers replaced", f"{s.retries} / {s.restarts}")
    return t


def failures_table(s: Summary, limit: int = 20) -> Table | None:
    if not s.failures:
        return None
    t = Table(title=f"{len(s.failures)} failed", title_justify="left", show_lines=False)
    t.add_column("input", overflow="fold")
    t.add_column("error", overflow="fold")
    for f in s.failures[:limit]:
        t.add_row(escape(f["input"]), escape((f["error"] or "").strip().splitlines()[0]
                                             if (f["error"] or "").strip() else "?"))
    if len(s.failures) > limit:
        t.add_row("...", f"{len(s.failures) - limit} more in the manifest")
    return t
