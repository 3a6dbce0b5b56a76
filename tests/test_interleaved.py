"""`deploy bench`: interleaved timing of eager and artifacts; statistics, not speed, are asserted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from deploy.cli import app
from deploy.errors import BadInput
from deploy.export import ExportResult
from deploy.harness.interleaved import InterleavedConfig, bench, onnxruntime_overhead, ratio_of


def test_ratio_is_summarised_per_round() -> None:
    ratio = ratio_of([2.0] * 9 + [4.0], [1.0] * 10)
    assert ratio.median == 2.0 and ratio.rounds == 10
    assert ratio.p10 == 2.0 and ratio.p90 == pytest.approx(2.2)


def test_bench_times_eager_and_each_artifact_in_one_run(lenet5_export: ExportResult) -> None:
    config = InterleavedConfig(
        artifacts=(lenet5_export.onnx_path,), batches=(1, 4), threads=1, duration_s=0.3, warmup_s=0.05
    )
    result = bench(config)
    assert result.model == "lenet5" and result.threads == 1
    assert [b.batch for b in result.batches] == [1, 4]
    for item in result.batches:
        assert set(item.latency) == {"eager", "lenet5.onnx"}
        assert all(stats.batch == item.batch and stats.iterations >= 25 for stats in item.latency.values())
        ratio = item.speedup["lenet5.onnx"]
        assert ratio.rounds >= 5 and ratio.p10 <= ratio.median <= ratio.p90


def test_batches_beyond_the_export_range_are_skipped(lenet5_export: ExportResult) -> None:
    config = InterleavedConfig(artifacts=(lenet5_export.onnx_path,), batches=(64,), duration_s=0.1, warmup_s=0.0)
    assert bench(config).batches == ()


def test_runner_overhead_is_measured_against_a_bare_session(lenet5_export: ExportResult) -> None:
    overhead = onnxruntime_overhead(lenet5_export.onnx_path, duration_s=0.3)
    assert overhead.runner_p50_ms > 0 and overhead.bare_p50_ms > 0
    assert np.isfinite(overhead.percent)


def test_bench_cli_json_and_bad_input(cli: CliRunner, lenet5_export: ExportResult, tmp_path: Path) -> None:
    args = ["bench", str(lenet5_export.onnx_path), "--batch", "1", "--duration", "0.2", "--threads", "1", "--json"]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["result"]
    assert data["batches"][0]["speedup"]["lenet5.onnx"]["rounds"] >= 5
    bad = cli.invoke(app, ["bench", str(lenet5_export.onnx_path), "--batch", "one"])
    assert bad.exit_code == BadInput.exit_code and "list of integers" in bad.output
