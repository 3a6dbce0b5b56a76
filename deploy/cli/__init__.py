"""The `deploy` command line: Typer app, one small module per command, one error boundary."""

from deploy.cli.app import app, main

__all__ = ["app", "main"]
