"""`deploy list [PATTERN]`: every architecture with its input, size and which weights are at hand."""

from __future__ import annotations

import typer
from rich.table import Table

from deploy.cli.output import print_json, stdout


def list_models(
    pattern: str = typer.Argument("*", help="fnmatch pattern, e.g. 'resnet*'."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
) -> None:
    """List the architectures in the zoo."""
    from deploy.zoo.catalog import catalog

    rows = catalog(pattern)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"deploy model zoo ({len(rows)} architectures)")
    for column in ("model", "family", "input (C×H×W)", "params", "weights"):
        table.add_column(column, justify="right" if column == "params" else "left")
    for row in rows:
        weights = ", ".join(f"{w} (cached)" if w in row.cached_weights else w for w in row.weights)
        table.add_row(
            row.name,
            row.family,
            "×".join(map(str, row.input_shape)),
            f"{row.num_params / 1e6:.2f}M",
            weights,
        )
    stdout.print(table)
