"""Peers: other ways to run the same model on CPU (OpenVINO FP32/BF16/INT8, torch.compile), timed beside deploy's
artifacts in the same interleaved rounds and checked against eager like them, so "our best vs the best peer" is
one measurement. Used by `deploy pipeline --peers` and benchmarks/cpu_peers.py; each needs the `bench` extra or a
C++ compiler, and a peer that cannot run here is skipped with the reason.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from deploy.backends.base import Runner
from deploy.sidecar import Sidecar

Source = Literal["fp32", "int8-cpu", "eager"]  # the FP32 ONNX, the CPU INT8 ONNX, or the eager module


@dataclass(frozen=True)
class Peer:
    name: str
    backend: str
    precision: str  # judged with this precision's tolerances
    source: Source
    openvino_precision: str | None = None  # OpenVINO's INFERENCE_PRECISION_HINT; None: its default

    def runner(self, sidecar: Sidecar, artifacts: Mapping[str, Path], threads: int) -> Runner:
        if self.backend == "torch.compile":
            from deploy.harness.eager import eager_runner

            return eager_runner(sidecar, compiled=True)
        from deploy.backends.openvino_runner import OpenVinoRunner

        return OpenVinoRunner(
            artifacts[self.source],
            threads=threads,
            precision=self.openvino_precision,
            output_names=[o.name for o in sidecar.outputs],
        )


CPU_PEERS = (
    Peer("openvino-fp32", "openvino", "fp32", "fp32", openvino_precision="f32"),
    # OpenVINO's default on AMX/AVX512-BF16 CPUs computes in BF16: judged like FP16, named for what it is.
    Peer("openvino-default", "openvino", "fp16", "fp32"),
    Peer("openvino-int8", "openvino", "int8", "int8-cpu"),
    Peer("torch.compile", "torch.compile", "fp32", "eager"),
)


def available_peers() -> tuple[tuple[Peer, ...], tuple[str, ...]]:
    """The peers that can run here, and one line per peer that cannot, saying why."""
    usable, skipped = [], []
    for peer in CPU_PEERS:
        if peer.backend == "openvino" and importlib.util.find_spec("openvino") is None:
            skipped.append(f'{peer.name}: OpenVINO is not installed (pip install -e ".[bench]")')
        elif peer.backend == "torch.compile" and shutil.which(os.environ.get("CXX", "g++")) is None:
            skipped.append(f"{peer.name}: torch.compile's CPU backend (inductor) needs a C++ compiler ($CXX or g++)")
        else:
            usable.append(peer)
    return tuple(usable), tuple(skipped)
