"""`deploy bench`: eager PyTorch and every artifact timed in one interleaved run, so machine drift cancels.

Each round runs every runner for a few iterations in turn (A B C, A B C, …) on the same rotating pool of real
preprocessed images; per round, the speed-up of each artifact is eager's round median over the artifact's round
median, and the spread of those per-round ratios is reported with their median.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deploy.backends.base import Runner, TensorMeta
from deploy.backends.factory import runner_for
from deploy.errors import BadInput
from deploy.harness.bench import LatencyStats, latency_stats, rotating_feeds, warm_up
from deploy.harness.eager import eager_runner
from deploy.harness.heldout import held_out_set
from deploy.harness.report import cpu_name
from deploy.sidecar import Sidecar, load_sidecar

Progress = Callable[[str], None]
Feed = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class InterleavedConfig:
    artifacts: tuple[Path, ...]
    batches: tuple[int, ...] = (1, 8)
    threads: int = max(1, os.cpu_count() or 1)
    duration_s: float = 5.0  # per batch size, all runners together
    warmup_s: float = 0.5
    per_round: int = 5
    min_rounds: int = 5
    images: Path | None = None
    eager: bool = True


@dataclass(frozen=True)
class Ratio:
    median: float
    p10: float
    p90: float
    rounds: int


@dataclass(frozen=True)
class BatchResult:
    batch: int
    latency: dict[str, LatencyStats]
    speedup: dict[str, Ratio] = field(default_factory=dict)  # artifact → eager p50 / artifact p50 per round


@dataclass(frozen=True)
class InterleavedResult:
    model: str
    threads: int
    cpu: str
    cores: int | None
    batches: tuple[BatchResult, ...]


def ratio_of(reference_rounds: Sequence[float], candidate_rounds: Sequence[float]) -> Ratio:
    """Per-round ratios reference/candidate, summarised by median and the 10th-90th percentile spread."""
    ratios = np.asarray(reference_rounds, dtype=np.float64) / np.asarray(candidate_rounds, dtype=np.float64)
    return Ratio(
        median=float(np.median(ratios)),
        p10=float(np.percentile(ratios, 10)),
        p90=float(np.percentile(ratios, 90)),
        rounds=len(ratios),
    )


def run_interleaved(
    runners: Mapping[str, Runner], feeds: Sequence[Feed], *, duration_s: float, warmup_s: float,
    per_round: int, min_rounds: int,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:  # fmt: skip
    """All samples and per-round medians (ms) for each active runner, measured A B C, A B C, …"""
    index = 0
    for runner in runners.values():
        index = warm_up(runner, feeds, warmup_s, start=index)
    samples: dict[str, list[float]] = {name: [] for name in runners}
    rounds: dict[str, list[float]] = {name: [] for name in runners}
    started = time.perf_counter()
    while len(next(iter(rounds.values()))) < min_rounds or time.perf_counter() - started < duration_s:
        for name, runner in runners.items():
            round_samples = []
            for _ in range(per_round):
                feed = feeds[index % len(feeds)]
                begin = time.perf_counter_ns()
                runner.infer(feed)
                round_samples.append((time.perf_counter_ns() - begin) / 1e6)
                index += 1
            samples[name].extend(round_samples)
            rounds[name].append(statistics.median(round_samples))
    return samples, rounds


def bench(config: InterleavedConfig, *, progress: Progress | None = None) -> InterleavedResult:
    say = progress or (lambda _message: None)
    if not config.artifacts:
        raise BadInput("no artifacts to time", hint="pass export/MODEL.onnx or engines/MODEL.PRECISION.onnx files")
    if any(b < 1 for b in config.batches) or config.threads < 1 or config.duration_s <= 0:
        raise BadInput("batch sizes, --threads and --duration must be positive", hint="e.g. --batch 1,8 --threads 2")
    sidecars = {path: load_sidecar(path) for path in config.artifacts}
    models = {sidecar.model for sidecar in sidecars.values()}
    if len(models) != 1:
        raise BadInput(f"artifacts of several models ({', '.join(sorted(models))})", hint="bench one model per run")
    first = next(iter(sidecars.values()))
    held = held_out_set(first, images=config.images, count=None)
    runners = _runners(config, sidecars, first)
    results = []
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        with contextlib.ExitStack() as stack:
            for runner in runners.values():
                stack.enter_context(runner)
            for batch in config.batches:
                if any(
                    batch > s.batch.max or (not s.batch.dynamic and batch != s.batch.max) for s in sidecars.values()
                ):
                    say(f"batch {batch}: outside an artifact's batch range, skipped")
                    continue
                say(f"batch {batch}: timing {', '.join(runners)} interleaved for {config.duration_s:g} s")
                feeds = rotating_feeds(held.arrays, batch, first.inputs[0].name)
                samples, rounds = run_interleaved(
                    runners, feeds, duration_s=config.duration_s, warmup_s=config.warmup_s,
                    per_round=config.per_round, min_rounds=config.min_rounds,
                )  # fmt: skip
                latency = {n: latency_stats(n, batch, config.threads, s) for n, s in samples.items()}
                speedup = {
                    name: ratio_of(rounds["eager"], rounds[name]) for name in runners if name != "eager"
                } if "eager" in runners else {}  # fmt: skip
                results.append(BatchResult(batch, latency, speedup))
    finally:
        torch.set_num_threads(previous)
    return InterleavedResult(first.model, config.threads, cpu_name(), os.cpu_count(), tuple(results))


def _runners(config: InterleavedConfig, sidecars: dict[Path, Sidecar], first: Sidecar) -> dict[str, Runner]:
    runners: dict[str, Runner] = {}
    if config.eager:
        runners["eager"] = eager_runner(first)
    for path in sidecars:
        runners[path.name] = runner_for(path, intra_op_threads=config.threads)
    return runners


@dataclass(frozen=True)
class Overhead:
    batch: int
    runner_p50_ms: float
    bare_p50_ms: float

    @property
    def percent(self) -> float:
        return 100.0 * (self.runner_p50_ms - self.bare_p50_ms) / self.bare_p50_ms


def onnxruntime_overhead(artifact: Path, *, batch: int = 1, duration_s: float = 2.0, threads: int = 1) -> Overhead:
    """The Runner's infer against a bare InferenceSession.run on the same inputs, interleaved."""
    from deploy.backends.onnxruntime_runner import OrtRunner

    sidecar = load_sidecar(artifact)
    feeds = rotating_feeds(held_out_set(sidecar, images=None, count=None).arrays, batch, sidecar.inputs[0].name)
    runner = OrtRunner(artifact, intra_op_threads=threads)
    with runner:
        session = runner.session

        class _Bare(Runner):
            name = "bare"

            def activate(self) -> None: ...
            def deactivate(self) -> None: ...
            @property
            def inputs(self) -> tuple[TensorMeta, ...]:
                return runner.inputs

            @property
            def outputs(self) -> tuple[TensorMeta, ...]:
                return runner.outputs

            def infer(self, feed: Feed) -> dict[str, np.ndarray]:
                return dict(zip([o.name for o in session.get_outputs()], session.run(None, dict(feed)), strict=True))

        samples, _ = run_interleaved(
            {"runner": runner, "bare": _Bare()}, feeds, duration_s=duration_s, warmup_s=0.2, per_round=5, min_rounds=5
        )
    return Overhead(batch, float(np.median(samples["runner"])), float(np.median(samples["bare"])))
