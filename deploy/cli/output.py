"""Where the CLI writes: machine output on stdout, human messages and errors on stderr."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from deploy.codec import dumps, envelope

# The subcommand being run, as the user typed it (set by the app's group when it resolves the command line).
COMMAND: ContextVar[str] = ContextVar("command", default="deploy")

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


@dataclasses.dataclass
class Settings:
    debug: bool = False
    quiet: bool = False


def settings(ctx: typer.Context) -> Settings:
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = Settings()
    return root.obj


def configure_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=stderr, show_time=False, show_path=debug)],
        force=True,
    )


def progress_printer(ctx: typer.Context) -> Callable[[str], None] | None:
    if settings(ctx).quiet:
        return None
    return lambda message: stderr.print(f"[dim]• {escape(message)}[/dim]", highlight=False)


def print_json(payload: Any, *, passed: bool | None = None) -> None:
    """`payload` in the one `--json` envelope (deploy.codec.envelope) of the command running."""
    typer.echo(dumps(envelope(COMMAND.get(), payload, passed=passed)))
