from __future__ import annotations

import numpy as np
import pytest

from deploy.backends.onnxruntime_runner import OrtRunner
from deploy.export import ExportResult
from deploy.harness.bench import BenchConfig, latency_stats, measure


def test_latency_statistics_on_known_samples() -> None:
    stats = latency_stats("x", 4, 2, [float(v) for v in range(1, 101)])  # 1..100 ms
    assert stats.iterations == 100 and stats.min_ms == 1 and stats.max_ms == 100
    assert stats.p50_ms == pytest.approx(50.5) and stats.p90_ms == pytest.approx(90.1)
    assert stats.p99_ms == pytest.approx(99.01) and stats.mean_ms == pytest.approx(50.5)
    assert stats.throughput == pytest.approx(4 / 0.0505)


def test_measure_times_at_least_the_asked_iterations_on_rotating_inputs(lenet5_export: ExportResult) -> None:
    seen: list[float] = []

    class Recording(OrtRunner):
        def infer(self, feed):  # type: ignore[no-untyped-def]
            seen.append(float(feed["input"].sum()))
            return super().infer(feed)

    feeds = [{"input": np.random.default_rng(i).standard_normal((2, 1, 32, 32)).astype(np.float32)} for i in range(3)]
    with Recording(lenet5_export.onnx_path) as runner:
        stats = measure(runner, feeds, BenchConfig(iterations=12, warmup_s=0.0, min_duration_s=0.0, threads=1))
    assert stats.iterations == 12 and stats.batch == 2 and stats.min_ms > 0
    assert len(set(seen)) == 3  # every feed in the pool was used, not one cached buffer
