"""Bench statistics on known samples: percentiles, throughput, per-round ratios, overhead, the input pool."""

from __future__ import annotations

import numpy as np
import pytest

from deploy.backends.timing import Overhead, latency_stats, ratio_of, rotating_feeds


def test_latency_statistics_on_known_samples() -> None:
    stats = latency_stats("x", 4, 2, [float(v) for v in range(1, 101)])  # 1..100 ms
    assert stats.iterations == 100 and stats.min_ms == 1 and stats.max_ms == 100
    assert stats.p50_ms == pytest.approx(50.5) and stats.p90_ms == pytest.approx(90.1)
    assert stats.p99_ms == pytest.approx(99.01) and stats.mean_ms == pytest.approx(50.5)
    assert stats.throughput == pytest.approx(4 / 0.0505)


def test_ratio_is_the_median_of_per_round_ratios_with_its_spread() -> None:
    ratio = ratio_of([2.0] * 9 + [4.0], [1.0] * 10)
    assert ratio.median == 2.0 and ratio.rounds == 10
    assert ratio.p10 == 2.0 and ratio.p90 == pytest.approx(2.2)
    # A drift that slows both runners in the same rounds cancels out of the per-round ratio.
    drift = np.linspace(1.0, 3.0, 10)
    assert ratio_of(list(4.0 * drift), list(2.0 * drift)).median == pytest.approx(2.0)


def test_overhead_percent_on_known_medians() -> None:
    assert Overhead(batch=1, runner_p50_ms=10.2, bare_p50_ms=10.0).percent == pytest.approx(2.0)
    assert Overhead(batch=1, runner_p50_ms=9.9, bare_p50_ms=10.0).percent == pytest.approx(-1.0)


def test_rotating_pool_holds_distinct_batches_of_the_given_images() -> None:
    images = np.stack([np.full((1, 4, 4), value, dtype=np.float32) for value in range(5)])
    feeds = rotating_feeds(images, batch=2, name="input", pool=8)
    assert len(feeds) == 8 and all(f["input"].shape == (2, 1, 4, 4) for f in feeds)
    used = {float(v) for f in feeds for v in f["input"][:, 0, 0, 0]}
    assert used == {0.0, 1.0, 2.0, 3.0, 4.0}  # every image appears; nothing invented
    assert len({f["input"].tobytes() for f in feeds}) > 1  # not one cached buffer
