"""`deploy export MODEL`: ONNX + sidecar, simplified and parity-checked against eager PyTorch."""

from __future__ import annotations

from pathlib import Path

import typer

from deploy.cli.options import INPUT_SIZE, INTERPOLATION, LABELS, MEAN, NUM_CLASSES, RESIZE_SIZE, STD
from deploy.cli.output import print_json, stdout
from deploy.cli.progress import step_progress


def export(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Architecture name (see `deploy list`)."),
    weights: str | None = typer.Option(
        None,
        "--weights",
        "-w",
        help="torchvision weights name (DEFAULT, IMAGENET1K_V1, …), a checkpoint PATH (a state_dict, e.g. "
        "your fine-tune), or 'random'. Default: the model's pretrained weights, or random where none exist.",
    ),
    num_classes: int | None = NUM_CLASSES,
    labels: Path | None = LABELS,
    input_size: int | None = INPUT_SIZE,
    resize_size: int | None = RESIZE_SIZE,
    mean: str | None = MEAN,
    std: str | None = STD,
    interpolation: str | None = INTERPOLATION,
    out_dir: Path = typer.Option(Path("export"), "--out-dir", "-o", help="Folder for the .onnx and .json."),
    opset: int = typer.Option(20, "--opset", help="ONNX opset (18-23)."),
    max_batch: int | None = typer.Option(
        None, "--max-batch", help="Largest batch of the dynamic batch dimension (default 32, at most 4096)."
    ),
    static: bool = typer.Option(False, "--static", help="Fixed input shape instead of a dynamic batch."),
    batch: int | None = typer.Option(None, "--batch", help="Batch size of a --static export (default 1)."),
    simplifier: str = typer.Option("onnxsim", "--simplifier", help="onnxsim, onnxslim or none."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Check eager vs ONNX Runtime parity."),
    atol: float | None = typer.Option(None, "--atol", help="Absolute tolerance override (FP32 default 1e-3)."),
    rtol: float | None = typer.Option(None, "--rtol", help="Relative tolerance override (FP32 default 1e-3)."),
    samples: int | None = typer.Option(
        None, "--samples", help="Sample images for the parity and simplification checks (default 8)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the files, sidecar and parity as JSON on stdout."),
) -> None:
    """Export a zoo model (or your fine-tune of one) to ONNX with a sidecar, simplify it and prove it matches eager
    PyTorch."""
    from deploy.cli.options import customization, refuse_unused
    from deploy.exporter import ExportConfig, export_model
    from deploy.harness.compare import DEFAULT_TOLERANCES, with_overrides

    if not verify:
        refuse_unused("to the parity check, which --no-verify skips", "drop --no-verify", atol=atol, rtol=rtol)
        if simplifier == "none":  # nor is there a simplification check to feed
            refuse_unused("to the parity and simplification checks", "drop --no-verify", samples=samples)
    config = ExportConfig(
        model=model,
        weights=weights,
        out_dir=out_dir,
        opset=opset,
        max_batch=max_batch,
        static=static,
        static_batch=batch,
        simplifier=simplifier,  # type: ignore[arg-type]  # ExportConfig checks it against SIMPLIFIERS
        verify=verify,
        tolerance=with_overrides(DEFAULT_TOLERANCES["fp32"], atol=atol, rtol=rtol),
        parity_samples=8 if samples is None else samples,
        custom=customization(
            num_classes=num_classes,
            labels=labels,
            input_size=input_size,
            resize_size=resize_size,
            mean=mean,
            std=std,
            interpolation=interpolation,
        ),
    )
    with step_progress(ctx) as progress:
        result = export_model(config, progress=progress)
    if as_json:
        print_json(result, passed=None if result.parity is None else result.parity.passed)
        return
    parity = "not verified (--no-verify)" if result.parity is None else f"parity passed: {result.parity.summary()}"
    stdout.print(f"{result.onnx_path}", highlight=False)
    stdout.print(f"{result.sidecar_path}", highlight=False)
    stdout.print(f"[green]✓[/green] {result.sidecar.model}: {parity}", highlight=False)
