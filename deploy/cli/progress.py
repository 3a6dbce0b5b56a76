"""The library's progress messages on stderr: a rich spinner with the step count and elapsed time on a terminal,
then one summary line per step with its seconds (and the size of the file it wrote).

Each message begins a step and ends the one before, so the summary times what the library was doing between two
messages. Off a terminal (CI logs, `2> file`) there is no spinner, only the summary lines; `--quiet` shows nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from deploy.cli.output import settings, stderr
from deploy.progress import Step


class StepReporter:
    """The callback handed to the library (`reporter(message)`); `close(ok)` ends the last step."""

    def __init__(self, console: Console, *, live: bool) -> None:
        self.console = console
        self.bar: Progress | None = None
        if live:
            self.bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.fields[count]}[progress.description]{task.description}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
        self.task: TaskID | None = None
        self.current: str | None = None
        self.started = 0.0

    def __call__(self, message: str) -> None:
        self._finish(ok=True)
        self.current, self.started = message, time.perf_counter()
        if self.bar is not None:
            if self.task is None:
                self.bar.start()
            else:
                self.bar.remove_task(self.task)
            self.task = self.bar.add_task(escape(message), count=escape(_count(message)), total=None)

    def close(self, *, ok: bool) -> None:
        self._finish(ok=ok)
        if self.bar is not None and self.task is not None:
            self.bar.remove_task(self.task)
            self.bar.stop()
            self.task = None

    def _finish(self, *, ok: bool) -> None:
        if self.current is None:
            return
        seconds = time.perf_counter() - self.started
        line = summary_line(self.current, seconds, ok=ok)
        (self.bar.console if self.bar is not None else self.console).print(line, highlight=False)
        self.current = None


def summary_line(message: str, seconds: float, *, ok: bool = True) -> str:
    """`✓ [2/6] building lenet5 int8 — 3.2 s, 0.2 MB`: rich markup, what each finished step leaves on stderr."""
    mark = "[green]✓[/green]" if ok else "[red]✗[/red]"
    details = [f"{seconds:.1f} s"]
    path = message.path if isinstance(message, Step) else None
    if ok and path is not None and Path(path).is_file():
        details.append(f"{Path(path).stat().st_size / 1e6:.1f} MB")
    return f"{mark} [dim]{escape(_count(message))}{escape(str(message))} — {', '.join(details)}[/dim]"


def _count(message: str) -> str:
    if isinstance(message, Step) and message.number is not None and message.total is not None:
        return f"[{message.number}/{message.total}] "
    return ""


@contextlib.contextmanager
def step_progress(ctx: typer.Context) -> Iterator[StepReporter | None]:
    """The progress callback for one library call: None with --quiet; live only when stderr is a terminal."""
    if settings(ctx).quiet:
        yield None
        return
    reporter = StepReporter(stderr, live=stderr.is_terminal)
    ok = False
    try:
        yield reporter
        ok = True
    finally:
        reporter.close(ok=ok)
