"""`deploy doctor`: the environment check GPU users run before `pytest -m gpu`."""

from __future__ import annotations

import typer
from rich.markup import escape

from deploy.cli.output import print_json, stdout
from deploy.cli.tables import Column, print_table


def doctor(as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout.")) -> None:
    """Show what is installed and usable (ONNX Runtime, ModelOpt, PyTorch, GPU, TensorRT, pycuda)."""
    from deploy.doctor import diagnose

    report = diagnose()
    if as_json:
        print_json(report)
        return
    columns = [Column("component", key=True), Column("status"), Column("version", key=True), Column("detail"),
               Column("disabled while missing")]  # fmt: skip
    rows = [
        (
            escape(check.name),
            "[green]ok[/green]" if check.ok else "[yellow]missing[/yellow]",
            escape(check.version or ""),
            escape(check.detail),
            escape(check.disables),
        )
        for check in report.checks
    ]
    print_table(stdout, "deploy doctor", columns, rows)
    verdict = "ready: run `pytest -m gpu`" if report.tensorrt_ready else "not usable here (CPU targets only)"
    stdout.print(f"TensorRT path: {verdict}", highlight=False)
