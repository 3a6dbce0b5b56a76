"""trtexec-style latency for the TensorRT runner: CUDA events (through deploy.cuda, either binding) around H2D,
compute and D2H, host end-to-end."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from deploy.backends.timing import BenchConfig, GpuStages, batch_of, latency_stats, warm_up
from deploy.cuda import Cuda, Event, Stream


class StagedRunner(Protocol):
    """The TensorRT runner's stages, each timed between CUDA events (runtime.TrtRunner implements it)."""

    @property
    def cuda(self) -> Cuda: ...
    @property
    def stream(self) -> Stream: ...
    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...
    def stage_inputs(self, feed: Mapping[str, np.ndarray]) -> None: ...
    def copy_in(self) -> None: ...
    def execute(self) -> None: ...
    def copy_out(self) -> None: ...
    def synchronize(self) -> None: ...
    def collect(self) -> dict[str, np.ndarray]: ...


def measure_trt(
    runner: StagedRunner, feeds: Sequence[Mapping[str, np.ndarray]], config: BenchConfig, *, copies: bool = True
) -> GpuStages:
    """`copies=False` is trtexec's --noDataTransfers: inputs stay on the device, only compute is timed."""
    events = [runner.cuda.event() for _ in range(4)]
    try:
        return _measure(runner, feeds, config, copies, events)
    finally:
        for event in events:
            event.close()


def _measure(
    runner: StagedRunner,
    feeds: Sequence[Mapping[str, np.ndarray]],
    config: BenchConfig,
    copies: bool,
    events: list[Event],
) -> GpuStages:
    batch = batch_of(feeds)
    index = warm_up(runner, feeds, config.warmup_s)
    e2e: list[float] = []
    h2d: list[float] = []
    compute: list[float] = []
    d2h: list[float] = []
    started = time.perf_counter()
    while len(e2e) < config.iterations or time.perf_counter() - started < config.min_duration_s:
        begin = time.perf_counter_ns()
        if copies:
            runner.stage_inputs(feeds[index % len(feeds)])
        events[0].record(runner.stream)
        if copies:
            runner.copy_in()
        events[1].record(runner.stream)
        runner.execute()
        events[2].record(runner.stream)
        if copies:
            runner.copy_out()
        events[3].record(runner.stream)
        runner.synchronize()
        if copies:
            runner.collect()
        e2e.append((time.perf_counter_ns() - begin) / 1e6)
        h2d.append(events[0].elapsed_ms(events[1]))
        compute.append(events[1].elapsed_ms(events[2]))
        d2h.append(events[2].elapsed_ms(events[3]))
        index += 1
    threads = config.threads
    return GpuStages(
        end_to_end=latency_stats("tensorrt", batch, threads, e2e),
        h2d=latency_stats("tensorrt:h2d", batch, threads, h2d),
        compute=latency_stats("tensorrt:compute", batch, threads, compute),
        d2h=latency_stats("tensorrt:d2h", batch, threads, d2h),
    )
