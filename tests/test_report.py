"""Reports from a small real pipeline run (lenet5): JSON round-trip, Markdown, PNG, `deploy report [--all]`."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from deploy.backends.timing import LatencyStats, latency_stats
from deploy.cli import app
from deploy.errors import ArtifactError, BadInput
from deploy.exporter import ExportResult
from deploy.harness.interleaved import InterleavedConfig
from deploy.harness.peers import CPU_PEERS
from deploy.pipeline import PipelineConfig, PipelineResult, run_pipeline
from deploy.precision.calibration import CalibrationConfig
from deploy.report.files import write_report
from deploy.report.index import best_row
from deploy.report.markdown import report_markdown
from deploy.report.model import Report, ReportRow


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> PipelineResult:
    root = tmp_path_factory.mktemp("pipeline")
    config = PipelineConfig(
        model="lenet5",
        export_dir=root / "export",
        engines_dir=root / "engines",
        reports_dir=root / "reports",
        calibration=CalibrationConfig(directory=root / "calibration"),
        methods=("entropy",),
        count=100,
        bench=InterleavedConfig(artifacts=(), batches=(1, 4), threads=1, duration_s=0.3, warmup_s=0.05),
        peers=tuple(p for p in CPU_PEERS if p.backend == "openvino"),  # OpenVINO default, NNCF; torch.compile: slow
    )
    return run_pipeline(config)


def test_report_json_round_trips(pipeline_run: PipelineResult) -> None:
    report = pipeline_run.report
    assert Report.from_json(report.to_json()) == report
    assert Report.read(pipeline_run.files.json) == report
    raw = json.loads(pipeline_run.files.json.read_text())
    assert raw["schema"] == "deploy.report/1" and raw["passed"] is True
    fp32 = next(row for row in raw["rows"] if row["name"] == "fp32")
    assert fp32["latency"]["1"]["throughput"] == pytest.approx(1000 / fp32["latency"]["1"]["p50_ms"])


def test_report_rows_hold_parity_timing_and_provenance(pipeline_run: PipelineResult) -> None:
    report = pipeline_run.report
    ours = ["fp32", "fp32 openvino", "fp16", "fp16 openvino", "int8", "int8-cpu", "int8-cpu openvino"]
    names = ["eager", *ours, "openvino-default", "nncf-int8"]
    assert [row.name for row in report.rows] == names
    eager = report.rows[0]
    assert eager.passed is None and eager.accuracy is not None and set(eager.latency) == {1, 4}
    for row in report.rows[1:]:
        assert row.passed, row.name  # peers included: OpenVINO runs the FP32 ONNX, NNCF quantizes it
        assert abs((row.accuracy or 0) - eager.accuracy) <= 0.02  # trained LeNet-5 keeps its accuracy
        assert set(row.latency) == set(row.speedup) == {1, 4}
        assert (row.size_bytes is None) == row.peer and (row.build_seconds is None) == row.peer
        assert all(r.p10 <= r.median <= r.p90 for r in row.speedup.values())
    assert [row.peer for row in report.rows] == [False] * 8 + [True] * 2
    assert [row.label.name if row.label else None for row in report.rows] == [None, *ours, None, None]
    assert report.rows[-1].artifact is not None and report.rows[-1].artifact.endswith("lenet5.onnx")
    assert {row.backend for row in report.rows if row.name.endswith("openvino")} == {"openvino"}
    assert report.bench is not None and report.bench.settle >= 1 and report.environment["threads"] == 1
    assert report.overhead and report.overhead[0].batch == 1


def test_markdown_and_png_come_from_the_run(pipeline_run: PipelineResult) -> None:
    markdown = pipeline_run.files.markdown.read_text()
    fp32 = next(row for row in pipeline_run.report.rows if row.name == "fp32")
    stats = fp32.latency[1]
    assert "| fp32 | onnxruntime |" in markdown
    tail = stats.p99_ms if pipeline_run.report.tail_backed else stats.max_ms  # a "p99" of few iterations is the max
    assert f"{stats.p50_ms:.2f} / {tail:.2f}" in markdown
    assert f"{fp32.speedup[1].median:.2f}×" in markdown
    assert "![latency, speed-up and accuracy](report.png)" in markdown
    assert "## Environment" in markdown and "## Harness overhead" in markdown
    assert pipeline_run.files.png is not None
    with Image.open(pipeline_run.files.png) as image:
        assert image.format == "PNG" and image.width > 600 and image.height > 300
    folder = pipeline_run.files.json.parent
    assert sorted(p.name for p in folder.iterdir()) == ["report.json", "report.md", "report.png"]


def test_report_command_rebuilds_markdown_and_png_without_measuring(
    pipeline_run: PipelineResult, cli: CliRunner, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    shutil.copytree(pipeline_run.files.json.parent, reports / "lenet5")
    json_before = (reports / "lenet5" / "report.json").read_bytes()
    (reports / "lenet5" / "report.md").unlink()
    (reports / "lenet5" / "report.png").unlink()
    result = cli.invoke(app, ["report", "lenet5", "--reports-dir", str(reports)])
    assert result.exit_code == 0, result.output
    assert (reports / "lenet5" / "report.md").read_text() == pipeline_run.files.markdown.read_text()
    assert (reports / "lenet5" / "report.png").stat().st_size > 0
    assert (reports / "lenet5" / "report.json").read_bytes() == json_before  # nothing re-measured


def test_report_all_indexes_every_model(pipeline_run: PipelineResult, cli: CliRunner, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    shutil.copytree(pipeline_run.files.json.parent, reports / "lenet5")
    failing = dataclasses.replace(
        pipeline_run.report,
        model="lenet5-broken",
        rows=tuple(dataclasses.replace(r, passed=False) if r.name == "int8" else r for r in pipeline_run.report.rows),
    )
    write_report(failing, reports / "lenet5-broken", chart=False)
    result = cli.invoke(app, ["report", "--all", "--reports-dir", str(reports), "--no-chart"])
    assert result.exit_code == 0, result.output
    index = (reports / "index.md").read_text()
    best = best_row(pipeline_run.report)
    assert best is not None
    assert "| lenet5 | digits |" in index and f"| {best.name} | {best.latency[1].p50_ms:.2f} |" in index
    assert "[lenet5/report.md](lenet5/report.md)" in index
    assert "| lenet5-broken |" in index and "**no**" in index


def _stats(p50: float) -> dict[int, LatencyStats]:
    return {1: latency_stats("x", 1, 1, [p50] * 3)}


def test_best_row_is_the_fastest_artifact_that_passed() -> None:
    rows = (
        ReportRow("eager", None, "fp32", "torch", latency=_stats(9.0)),
        ReportRow("int8", "a", "int8", "onnxruntime", passed=False, latency=_stats(1.0)),
        ReportRow("openvino-int8", None, "int8", "openvino", latency=_stats(0.5), peer=True),
        ReportRow("fp16", "b", "fp16", "onnxruntime", passed=True, latency=_stats(3.0)),
        ReportRow("fp32", "c", "fp32", "onnxruntime", passed=True, latency=_stats(2.0)),
    )
    report = Report("m", {}, "now", "imgs", False, {}, rows)
    best = best_row(report)
    assert best is not None and best.name == "fp32"


def test_peers_replace_earlier_peers_and_render_as_timed_only(pipeline_run: PipelineResult) -> None:
    peer = ReportRow("openvino-fp32", None, "fp32", "openvino", latency=_stats(1.0))
    once = pipeline_run.report.with_peers((peer,))
    twice = once.with_peers((dataclasses.replace(peer, name="torch.compile", backend="torch.compile"),))
    assert [r.name for r in twice.rows if r.peer] == ["torch.compile"]
    assert len(twice.rows) == len([r for r in pipeline_run.report.rows if not r.peer]) + 1
    assert "| torch.compile (peer) | torch.compile |" in report_markdown(twice) and "timed only" in report_markdown(
        twice
    )
    assert Report.from_json(twice.to_json()) == twice


def test_unreadable_reports_are_refused_before_anything_is_written(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "good").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "report.json").write_text('{"schema": "something/else"}')
    with pytest.raises(ArtifactError, match="not a deploy report"):
        Report.read(tmp_path / "bad" / "report.json")
    result = cli.invoke(app, ["report", "--all", "--reports-dir", str(tmp_path)])
    assert result.exit_code == ArtifactError.exit_code and "bad/report.json" in result.output
    assert not (tmp_path / "index.md").exists() and not (tmp_path / "bad" / "report.md").exists()
    missing = cli.invoke(app, ["report", "vgg16", "--reports-dir", str(tmp_path)])
    assert missing.exit_code == ArtifactError.exit_code and "deploy pipeline" in missing.output
    neither = cli.invoke(app, ["report", "--reports-dir", str(tmp_path)])
    assert neither.exit_code == BadInput.exit_code and "--all" in neither.output


def test_a_failing_peer_is_shown_but_does_not_fail_the_report(pipeline_run: PipelineResult) -> None:
    report = pipeline_run.report
    broken = dataclasses.replace(next(r for r in report.rows if r.peer), passed=False)
    with_broken = report.with_peers((broken,))
    assert with_broken.passed and "| fail |" in report_markdown(with_broken)
    ours_failing = dataclasses.replace(report, rows=(dataclasses.replace(report.rows[1], passed=False),))
    assert not ours_failing.passed


@pytest.mark.slow
def test_torch_compile_peer_matches_eager(lenet5_export: ExportResult) -> None:
    """torch.compile (inductor) needs a C compiler and compiles for tens of seconds on 2 cores: slow suite."""
    from deploy.harness.heldout import held_out_set
    from deploy.harness.verify import check_runner, eager_outputs, tolerance_for

    peer = next(p for p in CPU_PEERS if p.backend == "torch.compile")
    sidecar = lenet5_export.sidecar
    held = held_out_set(sidecar, images=None, count=64)
    reference = eager_outputs(sidecar, held)
    with peer.runner(sidecar, lenet5_export.onnx_path, threads=1) as runner:
        verdict = check_runner(
            runner, "lenet5", peer.name, tolerance_for("fp32", "digits", {}), sidecar, held, reference
        )
    assert verdict.passed and verdict.parity.outputs[0].top1_agreement == 1.0


def test_benchmark_summary_states_the_targets_from_the_report(pipeline_run: PipelineResult) -> None:
    from benchmarks.cpu_peers import summary

    report = pipeline_run.report
    text = summary(report)
    fp32 = next(r for r in report.rows if r.name == "fp32")
    cpu_int8 = next(r for r in report.rows if r.name == "int8-cpu")
    assert f"ONNX FP32 vs eager: {fp32.speedup[1].median:.2f}×" in text
    assert f"CPU INT8 vs ONNX FP32: {fp32.latency[1].p50_ms / cpu_int8.latency[1].p50_ms:.2f}×" in text
    assert "best ours (" in text and "best peer (" in text and "best peer (none)" not in text


def _shared_report(*, iterations: int) -> Report:
    """lenet5 as the issue saw it: random weights, a failing int8-cpu, a speed-up whisker reaching 1,173×."""
    from deploy.backends.timing import Ratio

    def timed(p50: float) -> dict[int, LatencyStats]:
        return {1: latency_stats("r", 1, 2, [p50 * (1 + i / iterations) for i in range(iterations)])}

    rows = (
        ReportRow("eager", None, "fp32", "torch", accuracy=0.9778, latency=timed(0.42)),
        ReportRow("fp32", "a", "fp32", "onnxruntime", passed=True, accuracy=0.9778, latency=timed(0.05),
                  speedup={1: Ratio(9.18, 7.86, 1173.15, 25)}),
        ReportRow("int8", "b", "int8", "onnxruntime", passed=True, accuracy=0.9760, latency=timed(0.06),
                  speedup={1: Ratio(7.0, 6.1, 7.9, 25)}),
        ReportRow("int8-cpu", "c", "int8", "onnxruntime", passed=False, accuracy=0.9121, latency=timed(0.04),
                  speedup={1: Ratio(10.5, 9.8, 11.0, 25)}),
    )  # fmt: skip
    env = {"cpu": "AMD EPYC", "isa": "avx2", "threads": 2}
    return Report("lenet5", {"name": "random", "kind": "random"}, "now", "digits", True, env, rows)


def test_markdown_leads_with_the_verdict_and_states_outliers_and_untrained_weights() -> None:
    text = report_markdown(_shared_report(iterations=25), chart=None)
    assert "**Verdict: ❌ FAILED: int8-cpu.**" in text and "untrained" in text
    assert "9.18× (7.86–1173.15) †" in text and "7.00× (6.10–7.90) |" in text  # only the wide spread is marked
    assert "† Wide spread: fp32 batch 1: p10 7.86× and p90 1,173.15× around a median of 9.18×" in text
    assert "b1 p50 / max ms" in text and "p99" not in text  # 25 iterations: the maximum, called that
    backed = report_markdown(_shared_report(iterations=100), chart=None)
    assert "b1 p50 / p99 ms" in backed


def test_chart_of_a_failing_run_marks_the_failure_clips_outliers_and_zooms_accuracy(tmp_path: Path) -> None:
    import matplotlib

    from deploy.report.chart import FAIL_COLOR, FAIL_HATCH, chart_title, render_chart

    matplotlib.use("Agg")
    from matplotlib import pyplot

    report = _shared_report(iterations=25)
    assert chart_title(report).startswith("lenet5 — random weights (untrained) — FAILED: int8-cpu")
    captured: list[object] = []
    original = pyplot.Figure.savefig

    def keep(figure: object, *args: object, **kwargs: object) -> None:
        captured.append(figure)
        original(figure, *args, **kwargs)  # type: ignore[arg-type]

    pyplot.Figure.savefig = keep  # type: ignore[method-assign]
    try:
        path = render_chart(report, tmp_path / "chart.png")
    finally:
        pyplot.Figure.savefig = original  # type: ignore[method-assign]
    assert path.read_bytes().startswith(b"\x89PNG")
    latency, speedup, quality = captured[0].axes  # type: ignore[attr-defined]
    fail_rgba = matplotlib.colors.to_rgba(FAIL_COLOR)
    for axis in (latency, speedup, quality):
        failing = [bar for bar in axis.patches if bar.get_facecolor() == fail_rgba]
        assert len(failing) == 1 and failing[0].get_hatch() == FAIL_HATCH
        assert [t.get_text() for t in axis.get_xticklabels()][-1] == "✗ int8-cpu FAIL"
    assert speedup.get_yscale() == "log" and speedup.get_ylim()[1] < 100  # 1,173× is written, not drawn
    assert any("1,173×" in text.get_text() for text in speedup.texts)
    low, high = quality.get_ylim()
    assert 85 < low < 91.21 and 97.78 < high <= 100  # zoomed to the data, not 0-100
    assert "max" in latency.get_title()
