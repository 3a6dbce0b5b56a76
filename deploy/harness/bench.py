"""Latency of any Runner: warm-up, then timed iterations over a rotating pool of real inputs.

Host wall-clock with perf_counter_ns around `infer` (CPU runners finish inside the call). Eager PyTorch and ONNX
Runtime get the same thread count, which is recorded with the numbers.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from deploy.backends.base import Runner


@dataclass(frozen=True)
class BenchConfig:
    iterations: int = 50
    warmup_s: float = 0.5
    min_duration_s: float = 1.0
    threads: int = max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class LatencyStats:
    runner: str
    batch: int
    iterations: int
    threads: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float

    @property
    def throughput(self) -> float:
        """Images per second at the median latency."""
        return self.batch / (self.p50_ms / 1e3) if self.p50_ms > 0 else float("inf")


def latency_stats(runner: str, batch: int, threads: int, samples_ms: Sequence[float]) -> LatencyStats:
    values = np.asarray(samples_ms, dtype=np.float64)
    return LatencyStats(
        runner=runner,
        batch=batch,
        iterations=len(values),
        threads=threads,
        p50_ms=float(np.percentile(values, 50)),
        p90_ms=float(np.percentile(values, 90)),
        p99_ms=float(np.percentile(values, 99)),
        mean_ms=float(statistics.fmean(values)),
        min_ms=float(values.min()),
        max_ms=float(values.max()),
    )


def batch_of(feeds: Sequence[Mapping[str, np.ndarray]]) -> int:
    if not feeds:
        raise ValueError("no inputs to time")
    return int(next(iter(feeds[0].values())).shape[0])


def rotating_feeds(arrays: np.ndarray, batch: int, name: str, pool: int = 8) -> list[dict[str, np.ndarray]]:
    """`pool` distinct batches of real images, shuffled, images repeated when there are too few: every iteration
    gets fresh input data, never one cached buffer."""
    needed = batch * pool
    tiled = np.concatenate([arrays] * -(-needed // len(arrays)))[:needed]
    order = np.random.default_rng(0).permutation(len(tiled))
    return [{name: np.ascontiguousarray(tiled[order[i * batch : (i + 1) * batch]])} for i in range(pool)]


def warm_up(runner: Runner, feeds: Sequence[Mapping[str, np.ndarray]], warmup_s: float, *, start: int = 0) -> int:
    """Run for `warmup_s` (at least twice) from feed `start`; returns the next feed index, so timing continues
    the rotation."""
    deadline = time.perf_counter() + warmup_s
    index = start
    while time.perf_counter() < deadline or index < start + 2:
        runner.infer(feeds[index % len(feeds)])
        index += 1
    return index


def measure(runner: Runner, feeds: Sequence[Mapping[str, np.ndarray]], config: BenchConfig) -> LatencyStats:
    """Time `runner.infer` over `feeds` (cycled, so each iteration gets fresh input data)."""
    batch = batch_of(feeds)
    index = warm_up(runner, feeds, config.warmup_s)
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < config.iterations or time.perf_counter() - started < config.min_duration_s:
        feed = feeds[index % len(feeds)]
        begin = time.perf_counter_ns()
        runner.infer(feed)
        samples.append((time.perf_counter_ns() - begin) / 1e6)
        index += 1
    return latency_stats(runner.name, batch, config.threads, samples)
