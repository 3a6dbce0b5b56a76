"""`deploy build [MODEL|ONNX ...]`: typed ONNX per precision, ready for TensorRT, runnable by ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from deploy.cli.output import print_json, progress_printer, stderr, stdout


def build(
    ctx: typer.Context,
    targets: list[str] = typer.Argument(None, help="Model names or exported .onnx files (default: all in export/)."),
    fp32: bool = typer.Option(False, "--fp32", help="FP32 typed ONNX (a verified copy of the export)."),
    fp16: bool = typer.Option(False, "--fp16", help="FP16 by ModelOpt AutoCast."),
    int8: bool = typer.Option(False, "--int8", help="INT8 Q/DQ by ModelOpt PTQ, calibrated on CPU."),
    all_precisions: bool = typer.Option(False, "--all", help="FP32, FP16 and INT8 (the default with no flag)."),
    method: str = typer.Option("entropy", "--calib-method", help="INT8 calibration: entropy or max."),
    high_precision: str = typer.Option("fp32", "--high-precision", help="Layers left unquantized: fp32 or fp16."),
    calib_dir: Path | None = typer.Option(None, "--calib-dir", help="Calibration images (default: calibration/)."),
    calib_count: int = typer.Option(500, "--calib-count", help="How many calibration images."),
    recalibrate: bool = typer.Option(False, "--recalibrate", help="Ignore the calibration cache."),
    weights: str | None = typer.Option(
        None, "--weights", "-w", help="Weights for a model exported on demand (as for `deploy export`)."
    ),
    export_dir: Path = typer.Option(Path("export"), "--export-dir", help="Where exported ONNX models are."),
    out_dir: Path = typer.Option(Path("engines"), "--out-dir", "-o", help="Where typed ONNX files go."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
) -> None:
    """Bake FP32/FP16/INT8 precision into ONNX (TensorRT builds it strongly typed; ONNX Runtime runs it anywhere)."""
    from deploy.errors import BadInput
    from deploy.precision.build import PRECISIONS, BuildConfig
    from deploy.precision.build import build as run_build
    from deploy.precision.calibration import DEFAULT_DIR, CalibrationConfig

    if method not in ("entropy", "max"):
        raise BadInput(f"--calib-method {method!r} is unknown", hint="choose entropy or max")
    if high_precision not in ("fp32", "fp16"):
        raise BadInput(f"--high-precision {high_precision!r} is unknown", hint="choose fp32 or fp16")
    chosen = [p for p, flag in zip(PRECISIONS, (fp32, fp16, int8), strict=True) if flag]
    if all_precisions and chosen:
        raise BadInput("--all conflicts with --fp32/--fp16/--int8", hint="pass --all alone, or pick precisions")
    if (recalibrate or calib_dir is not None) and chosen and "int8" not in chosen and "fp16" not in chosen:
        raise BadInput("calibration options need --int8 or --fp16", hint="add --int8, or drop the calibration options")
    config = BuildConfig(
        targets=tuple(targets or ()),
        precisions=tuple(chosen) or PRECISIONS,
        export_dir=export_dir,
        engines_dir=out_dir,
        calibration=CalibrationConfig(
            directory=calib_dir or DEFAULT_DIR, count=calib_count, explicit=calib_dir is not None
        ),
        method=method,  # type: ignore[arg-type]
        high_precision=high_precision,  # type: ignore[arg-type]
        recalibrate=recalibrate,
        weights=weights,
    )
    result = run_build(config, progress=progress_printer(ctx))
    for warning in result.warnings:
        stderr.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if as_json:
        print_json(result)
        return
    table = Table(title="deploy build")
    for column in ("model", "precision", "artifact", "size MB", "calibration", "seconds"):
        table.add_column(column)
    for artifact in result.artifacts:
        calibration = ""
        if artifact.reused_calibration is not None:
            calibration = "cache reused" if artifact.reused_calibration else "calibrated"
        table.add_row(
            artifact.model,
            artifact.precision,
            str(artifact.path),
            f"{artifact.sidecar.size_bytes / 1e6:.1f}",
            calibration,
            f"{artifact.seconds:.1f}",
        )
    stdout.print(table)
    stderr.print(result.tensorrt, highlight=False)
