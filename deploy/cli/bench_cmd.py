"""`deploy bench ARTIFACT...`: the reference (eager PyTorch, or an imported model's FP32 ONNX) vs each artifact,
interleaved in one run, speed-up with its spread."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from deploy.cli.output import print_json, stdout
from deploy.cli.progress import step_progress
from deploy.cli.tables import Column, print_table
from deploy.codec import to_data


def bench(
    ctx: typer.Context,
    artifacts: list[Path] = typer.Argument(None, help="Artifacts of one model (.onnx, .plan)."),
    model: str | None = typer.Option(
        None, "--model", help="Time every artifact of this model found in --export-dir and --engines-dir."
    ),
    export_dir: Path | None = typer.Option(
        None, "--export-dir", help="Where --model looks for its export (default: export/)."
    ),
    engines_dir: Path | None = typer.Option(
        None, "--engines-dir", help="Where --model looks for builds (default: engines/)."
    ),
    batch: str | None = typer.Option(
        None, "--batch", help="Comma-separated batch sizes, each within every artifact's batch range (default: 1,8)."
    ),
    threads: int | None = typer.Option(
        None, "--threads", help="Threads for torch and ONNX Runtime, up to the CPUs this process may use (the default)."
    ),
    duration: float = typer.Option(5.0, "--duration", help="Seconds of interleaved timing per batch size (max 3600)."),
    images: Path | None = typer.Option(None, "--images", help="Images for the input pool (default: demo set)."),
    no_eager: bool = typer.Option(
        False, "--no-eager", help="Skip the reference: eager PyTorch, or an imported model's FP32 ONNX (no speed-up)."
    ),
    overhead: bool = typer.Option(False, "--overhead", help="Also measure the runner's overhead vs a bare session."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
) -> None:
    """Time eager PyTorch (an imported model: its FP32 ONNX) and every artifact interleaved (A B A B …) so machine
    drift cancels."""
    import dataclasses

    from deploy.cli.options import parse_batches, refuse_unused
    from deploy.harness.interleaved import InterleavedConfig, artifacts_of, onnxruntime_overhead
    from deploy.harness.interleaved import bench as run_bench

    if model is None:
        refuse_unused("with --model", "add --model NAME", export_dir=export_dir, engines_dir=engines_dir)
    config = InterleavedConfig(
        artifacts=(),
        batches=None if batch is None else parse_batches(batch),
        duration_s=duration,
        images=images,
        eager=not no_eager,
    )
    if threads is not None:
        config = dataclasses.replace(config, threads=threads)
    if model is not None:
        found = artifacts_of(model, export_dir or Path("export"), engines_dir or Path("engines"))
        artifacts = [*(artifacts or []), *found]
    artifacts = list(dict.fromkeys(artifacts or []))
    if overhead and artifacts and not any(p.suffix == ".onnx" for p in artifacts):
        refuse_unused("to .onnx artifacts (ONNX Runtime)", "add an .onnx artifact", overhead=True)
    config = dataclasses.replace(config, artifacts=tuple(artifacts))
    with step_progress(ctx) as progress:
        result = run_bench(config, progress=progress)
    overheads = []
    if overhead:
        overheads = [onnxruntime_overhead(p, threads=config.threads) for p in artifacts if p.suffix == ".onnx"]
    if as_json:
        print_json(to_data(result) | {"overhead": overheads})
        return
    for item in result.batches:
        title = f"{result.model} batch {item.batch} — {result.threads} threads, {result.cpu}"
        # p99 of fewer than TAIL_MIN_ITERATIONS samples is the maximum under another name: then the maximum it is.
        tail = all(stats.tail_backed for stats in item.latency.values())
        columns = [Column("runner", key=True)]
        columns += [Column(f"{h} ms", justify="right") for h in ("p50", "p90", "p99" if tail else "max", "mean")]
        columns += [Column("images/s", justify="right"), Column(f"speed-up vs {result.reference or 'eager'} (p10–p90)")]
        rows = []
        for name, stats in item.latency.items():
            ratio = item.speedup.get(name)
            spread = (
                "" if ratio is None else f"{ratio.median:.2f}× ({ratio.p10:.2f}–{ratio.p90:.2f}, {ratio.rounds} rounds)"
            )
            rows.append((escape(name), f"{stats.p50_ms:.3f}", f"{stats.p90_ms:.3f}",
                         f"{stats.p99_ms if tail else stats.max_ms:.3f}", f"{stats.mean_ms:.3f}",
                         f"{stats.throughput:.0f}", spread))  # fmt: skip
        print_table(stdout, title, columns, rows)
    for cost in overheads:
        stdout.print(
            f"runner overhead at batch {cost.batch}: {cost.percent:+.2f}% vs a bare session.run", highlight=False
        )
