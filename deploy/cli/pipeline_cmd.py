"""`deploy pipeline MODEL`: the main job in one command, ending in reports/<model>/report.md + report.json."""

from __future__ import annotations

from pathlib import Path

import typer

from deploy.cli.output import progress_printer, stderr, stdout


def pipeline(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Architecture name (see `deploy list`)."),
    weights: str | None = typer.Option(None, "--weights", "-w", help="As for `deploy export`."),
    calib_dir: Path | None = typer.Option(None, "--calib-dir", help="Calibration images (default: calibration/)."),
    calib_count: int = typer.Option(500, "--calib-count", help="How many calibration images."),
    images: Path | None = typer.Option(None, "--images", help="Held-out images for verification and timing."),
    count: int | None = typer.Option(None, "--count", help="Use at most N held-out images for verification."),
    runs: int = typer.Option(50, "--runs", help="Timed runs per backend and batch (after warm-up)."),
    threads: int | None = typer.Option(None, "--threads", help="Threads for torch and ONNX Runtime (default: all)."),
    batch: int = typer.Option(8, "--batch", help="The larger batch timed besides batch 1."),
    reports_dir: Path = typer.Option(Path("reports"), "--reports-dir", help="Where the report goes."),
    as_json: bool = typer.Option(False, "--json", help="Print the report JSON on stdout."),
) -> None:
    """Export, build FP32/FP16/INT8 (entropy and max), verify against eager, time everything, write a report."""
    import dataclasses

    from deploy.harness.bench import BenchConfig
    from deploy.pipeline import PipelineConfig, run_pipeline
    from deploy.precision.calibration import DEFAULT_DIR, CalibrationConfig

    bench = BenchConfig(iterations=runs)
    if threads is not None:
        bench = dataclasses.replace(bench, threads=threads)
    config = PipelineConfig(
        model=model,
        weights=weights,
        calibration=CalibrationConfig(
            directory=calib_dir or DEFAULT_DIR, count=calib_count, explicit=calib_dir is not None
        ),
        images=images,
        count=count,
        batches=(1, batch) if batch > 1 else (1,),
        bench=bench,
        reports_dir=reports_dir,
    )
    result = run_pipeline(config, progress=progress_printer(ctx))
    for warning in result.report.warnings:
        stderr.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if as_json:
        typer.echo(result.report.to_json())
        return
    stdout.print(result.report.to_markdown(), highlight=False, markup=False)
    stdout.print(str(result.report_markdown), highlight=False)
