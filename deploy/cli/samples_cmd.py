"""`deploy samples [DIR]`: real images to try the tools on, offline (scikit-image photos, sklearn digits)."""

from __future__ import annotations

from pathlib import Path

import typer

from deploy.cli.output import print_json, stdout


def samples(
    out_dir: Path = typer.Argument(Path("samples"), help="Folder to write the images to."),
    photos: int = typer.Option(6, "--photos", help="How many photos."),
    digits: int = typer.Option(10, "--digits", help="How many held-out handwritten digits (label in the name)."),
    as_json: bool = typer.Option(False, "--json", help="Print the written paths as JSON."),
) -> None:
    """Write sample photos and handwritten digits for `deploy infer`."""
    from deploy.samples import write_samples

    paths = write_samples(out_dir, photos=photos, digits=digits)
    if as_json:
        print_json({"files": paths})
        return
    for path in paths:
        stdout.print(str(path), highlight=False)
