"""`deploy import FILE`: an ONNX image classifier made by another tool, checked and given a sidecar in export/."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from deploy.cli.options import INTERPOLATION, LABELS, MEAN, RESIZE_SIZE, STD
from deploy.cli.output import print_json, stderr, stdout
from deploy.cli.progress import step_progress


def import_onnx(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="The .onnx image classifier: one float32 input [N, C, H, W], one output."),
    name: str | None = typer.Option(
        None, "--name", help="Model name and file stem in --out-dir (default: FILE's stem; not a zoo name)."
    ),
    out_dir: Path = typer.Option(Path("export"), "--out-dir", "-o", help="Folder for the .onnx copy and its .json."),
    labels: Path | None = LABELS,
    input_size: int | None = typer.Option(
        None, "--input-size", help="Side of the square input (default: the file's static H = W; required if dynamic)."
    ),
    resize_size: int | None = RESIZE_SIZE,
    mean: str | None = MEAN,
    std: str | None = STD,
    interpolation: str | None = INTERPOLATION,
    max_batch: int | None = typer.Option(
        None, "--max-batch", help="Largest batch of a dynamic batch dimension (default 32, at most 4096)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result (files, sidecar, assumptions) as JSON."),
) -> None:
    """Import an ONNX classifier made elsewhere: check it, run it once, write it and its sidecar, so build, verify,
    bench, infer and triton take it by name. Its FP32 ONNX on ONNX Runtime is the reference it is verified against.
    RGB models default to ImageNet's --mean/--std and resize (said when assumed); gray models need --mean/--std."""
    from deploy.cli.options import customization
    from deploy.onnx_import import ImportConfig
    from deploy.onnx_import import import_onnx as run_import

    config = ImportConfig(
        source=file,
        name=name,
        out_dir=out_dir,
        max_batch=max_batch,
        custom=customization(
            num_classes=None,
            labels=labels,
            input_size=input_size,
            resize_size=resize_size,
            mean=mean,
            std=std,
            interpolation=interpolation,
        ),
    )
    with step_progress(ctx) as progress:
        result = run_import(config, progress=progress)
    for assumption in result.assumptions:
        stderr.print(f"[yellow]assumed:[/yellow] {escape(assumption)}", highlight=False)
    if as_json:
        print_json(result)
        return
    stdout.print(f"{result.onnx_path}", highlight=False)
    stdout.print(f"{result.sidecar_path}", highlight=False)
    where = "" if out_dir == Path("export") else f" --export-dir {out_dir}"
    stderr.print(
        f"[green]✓[/green] {escape(result.sidecar.model)}: ran on {result.checked_images} demo "
        f"image{'s' * (result.checked_images != 1)}; next: "
        f"{escape(f'deploy build {result.sidecar.model}{where}')}",
        highlight=False,
    )
