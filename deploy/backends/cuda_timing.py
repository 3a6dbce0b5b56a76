"""Eager PyTorch on CUDA timed stage by stage (H2D, forward, D2H) with CUDA events, as TensorRT plans are."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from deploy.backends.timing import BenchConfig, GpuStages, batch_of, latency_stats


def measure_eager_cuda(
    module: Any, input_name: str, feeds: Sequence[Mapping[str, np.ndarray]], config: BenchConfig
) -> GpuStages:
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
    return GpuStages(
        end_to_end=latency_stats("torch-cuda", batch, threads, samples["e2e"]),
        h2d=latency_stats("torch-cuda:h2d", batch, threads, samples["h2d"]),
        compute=latency_stats("torch-cuda:compute", batch, threads, samples["compute"]),
        d2h=latency_stats("torch-cuda:d2h", batch, threads, samples["d2h"]),
    )
