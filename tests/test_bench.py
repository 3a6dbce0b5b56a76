"""Bench statistics on known samples: percentiles, throughput, per-round ratios, overhead, the input pool."""

from __future__ import annotations

import os
from pathlib import Path

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


def test_thread_default_is_capped_by_the_cgroup_cpu_quota(tmp_path: Path) -> None:
    from deploy.environment import cgroup_cpu_quota, usable_cores

    affinity = len(os.sched_getaffinity(0))
    assert usable_cores(cgroup_root=tmp_path) == affinity  # no quota file: the affinity alone
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path) is None and usable_cores(cgroup_root=tmp_path) == affinity
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # `docker --cpus 1.5`
    assert cgroup_cpu_quota(tmp_path) == 1.5 and usable_cores(cgroup_root=tmp_path) == min(affinity, 2)
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a CPU still runs one thread
    assert usable_cores(cgroup_root=tmp_path) == 1


def test_thread_default_reads_a_cgroup_v1_quota(tmp_path: Path) -> None:
    from deploy.environment import cgroup_cpu_quota

    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_quota(tmp_path) == 1.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # unlimited
    assert cgroup_cpu_quota(tmp_path) is None


def test_p99_is_backed_only_by_enough_iterations() -> None:
    assert not latency_stats("x", 1, 1, [1.0] * 25).tail_backed  # the 25 iterations: p99 is the max
    assert latency_stats("x", 1, 1, [1.0] * 100).tail_backed
