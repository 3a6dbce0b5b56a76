"""Latency statistics and the pieces every timer shares: warm-up by time, a rotating pool of real inputs,
speed-up ratios with their spread.

Samples are host wall-clock with perf_counter_ns around `infer` (CPU runners finish inside the call); the
TensorRT timer adds CUDA events. Eager PyTorch and ONNX Runtime get the same thread count, recorded with the numbers.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import numpy as np

from deploy.environment import usable_cores

# A 99th percentile from fewer samples is the maximum or next to it (25 iterations: p99 interpolates between the
# two slowest); below this many the renderers state the maximum instead and the JSON leaves p99 out (null).
TAIL_MIN_ITERATIONS = 100


class Infers(Protocol):
    """What warm-up needs of a runner (any deploy.backends.base.Runner); structural, so this module stays below it."""

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class BenchConfig:
    iterations: int = 50
    warmup_s: float = 0.5
    min_duration_s: float = 1.0
    threads: int = field(default_factory=usable_cores)


@dataclass(frozen=True)
class LatencyStats:
    json_derived: ClassVar[tuple[str, ...]] = ("throughput",)
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

    @property
    def tail_backed(self) -> bool:
        """Enough iterations that p99 is a percentile rather than the maximum under another name."""
        return self.iterations >= TAIL_MIN_ITERATIONS


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


@dataclass(frozen=True)
class GpuStages:
    """trtexec-style timings of a GPU runner: CUDA events around H2D, compute and D2H, and host end-to-end."""

    end_to_end: LatencyStats  # host wall clock around stage + H2D + compute + D2H + synchronize
    h2d: LatencyStats
    compute: LatencyStats
    d2h: LatencyStats

    @property
    def throughput(self) -> float:
        return self.end_to_end.throughput


@dataclass(frozen=True)
class Ratio:
    """A speed-up: the median of per-round ratios reference/candidate and their 10th-90th percentile spread."""

    median: float
    p10: float
    p90: float
    rounds: int


def significant(value: float, digits: int = 4) -> float:
    """`value` to `digits` significant digits: what a timing can claim, without float noise in JSON."""
    return float(f"{value:.{digits}g}")


def ratio_of(reference_rounds: Sequence[float], candidate_rounds: Sequence[float]) -> Ratio:
    """Per-round ratios reference/candidate, summarised by median and the 10th-90th percentile spread."""
    ratios = np.asarray(reference_rounds, dtype=np.float64) / np.asarray(candidate_rounds, dtype=np.float64)
    return Ratio(
        median=float(np.median(ratios)),
        p10=float(np.percentile(ratios, 10)),
        p90=float(np.percentile(ratios, 90)),
        rounds=len(ratios),
    )


@dataclass(frozen=True)
class Overhead:
    """The Runner's median latency against a bare session.run on the same inputs, interleaved."""

    json_derived: ClassVar[tuple[str, ...]] = ("percent",)

    batch: int
    runner_p50_ms: float
    bare_p50_ms: float

    @property
    def percent(self) -> float:
        return 100.0 * (self.runner_p50_ms - self.bare_p50_ms) / self.bare_p50_ms


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


def warm_up(runner: Infers, feeds: Sequence[Mapping[str, np.ndarray]], warmup_s: float, *, start: int = 0) -> int:
    """Run for `warmup_s` (at least twice) from feed `start`; returns the next feed index, so timing continues
    the rotation."""
    deadline = time.perf_counter() + warmup_s
    index = start
    while time.perf_counter() < deadline or index < start + 2:
        runner.infer(feeds[index % len(feeds)])
        index += 1
    return index
