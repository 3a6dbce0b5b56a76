"""The TensorRT target: typed ONNX (INT8 as ModelOpt's symmetric S8 Q/DQ) → .plan, run through pycuda on a GPU."""

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
            return False, 'TensorRT is not installed (pip install -e ".[tensorrt]" on a GPU machine)'
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
        summary = f"layers INT8 {layers.int8} / FP16 {layers.fp16} / FP32 {layers.fp32}"
        return Compiled(plan.path, plan.sidecar, plan.seconds, summary, plan.warnings)

    def probe(self) -> tuple[Check, ...]:
        return (_gpu(), _tensorrt(), _pycuda())


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
    try:
        about = info()
    except DeployError as exc:
        return Check("TensorRT", False, None, exc.message, disabled)
    return Check("TensorRT", True, about.version, about.api_path, "")


def _pycuda() -> Check:
    disabled = "running .plan engines (deploy infer/verify on plans, GPU latency)"
    if importlib.util.find_spec("pycuda") is None:
        return Check("pycuda", False, None, 'not installed (pip install -e ".[tensorrt]")', disabled)
    try:
        import pycuda.driver as cuda

        cuda.init()
        count = cuda.Device.count()
    except Exception as exc:  # pycuda raises its own error types when the driver is missing
        return Check("pycuda", False, installed_version("pycuda"), f"installed but unusable: {exc}", disabled)
    return Check("pycuda", count > 0, installed_version("pycuda"), f"{count} CUDA device(s)", "" if count else disabled)
