"""Import heavy or GPU-only packages at the point of use, with an error that names the pip extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from deploy.errors import MissingDependency

# Top-level module → how to install it.
_INSTALL_FOR = {
    "tensorrt": 'pip install --extra-index-url https://pypi.nvidia.com -e ".[tensorrt]" (on a GPU machine)',
    # pycuda has no wheels: it compiles against the CUDA toolkit's headers and the driver's libcuda.
    "pycuda": 'pip install "pycuda>=2026.1" (needs the CUDA toolkit headers, libcuda and g++), or use cuda-python: '
    'pip install -e ".[cuda]"',
    "cuda": 'pip install -e ".[cuda]"',
    "modelopt": 'pip install "nvidia-modelopt[onnx]~=0.47.0" (part of the base install)',
    "matplotlib": 'pip install "matplotlib>=3.8" (part of the base install)',
    "openvino": 'pip install -e ".[openvino]"',
    "nncf": 'pip install -e ".[bench]"',
}


def require(module: str, *, purpose: str) -> ModuleType:
    """Import `module`, or raise MissingDependency saying what needs it and which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        install = _INSTALL_FOR.get(top, f"pip install {top}")
        raise MissingDependency(
            f"{purpose} needs the Python package '{module}', which is not importable ({exc})",
            hint=f"install it with: {install}",
        ) from exc
