"""trtexec-style latency for the TensorRT runner: CUDA events around H2D, compute and D2H, host end-to-end."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deploy.backends.tensorrt.runtime import TrtRunner
from deploy.backends.timing import BenchConfig, LatencyStats, batch_of, latency_stats, warm_up


@dataclass(frozen=True)
class TrtLatency:
    end_to_end: LatencyStats  # host wall clock around stage + H2D + compute + D2H + synchronize
    h2d: LatencyStats
    compute: LatencyStats
    d2h: LatencyStats

    @property
    def throughput(self) -> float:
        return self.end_to_end.throughput


def measure_trt(
    runner: TrtRunner, feeds: Sequence[Mapping[str, np.ndarray]], config: BenchConfig, *, copies: bool = True
) -> TrtLatency:
    """`copies=False` is trtexec's --noDataTransfers: inputs stay on the device, only compute is timed."""
    cuda = runner.cuda
    events = [cuda.Event() for _ in range(4)]
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
        h2d.append(events[0].time_till(events[1]))
        compute.append(events[1].time_till(events[2]))
        d2h.append(events[2].time_till(events[3]))
        index += 1
    threads = config.threads
    return TrtLatency(
        end_to_end=latency_stats("tensorrt", batch, threads, e2e),
        h2d=latency_stats("tensorrt:h2d", batch, threads, h2d),
        compute=latency_stats("tensorrt:compute", batch, threads, compute),
        d2h=latency_stats("tensorrt:d2h", batch, threads, d2h),
    )


def measure_eager_cuda(
    module: Any, input_name: str, feeds: Sequence[Mapping[str, np.ndarray]], config: BenchConfig
) -> TrtLatency:
    """Eager PyTorch on CUDA timed the way `measure_trt` times TensorRT, for side-by-side numbers in one run:
    torch.cuda events around the host→device copy, the forward pass and the device→host copy."""
    import torch

    device = torch.device("cuda")
    module = module.eval().to(device)
    stream = torch.cuda.current_stream()
    batch = batch_of(feeds)
    events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
    samples: dict[str, list[float]] = {"e2e": [], "h2d": [], "compute": [], "d2h": []}

    def run_once(feed: Mapping[str, np.ndarray], timed: bool) -> None:
        pinned = torch.from_numpy(np.ascontiguousarray(feed[input_name])).pin_memory()
        begin = time.perf_counter_ns()
        events[0].record(stream)
        tensor = pinned.to(device, non_blocking=True)
        events[1].record(stream)
        with torch.inference_mode():
            output = module(tensor)
        events[2].record(stream)
        output.to("cpu", non_blocking=True)
        events[3].record(stream)
        torch.cuda.synchronize()
        if timed:
            samples["e2e"].append((time.perf_counter_ns() - begin) / 1e6)
            samples["h2d"].append(events[0].elapsed_time(events[1]))
            samples["compute"].append(events[1].elapsed_time(events[2]))
            samples["d2h"].append(events[2].elapsed_time(events[3]))

    deadline = time.perf_counter() + config.warmup_s
    index = 0
    while time.perf_counter() < deadline or index < 2:
        run_once(feeds[index % len(feeds)], timed=False)
        index += 1
    started = time.perf_counter()
    while len(samples["e2e"]) < config.iterations or time.perf_counter() - started < config.min_duration_s:
        run_once(feeds[index % len(feeds)], timed=True)
        index += 1
    threads = config.threads
    return TrtLatency(
        end_to_end=latency_stats("torch-cuda", batch, threads, samples["e2e"]),
        h2d=latency_stats("torch-cuda:h2d", batch, threads, samples["h2d"]),
        compute=latency_stats("torch-cuda:compute", batch, threads, samples["compute"]),
        d2h=latency_stats("torch-cuda:d2h", batch, threads, samples["d2h"]),
    )
