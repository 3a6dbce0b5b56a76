"""`deploy doctor`: what is installed and usable here, and what each missing piece disables."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from deploy.environment import cpu_isa, cpu_name, installed_version
from deploy.targets import TARGETS
from deploy.targets.base import Check

CUDA_BINDINGS = ("pycuda", "cuda-python")  # deploy.cuda's two implementations, in order of preference


@dataclass(frozen=True)
class DoctorReport:
    checks: tuple[Check, ...]

    @property
    def cuda_binding(self) -> str | None:
        """The CUDA binding the TensorRT runner uses here (the first that works), or None."""
        return next((c.name for c in self.checks if c.name in CUDA_BINDINGS and c.ok), None)

    @property
    def tensorrt_ready(self) -> bool:
        """A GPU, TensorRT, and one CUDA binding: plans build and run."""
        needed = all(check.ok for check in self.checks if check.name in {"GPU", "TensorRT"})
        return needed and self.cuda_binding is not None


def diagnose() -> DoctorReport:
    """The machine, the precision tools, then each registered target's own checks."""
    targets = tuple(check for target in TARGETS.values() for check in target.probe())
    return DoctorReport((_cpu(), _modelopt(), _torch(), *targets))


def _cpu() -> Check:
    isa = cpu_isa()
    detail = f"{cpu_name()}: {isa.describe()}"
    if not isa.exact_u8s8:
        detail += "; CPU INT8 artifacts from deploy use 7-bit weights, exact here too"
    return Check("CPU", True, None, detail, "")


def _modelopt() -> Check:
    version = installed_version("nvidia-modelopt")
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
