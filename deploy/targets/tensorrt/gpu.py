"""What GPU and driver this machine has, read through NVML (nvidia-ml-py, installed with ModelOpt)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "9.0"
    driver: str
    cuda_driver: str  # highest CUDA version the driver supports, e.g. "13.0"


def gpu_info(index: int = 0) -> GpuInfo | None:
    """The GPU at NVML `index`, or None when there is no NVIDIA driver or no GPU.

    NVML numbers devices its own way and ignores CUDA_VISIBLE_DEVICES: this describes the machine (doctor, sidecar
    provenance); the plan compatibility check reads the CUDA device itself through pycuda.
    """
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound / DriverNotLoaded: no usable driver here
        return None
    try:
        if pynvml.nvmlDeviceGetCount() <= index:
            return None
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
        cuda = pynvml.nvmlSystemGetCudaDriverVersion()
        return GpuInfo(
            name=_text(pynvml.nvmlDeviceGetName(handle)),
            compute_capability=f"{major}.{minor}",
            driver=_text(pynvml.nvmlSystemGetDriverVersion()),
            cuda_driver=f"{cuda // 1000}.{cuda % 1000 // 10}",
        )
    except pynvml.NVMLError:  # e.g. NO_PERMISSION inside a restricted container
        return None
    finally:
        pynvml.nvmlShutdown()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
