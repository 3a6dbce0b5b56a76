"""Peers: what a CPU user would do without deploy, timed beside deploy's artifacts in the same interleaved rounds
and checked against eager like them, so "our best vs the best peer" is one measurement.

- openvino-default: OpenVINO reading the FP32 ONNX at its default precision (BF16 on AMX/AVX512-BF16 CPUs, FP32
  elsewhere), as `ov.Core().compile_model("model.onnx")` does;
- nncf-int8: NNCF's post-training INT8 (`nncf.quantize`) of the FP32 ONNX, on the same calibration images as ours;
- torch.compile: the eager module through inductor.

Used by `deploy pipeline --peers` and benchmarks/cpu_peers.py; OpenVINO and NNCF come with the `bench` extra, and
torch.compile needs a C++ compiler; a peer that cannot run here is skipped with the reason. An imported model
(`deploy import`) has no PyTorch module, nor has one exported from Python once it is on disk, so torch.compile
has nothing to compile for them: skipped, saying so.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from deploy.backends.base import Runner
from deploy.errors import BadInput
from deploy.imported import has_onnx_reference, no_module
from deploy.lazy import require
from deploy.sidecar import Sidecar

Source = Literal["fp32", "eager"]  # the FP32 ONNX, or the eager module
Kind = Literal["openvino", "nncf", "torch.compile"]


@dataclass(frozen=True)
class Peer:
    name: str
    kind: Kind
    precision: str  # judged with this precision's tolerances
    source: Source

    @property
    def backend(self) -> str:
        return "torch.compile" if self.kind == "torch.compile" else "openvino"

    def runner(self, sidecar: Sidecar, onnx: Path, threads: int, calibration: np.ndarray | None = None) -> Runner:
        """`onnx`: the FP32 ONNX (what a user without deploy starts from); `calibration`: images for NNCF."""
        if self.kind == "torch.compile":
            if has_onnx_reference(sidecar):
                raise BadInput(f"{self.name} cannot run {sidecar.model}: {no_module(sidecar)}")
            from deploy.harness.eager import eager_runner

            return eager_runner(sidecar, compiled=True)
        from deploy.targets.openvino.runner import OpenVinoRunner

        model: Path | Any = onnx
        if self.kind == "nncf":
            if calibration is None:
                raise ValueError("NNCF needs the calibration images")
            model = nncf_quantize(onnx, calibration)
        return OpenVinoRunner(model, threads=threads, precision=None, output_names=[o.name for o in sidecar.outputs])


def nncf_quantize(onnx: Path, images: np.ndarray) -> Any:
    """NNCF's default post-training INT8 of the FP32 ONNX as an OpenVINO model, as its documentation shows it."""
    openvino = require("openvino", purpose="the OpenVINO peers")
    nncf = require("nncf", purpose="the NNCF INT8 peer")
    model = openvino.Core().read_model(str(onnx))
    dataset = nncf.Dataset([image[None] for image in images])
    return nncf.quantize(model, dataset, subset_size=len(images))


NEEDS: dict[Kind, tuple[str, ...]] = {"openvino": ("openvino",), "nncf": ("openvino", "nncf"), "torch.compile": ()}
CPU_PEERS = (
    # OpenVINO's default on AMX/AVX512-BF16 CPUs computes in BF16: judged like FP16.
    Peer("openvino-default", "openvino", "fp16", "fp32"),
    Peer("nncf-int8", "nncf", "int8", "fp32"),
    Peer("torch.compile", "torch.compile", "fp32", "eager"),
)


def available_peers(sidecar: Sidecar | None = None) -> tuple[tuple[Peer, ...], tuple[str, ...]]:
    """The peers that can run here (for `sidecar`'s model, when given), and one line per peer that cannot, saying
    why."""
    usable, skipped = [], []
    for peer in CPU_PEERS:
        missing = [module for module in NEEDS[peer.kind] if not _has(module)]
        if peer.source == "eager" and sidecar is not None and has_onnx_reference(sidecar):
            skipped.append(f"{peer.name}: nothing to compile ({no_module(sidecar)})")
        elif missing:
            skipped.append(f'{peer.name}: {" and ".join(missing)} not installed (pip install -e ".[bench]")')
        elif peer.kind == "torch.compile" and shutil.which(os.environ.get("CXX", "g++")) is None:
            skipped.append(f"{peer.name}: torch.compile's CPU backend (inductor) needs a C++ compiler ($CXX or g++)")
        else:
            usable.append(peer)
    return tuple(usable), tuple(skipped)


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
