"""`deploy export MODEL`: ONNX + sidecar, simplified and parity-checked against eager PyTorch."""

from __future__ import annotations

from pathlib import Path

import typer

from deploy.cli.output import print_json, progress_printer, stdout


def export(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Architecture name (see `deploy list`)."),
    weights: str | None = typer.Option(
        None,
        "--weights",
        "-w",
        help="torchvision weights name (DEFAULT, IMAGENET1K_V1, …), a checkpoint PATH, "
        "or 'random'. Default: the model's pretrained weights, or random where none exist.",
    ),
    out_dir: Path = typer.Option(Path("export"), "--out-dir", "-o", help="Folder for the .onnx and .json."),
    opset: int = typer.Option(20, "--opset", help="ONNX opset (18-23)."),
    max_batch: int = typer.Option(32, "--max-batch", help="Largest batch of the dynamic batch dimension."),
    static: bool = typer.Option(False, "--static", help="Fixed input shape instead of a dynamic batch."),
    batch: int = typer.Option(1, "--batch", help="Batch size of a --static export."),
    simplifier: str = typer.Option("onnxsim", "--simplifier", help="onnxsim, onnxslim or none."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Check eager vs ONNX Runtime parity."),
    atol: float | None = typer.Option(None, "--atol", help="Absolute tolerance override (FP32 default 1e-4)."),
    rtol: float | None = typer.Option(None, "--rtol", help="Relative tolerance override (FP32 default 1e-3)."),
    samples: int = typer.Option(8, "--samples", help="Sample images used for the parity check."),
    as_json: bool = typer.Option(False, "--json", help="Print the sidecar as JSON on stdout."),
) -> None:
    """Export a zoo model to ONNX with a sidecar, simplify it and prove it matches eager PyTorch."""
    from deploy.errors import BadInput
    from deploy.export import ExportConfig, export_model
    from deploy.harness.compare import DEFAULT_TOLERANCES, with_overrides
    from deploy.simplify import SIMPLIFIERS

    if simplifier not in SIMPLIFIERS:
        raise BadInput(f"--simplifier {simplifier!r} is unknown", hint=f"choose one of {', '.join(SIMPLIFIERS)}")
    config = ExportConfig(
        model=model,
        weights=weights,
        out_dir=out_dir,
        opset=opset,
        max_batch=max_batch,
        static=static,
        static_batch=batch,
        simplifier=simplifier,  # type: ignore[arg-type]  # checked against SIMPLIFIERS above
        verify=verify,
        tolerance=with_overrides(DEFAULT_TOLERANCES["fp32"], atol=atol, rtol=rtol),
        parity_samples=samples,
    )
    result = export_model(config, progress=progress_printer(ctx))
    if as_json:
        print_json(result.sidecar)
        return
    parity = "not verified (--no-verify)" if result.parity is None else f"parity passed: {result.parity.summary()}"
    stdout.print(f"{result.onnx_path}", highlight=False)
    stdout.print(f"{result.sidecar_path}", highlight=False)
    stdout.print(f"[green]✓[/green] {result.sidecar.model}: {parity}", highlight=False)
