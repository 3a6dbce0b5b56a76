"""`deploy bench`: interleaved timing of eager and artifacts; structure and statistics, never speed, are asserted."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from deploy.backends.base import Runner, TensorMeta
from deploy.cli import app
from deploy.errors import BadInput
from deploy.exporter import ExportResult
from deploy.harness.interleaved import InterleavedConfig, batches_for, bench, onnxruntime_overhead, run_interleaved
from deploy.sidecar import BatchRange


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
        assert item.gpu == {}  # no plan, no CUDA stages


class CountingRunner(Runner):
    """Test double for control flow only: records which feed each call got, computes nothing."""

    name = "counting"

    def __init__(self, log: list[tuple[str, int]], label: str) -> None:
        super().__init__()
        self.log, self.label = log, label

    def activate(self) -> None: ...
    def deactivate(self) -> None: ...

    @property
    def inputs(self) -> tuple[TensorMeta, ...]:
        return (TensorMeta("input", (1,), "float32"),)

    @property
    def outputs(self) -> tuple[TensorMeta, ...]:
        return ()

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.log.append((self.label, int(feed["input"][0])))
        return {}


def test_rounds_alternate_runners_and_settle_iterations_are_not_timed() -> None:
    log: list[tuple[str, int]] = []
    runners = {"a": CountingRunner(log, "a"), "b": CountingRunner(log, "b")}
    feeds = [{"input": np.array([i])} for i in range(7)]
    samples, rounds = run_interleaved(runners, feeds, duration_s=0.0, warmup_s=0.0, per_round=3, min_rounds=4, settle=2)
    assert {name: len(values) for name, values in samples.items()} == {"a": 12, "b": 12}  # 4 rounds x 3 timed
    assert {name: len(values) for name, values in rounds.items()} == {"a": 4, "b": 4}
    timed_phase = [label for label, _ in log[4:]]  # after two warm-up calls per runner
    assert timed_phase == (["a"] * 5 + ["b"] * 5) * 4  # A B A B …, each turn 2 settle + 3 timed
    assert {feed for _, feed in log} == set(range(7))  # the whole pool rotates through every runner


def test_batches_beyond_the_export_range_are_refused(lenet5_export: ExportResult) -> None:
    config = InterleavedConfig(artifacts=(lenet5_export.onnx_path,), batches=(64,), duration_s=0.1, warmup_s=0.0)
    with pytest.raises(BadInput, match="dynamic batch 1-32") as refused:
        bench(config)
    assert refused.value.hint is not None and "--max-batch 64" in refused.value.hint


def test_default_batches_fit_what_every_artifact_takes(lenet5_export: ExportResult) -> None:
    static = dataclasses.replace(lenet5_export.sidecar, batch=BatchRange(dynamic=False, min=4, max=4))
    dynamic = {Path("a.onnx"): lenet5_export.sidecar}
    assert batches_for(dynamic, None) == (1, 8)
    assert batches_for({Path("b.onnx"): static}, None) == (4,)  # a static export: its own batch
    with pytest.raises(BadInput, match="no batch size fits"):
        batches_for({**dynamic, Path("b.onnx"): dataclasses.replace(static, batch=BatchRange(False, 64, 64))}, None)


def test_runner_overhead_is_measured_against_a_bare_session(lenet5_export: ExportResult) -> None:
    overhead = onnxruntime_overhead(lenet5_export.onnx_path, duration_s=0.3)
    assert overhead.runner_p50_ms > 0 and overhead.bare_p50_ms > 0
    assert np.isfinite(overhead.percent)


def test_bench_cli_json_and_bad_input(cli: CliRunner, lenet5_export: ExportResult, tmp_path: Path) -> None:
    args = ["bench", str(lenet5_export.onnx_path), "--batch", "1", "--duration", "0.2", "--threads", "1", "--json"]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["command"] == "bench" and answer["passed"] is None
    rows = {row["runner"]: row for row in answer["payload"]["rows"]}
    assert set(rows) == {"eager", "lenet5.onnx"} and rows["lenet5.onnx"]["artifact"] == str(lenet5_export.onnx_path)
    timed = rows["lenet5.onnx"]
    assert timed["speedup"]["rounds"] >= 5 and rows["eager"]["speedup"] is None
    assert timed["images_per_s"] == pytest.approx(1e3 / timed["p50_ms"], rel=1e-3)
    assert (timed["p99_ms"] is None) == (timed["iterations"] < 100)  # a p99 of fewer samples is the maximum
    for bad_batch in ("one", "0,8", ""):
        bad = cli.invoke(app, ["bench", str(lenet5_export.onnx_path), "--batch", bad_batch])
        assert bad.exit_code == BadInput.exit_code and "list of positive integers" in bad.output


def test_bench_model_option_finds_the_models_artifacts(
    cli: CliRunner, lenet5_export: ExportResult, tmp_path: Path
) -> None:
    export_dir = lenet5_export.onnx_path.parent
    args = ["bench", "--model", "lenet5", "--export-dir", str(export_dir), "--engines-dir", str(tmp_path)]
    result = cli.invoke(app, [*args, "--batch", "1", "--duration", "0.1", "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert {row["runner"] for row in json.loads(result.stdout)["payload"]["rows"]} == {"eager", "lenet5.onnx"}
    missing = cli.invoke(app, ["bench", "--model", "resnet18", "--export-dir", str(tmp_path)])
    assert missing.exit_code == BadInput.exit_code and "deploy export resnet18" in missing.output
