"""`deploy infer ARTIFACT IMAGE...`: top-k labels per image with the artifact's own preprocessing."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from deploy.cli.output import print_json, stdout


def infer(
    artifact: Path = typer.Argument(..., help="An exported .onnx (its .json sidecar beside it)."),
    images: list[Path] = typer.Argument(..., help="Image files (any format Pillow reads)."),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Zoo model whose preprocessing to assume when the sidecar is missing."
    ),
    top: int = typer.Option(5, "--top", "-k", help="How many labels per image."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
) -> None:
    """Classify images with an exported model through ONNX Runtime on CPU."""
    from deploy.harness.classify import classify

    result = classify(artifact, images, model=model, top_k=top)
    if as_json:
        print_json(result)
        return
    for item in result.classifications:
        table = Table(title=f"{item.image} — {result.model} via {result.backend}", title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("label")
        table.add_column("probability", justify="right")
        for rank, prediction in enumerate(item.predictions, start=1):
            table.add_row(str(rank), prediction.label, f"{prediction.probability:.2%}")
        stdout.print(table)
    if result.preprocessing_from == "zoo":
        stdout.print(f"[yellow]no sidecar: assumed {result.model}'s default preprocessing from the zoo[/yellow]")
