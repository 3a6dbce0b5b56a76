"""`deploy pipeline MODEL`: the main job in one command, ending in reports/<model>/report.{md,json,png}."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from deploy.cli.options import (
    ATOL,
    INPUT_SIZE,
    INTERPOLATION,
    LABELS,
    MEAN,
    MIN_COSINE,
    MIN_TOP1,
    NUM_CLASSES,
    RESIZE_SIZE,
    RTOL,
    STD,
)
from deploy.cli.output import print_json, stderr, stdout
from deploy.cli.progress import step_progress

if TYPE_CHECKING:
    from deploy.sidecar import Method


def pipeline(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Architecture name (see `deploy list`)."),
    weights: str | None = typer.Option(None, "--weights", "-w", help="As for `deploy export`."),
    num_classes: int | None = NUM_CLASSES,
    labels: Path | None = LABELS,
    input_size: int | None = INPUT_SIZE,
    resize_size: int | None = RESIZE_SIZE,
    mean: str | None = MEAN,
    std: str | None = STD,
    interpolation: str | None = INTERPOLATION,
    calib_dir: Path | None = typer.Option(None, "--calib-dir", help="Calibration images (default: calibration/)."),
    calib_count: int = typer.Option(500, "--calib-count", help="How many calibration images."),
    images: Path | None = typer.Option(None, "--images", help="Held-out images for verification and timing."),
    count: int | None = typer.Option(None, "--count", help="Use at most N held-out images for verification."),
    batch: str | None = typer.Option(
        None, "--batch", help="Comma-separated batch sizes to time (default: 1,8); the export covers the largest."
    ),
    threads: int | None = typer.Option(
        None, "--threads", help="Threads for torch and ONNX Runtime, up to the CPUs this process may use (the default)."
    ),
    duration: float = typer.Option(3.0, "--duration", help="Seconds of interleaved timing per batch size (max 3600)."),
    cpu_int8: bool = typer.Option(
        True, "--cpu-int8/--no-cpu-int8", help="Also build the CPU INT8 (U8S8) for ONNX Runtime and OpenVINO."
    ),
    cpu_method: str | None = typer.Option(
        None, "--cpu-calib-method", help="Calibration of the CPU INT8: entropy (default), max or percentile."
    ),
    peers: bool = typer.Option(
        False, "--peers", help="Also time OpenVINO (FP32, default, INT8) and torch.compile in the same rounds."
    ),
    atol: float | None = ATOL,
    rtol: float | None = RTOL,
    min_cosine: float | None = MIN_COSINE,
    min_top1: float | None = MIN_TOP1,
    reports_dir: Path = typer.Option(Path("reports"), "--reports-dir", help="Where the report goes."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout (the report under payload)."),
) -> None:
    """Export, build FP32/FP16/INT8 (entropy, max, CPU), verify against eager, time all interleaved, report."""
    import dataclasses

    from deploy.cli.options import check_tolerances, customization, parse_batches, refuse_unused
    from deploy.harness.interleaved import InterleavedConfig
    from deploy.harness.peers import available_peers
    from deploy.pipeline import PipelineConfig, run_pipeline
    from deploy.precision.calibration import DEFAULT_DIR, CalibrationConfig

    if not cpu_int8:
        refuse_unused("to the CPU INT8, which --no-cpu-int8 skips", "drop --no-cpu-int8", cpu_calib_method=cpu_method)
    bench = InterleavedConfig(
        artifacts=(), batches=None if batch is None else parse_batches(batch), duration_s=duration
    )
    if threads is not None:
        bench = dataclasses.replace(bench, threads=threads)
    usable, unavailable = available_peers() if peers else ((), ())
    for reason in unavailable:
        stderr.print(f"[yellow]warning:[/yellow] peer {escape(reason)}", highlight=False)
    config = PipelineConfig(
        model=model,
        peers=usable,
        weights=weights,
        custom=customization(
            num_classes=num_classes,
            labels=labels,
            input_size=input_size,
            resize_size=resize_size,
            mean=mean,
            std=std,
            interpolation=interpolation,
        ),
        calibration=CalibrationConfig(
            directory=calib_dir or DEFAULT_DIR, count=calib_count, explicit=calib_dir is not None
        ),
        images=images,
        count=count,
        cpu_int8=cpu_int8,
        cpu_method=_cpu_method(cpu_method or "entropy"),
        bench=bench,
        reports_dir=reports_dir,
        overrides=check_tolerances(atol=atol, rtol=rtol, min_cosine=min_cosine, min_top1=min_top1),
    )
    with step_progress(ctx) as progress:
        result = run_pipeline(config, progress=progress)
    for warning in result.report.warnings:
        stderr.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    if as_json:
        print_json(result.report.document(), passed=result.report.passed)
        return
    from deploy.report.markdown import report_markdown

    stdout.print(report_markdown(result.report, chart=None), highlight=False, markup=False)
    files = [result.files.markdown, result.files.json, result.files.png]
    stdout.print("\n".join(str(path) for path in files if path is not None), highlight=False)


def _cpu_method(method: str) -> Method:
    from deploy.errors import BadInput

    if method not in ("entropy", "max", "percentile"):
        raise BadInput(f"--cpu-calib-method {method!r} is unknown", hint="choose entropy, max or percentile")
    return method  # type: ignore[return-value]
