"""What identifies a row is never cut: off a terminal, tables are plain aligned text with every cell whole; on a
terminal the key columns keep their full width. Progress: one summary line per step, with seconds (and MB)."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from deploy.cli import app
from deploy.cli.progress import StepReporter, summary_line
from deploy.cli.tables import Column, plain_table, print_table
from deploy.exporter import ExportResult
from deploy.progress import Step

LONG = "a-deliberately-long-folder-name-that-no-eighty-column-table-would-fit"


def _long_copy(export: ExportResult, folder: Path) -> Path:
    """The export under a long folder and file name (its sidecar beside it, as the hash check wants)."""
    folder.mkdir(parents=True)
    onnx = folder / "lenet5.fp32.calibrated-on-our-own-long-named-images.onnx"
    shutil.copy(export.onnx_path, onnx)
    shutil.copy(export.sidecar_path, onnx.with_suffix(".json"))
    return onnx


def test_piped_verify_and_bench_show_every_artifact_name_whole(
    cli: CliRunner, lenet5_export: ExportResult, tmp_path: Path
) -> None:
    onnx = _long_copy(lenet5_export, tmp_path / LONG)
    verified = cli.invoke(app, ["verify", str(onnx), str(lenet5_export.onnx_path), "--count", "16"])
    assert verified.exit_code == 0, verified.output
    assert str(onnx) in verified.stdout and str(lenet5_export.onnx_path) in verified.stdout
    assert "…" not in verified.stdout and "│" not in verified.stdout  # plain text, nothing cut
    timed = cli.invoke(app, ["bench", str(onnx), "--batch", "1", "--duration", "0.1", "--threads", "1"])
    assert timed.exit_code == 0, timed.output
    lines = timed.stdout.splitlines()
    assert any(line.startswith(onnx.name + " ") for line in lines) and "…" not in timed.stdout


def test_piped_build_shows_the_full_file_of_each_artifact(
    cli: CliRunner, lenet5_export: ExportResult, tmp_path: Path
) -> None:
    out = tmp_path / LONG / "engines"
    args = ["build", str(lenet5_export.onnx_path), "--fp32", "-t", "cpu", "--count", "16", "-o", str(out)]
    built = cli.invoke(app, args)
    assert built.exit_code == 0, built.output
    assert str(out / "lenet5.fp32.onnx") in built.stdout and "…" not in built.stdout
    assert "✓ [1/1] building lenet5 fp32 — " in built.stderr  # the step's summary line, with its seconds


def test_plain_tables_align_columns_and_strip_markup() -> None:
    columns = [Column("artifact", key=True), Column("ms", justify="right")]
    text = plain_table("t", columns, [("[green]a-long-name.onnx[/green]", "1.5"), ("b.onnx", "12.25")])
    assert text.splitlines() == [
        "t",
        "artifact             ms",
        "----------------  -----",
        "a-long-name.onnx    1.5",
        "b.onnx            12.25",
    ]


def test_on_a_narrow_terminal_the_key_column_keeps_its_full_width() -> None:
    console = Console(width=60, force_terminal=True, record=True, color_system=None)
    name = "engines/resnet18.int8-cpu-entropy-calibrated.onnx"
    print_table(console, "", [Column("artifact", key=True), Column("notes")], [(name, "word " * 20)])
    assert name in console.export_text()


def test_step_summaries_give_seconds_and_the_size_of_the_file_written(tmp_path: Path) -> None:
    written = tmp_path / "model.onnx"
    written.write_bytes(b"x" * 2_500_000)
    line = summary_line(Step("wrote model.onnx", path=written, number=2, total=3), 1.234)
    assert "[2/3] wrote model.onnx — 1.2 s, 2.5 MB" in Console().render_str(line).plain
    console = Console(record=True, width=200, color_system=None)
    reporter = StepReporter(console, live=False)
    reporter("loading")
    reporter("exporting")
    reporter.close(ok=False)
    shown = console.export_text().splitlines()
    assert [line.split(" — ")[0] for line in shown] == ["✓ loading", "✗ exporting"]


def test_quiet_silences_progress_and_json_stays_clean(
    cli: CliRunner, lenet5_export: ExportResult, tmp_path: Path
) -> None:
    args = ["verify", str(lenet5_export.onnx_path), "--count", "8"]
    assert "✓" in cli.invoke(app, args).stderr
    quiet = cli.invoke(app, ["-q", *args, "--json"])
    assert quiet.exit_code == 0 and "✓" not in quiet.stderr and quiet.stdout.lstrip().startswith("{")
