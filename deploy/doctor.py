"""`deploy doctor`: what is installed and usable here, and what each missing piece disables."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib import metadata

from deploy.environment import cpu_isa, cpu_name
from deploy.errors import DeployError


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    version: str | None
    detail: str
    disables: str  # what does not work while this check fails ("" when nothing)


@dataclass(frozen=True)
class DoctorReport:
    checks: tuple[Check, ...]

    @property
    def tensorrt_ready(self) -> bool:
        return all(check.ok for check in self.checks if check.name in {"GPU", "TensorRT", "pycuda"})


def diagnose() -> DoctorReport:
    return DoctorReport((_cpu(), _onnxruntime(), _modelopt(), _torch(), _gpu(), _tensorrt(), _pycuda()))


def _cpu() -> Check:
    isa = cpu_isa()
    detail = f"{cpu_name()}: {isa.describe()}"
    if not isa.exact_u8s8:
        detail += "; CPU INT8 artifacts from deploy use 7-bit weights, exact here too"
    return Check("CPU", True, None, detail, "")


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _onnxruntime() -> Check:
    import onnxruntime

    providers = ", ".join(onnxruntime.get_available_providers())
    return Check("ONNX Runtime", True, onnxruntime.__version__, f"providers: {providers}", "")


def _modelopt() -> Check:
    version = _version("nvidia-modelopt")
    ok = version is not None and importlib.util.find_spec("modelopt") is not None
    return Check(
        "ModelOpt",
        ok,
        version,
        "FP16 AutoCast and INT8 Q/DQ PTQ" if ok else "not installed",
        "" if ok else "--fp16/--int8",
    )


def _torch() -> Check:
    import torch

    if torch.cuda.is_available():
        detail = f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} device(s): {torch.cuda.get_device_name(0)}"
    else:
        detail = f"CPU only here (build for CUDA {torch.version.cuda})" if torch.version.cuda else "CPU build"
    return Check("PyTorch", True, torch.__version__, detail, "")


def _gpu() -> Check:
    from deploy.backends.tensorrt.gpu import gpu_info

    gpu = gpu_info()
    if gpu is None:
        return Check("GPU", False, None, "no NVIDIA driver or GPU visible (NVML)", "TensorRT plans, GPU latency")
    detail = f"{gpu.name}, compute capability {gpu.compute_capability}, CUDA driver {gpu.cuda_driver}"
    return Check("GPU", True, gpu.driver, detail, "")


def _tensorrt() -> Check:
    from deploy.backends.tensorrt.api import info

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
        return Check("pycuda", False, _version("pycuda"), f"installed but unusable: {exc}", disabled)
    return Check("pycuda", count > 0, _version("pycuda"), f"{count} CUDA device(s)", "" if count else disabled)
