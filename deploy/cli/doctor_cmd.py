"""`deploy doctor`: the environment check GPU users run before `pytest -m gpu`."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from deploy.cli.output import print_json, stdout


def doctor(as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout.")) -> None:
    """Show what is installed and usable (ONNX Runtime, ModelOpt, PyTorch, GPU, TensorRT, pycuda)."""
    from deploy.doctor import diagnose

    report = diagnose()
    if as_json:
        print_json(report)
        return
    table = Table(title="deploy doctor")
    for column in ("component", "status", "version", "detail", "disabled while missing"):
        table.add_column(column)
    for check in report.checks:
        status = "[green]ok[/green]" if check.ok else "[yellow]missing[/yellow]"
        table.add_row(check.name, status, escape(check.version or ""), escape(check.detail), escape(check.disables))
    stdout.print(table)
    verdict = "ready: run `pytest -m gpu`" if report.tensorrt_ready else "not usable here (CPU targets only)"
    stdout.print(f"TensorRT path: {verdict}", highlight=False)
