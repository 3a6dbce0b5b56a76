"""`deploy list [PATTERN]`: every architecture with its input, size and which weights are at hand.

It reads deploy.listing, never the registry: listing imports no torch, so it answers in well under a second.
"""

from __future__ import annotations

import typer

from deploy.cli.output import print_json, stdout
from deploy.cli.tables import Column, print_table


def list_models(
    pattern: str = typer.Argument("*", help="fnmatch pattern, e.g. 'resnet*'."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
) -> None:
    """List the architectures in the zoo."""
    from deploy.listing import catalog

    rows = catalog(pattern)
    if as_json:
        print_json({"models": rows})
        return
    columns = (
        Column("model", key=True),
        Column("family"),
        Column("input (C×H×W)"),
        Column("params", justify="right"),
        Column("weights"),
    )
    cells = [
        (
            row.name,
            row.family,
            "×".join(map(str, row.input_shape)),
            f"{row.num_params / 1e6:.2f}M",
            ", ".join(f"{w} (cached)" if w in row.cached_weights else w for w in row.weights),
        )
        for row in rows
    ]
    print_table(stdout, f"deploy model zoo ({len(rows)} architectures)", columns, cells)
