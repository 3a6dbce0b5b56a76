"""The TensorRT target: typed ONNX (INT8 as ModelOpt's symmetric S8 Q/DQ) → .plan, run on a GPU through the CUDA
facade (pycuda or cuda-python)."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

from deploy.backends.base import Runner
from deploy.environment import installed_version
from deploy.errors import DeployError, MissingDependency
from deploy.sidecar import Sidecar
from deploy.targets.base import Check, Compiled, CompileRequest, Progress, Target, TritonModelFiles

TIMING_CACHE = "timing.cache"


class TensorRT(Target):
    name = "tensorrt"
    suffix = ".plan"
    int8_recipe = "tensorrt"
    triton = TritonModelFiles("tensorrt_plan", None, ("model.plan",), instance_kinds=("gpu",))
    device = "cuda"

    def runner(self, artifact: Path, *, threads: int | None = None, sidecar: Sidecar | None = None) -> Runner:
        from deploy.targets.tensorrt.runtime import TrtRunner

        return TrtRunner(artifact, sidecar=sidecar)

    def availability(self) -> tuple[bool, str]:
        from deploy.targets.tensorrt.api import info
        from deploy.targets.tensorrt.gpu import gpu_info

        if importlib.util.find_spec("tensorrt") is None:
            return (
                False,
                f'TensorRT is not installed (on a GPU machine: {TENSORRT_INSTALL}, or pip install -e ".[tensorrt]")',
            )
        try:
            about = info()
        except MissingDependency as exc:
            return False, exc.message
        if gpu_info() is None:
            return False, f"TensorRT {about.version} is installed but no NVIDIA GPU is usable"
        return True, f"TensorRT {about.version} ({about.api_path}) compiles .plan engines"

    def compile(self, request: CompileRequest, *, progress: Progress | None = None) -> Compiled:
        from deploy.targets.tensorrt.build import PlanOptions, build_plan

        options = request.options if isinstance(request.options, PlanOptions) else PlanOptions()
        if options.timing_cache is None:
            options = dataclasses.replace(options, timing_cache=request.out_dir / TIMING_CACHE)
        out = request.work_dir / self.artifact_name(request.onnx)
        plan = build_plan(request.onnx, request.sidecar, options, out=out)
        layers = plan.layers
        summary = (
            "layer precisions unknown (engine inspector failed)"
            if layers is None
            else f"layers INT8 {layers.int8} / FP16 {layers.fp16} / FP32 {layers.fp32}"
        )
        return Compiled(plan.path, plan.sidecar, plan.seconds, summary, plan.warnings)

    def probe(self) -> tuple[Check, ...]:
        return (_gpu(), _tensorrt(), *_cuda_bindings())


# What each missing piece disables, with the exact line that installs it.
TENSORRT_INSTALL = "pip install --extra-index-url https://pypi.nvidia.com tensorrt-cu13"


def _gpu() -> Check:
    from deploy.targets.tensorrt.gpu import gpu_info

    gpu = gpu_info()
    if gpu is None:
        return Check("GPU", False, None, "no NVIDIA driver or GPU visible (NVML)", "TensorRT plans, GPU latency")
    detail = f"{gpu.name}, compute capability {gpu.compute_capability}, CUDA driver {gpu.cuda_driver}"
    return Check("GPU", True, gpu.driver, detail, "")


def _tensorrt() -> Check:
    from deploy.targets.tensorrt.api import info

    disabled = "building .plan engines (typed ONNX still build), TensorRT parity and latency"
    if importlib.util.find_spec("tensorrt") is None:
        return Check("TensorRT", False, None, f"not installed: {TENSORRT_INSTALL}", disabled)
    try:
        about = info()
    except DeployError as exc:
        return Check("TensorRT", False, None, f"{exc.message}: {TENSORRT_INSTALL}", disabled)
    return Check("TensorRT", True, about.version, about.api_path, "")


def _cuda_bindings() -> tuple[Check, ...]:
    """One row per CUDA binding, then which one the TensorRT runner uses (the first importable: pycuda preferred)."""
    from deploy.cuda import binding_status

    rows = binding_status()
    in_use = next((row.name for row in rows if row.importable), None)
    checks = []
    for row in rows:
        if row.importable:
            detail = (
                "importable: the TensorRT runner uses this one"
                if row.name == in_use
                else f"importable; {in_use} is preferred"
            )
            checks.append(Check(row.name, True, installed_version(_DISTRIBUTIONS[row.name]), detail, ""))
        else:
            other = "the other CUDA binding runs plans" if in_use else "running .plan engines, GPU stage timings"
            checks.append(Check(row.name, False, None, f"{row.detail}: {row.install}", other))
    return tuple(checks)


_DISTRIBUTIONS = {"pycuda": "pycuda", "cuda-python": "cuda-bindings"}
